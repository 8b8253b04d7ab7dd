"""`xaifn explain-dataset` and `xaifn report` through the console script, from another folder."""
import numpy as np
import mindspore as ms
import pytest
import zarr
from PIL import Image

import xaifn
from xaifn import cli, dataset_runner
from xaifn.models import LeNet5

from test_cli import run_script


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A model file, its checkpoint and a folder of 9 images in 3 class folders (one grayscale)."""
    where = tmp_path_factory.mktemp("dataset")
    (where / "net.py").write_text("from xaifn.models import LeNet5\n\n"
                                  "def build(classes=10):\n    return LeNet5(num_class=classes)\n")
    ms.set_seed(5)
    ms.save_checkpoint(LeNet5(num_class=3), str(where / "net.ckpt"))
    rng = np.random.default_rng(3)
    for i in range(9):
        path = where / "data" / f"class{i % 3}" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        shape = (30 + i, 28) if i == 4 else (30 + i, 28, 3)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)
    return where


def command(where, out, methods="gradient, gradcam", metrics=()):
    return ["explain-dataset", *(["--metrics", ", ".join(metrics)] if metrics else []), "--model", f"{where / 'net.py'}:build", "--model-arg", "classes=3",
            "--checkpoint", str(where / "net.ckpt"), "--data", str(where / "data"), "--methods", methods,
            "--layer", "conv2", "--batch-size", "4", "--out", str(out)]


def test_explain_dataset_and_report_through_the_console_script(folder, tmp_path):
    store = tmp_path / "store"
    result = run_script(command(folder, store, metrics=("deletion", "insertion")) + ["--block-rows", "8"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "data: 1 grayscale image(s): their one channel repeated to 3" in result.stdout
    assert "9 rows in" in result.stdout and "preset demo" in result.stdout
    group = zarr.open_group(str(store), mode="r")
    assert group["done"][:].all() and group["label"][:].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert group["done"].chunks == (8,) and group.attrs["config"]["batch"] == 4   # --block-rows 8, --batch-size 4
    assert group.attrs["class_names"] == ["class0", "class1", "class2"]
    # the maps are those of the loaded network on the folder's images
    net = cli.load_network(f"{folder / 'net.py'}:build", str(folder / "net.ckpt"), {"classes": 3})
    source = dataset_runner.ImageFiles.from_folder(folder / "data", (32, 32), (0.5,), (0.25,))
    x = ms.Tensor(np.stack([source[i][0] for i in range(4)]))
    expected = xaifn.gradcam(net, x, ms.Tensor(group["target"][:4].astype(np.int32)), layer="conv2").asnumpy()
    np.testing.assert_allclose(group["maps/gradcam"][:4], expected[:, 0], rtol=1e-5, atol=1e-7)

    report = run_script(["report", str(store), "--gallery", "2"], cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "gradcam: deletion " in result.stdout and "insertion " in result.stdout
    for name in ("report.html", "report.md", "gallery_gradient.png", "gallery_gradcam.png", "curves_deletion.png",
                 "curves_insertion.png"):
        assert (tmp_path / "report" / name).is_file(), name


def test_explain_dataset_resumes_and_refuses_other_arguments(folder, tmp_path, capsys):
    store = tmp_path / "store"
    assert cli.main(command(folder, store, "gradient") + ["--quiet"]) == 0
    first = capsys.readouterr().out
    group = zarr.open_group(str(store), mode="r+")
    group["done"][4:8] = False                          # as if killed while writing their block
    assert cli.main(command(folder, store, "gradient") + ["--quiet"]) == 0
    assert capsys.readouterr().out == first and group["done"][:].all()
    assert cli.main(command(folder, store, "gradient, rise")) == 2
    err = capsys.readouterr().err
    assert "was made with other arguments (differing: method_options, methods)" in err and "Traceback" not in err
    # --masks is read by RISE only: a gradient store is resumed with other masks, a RISE store refused
    assert cli.main(command(folder, store, "gradient") + ["--quiet", "--masks", "7"]) == 0
    assert capsys.readouterr().out == first
    rise = command(folder, tmp_path / "rise", "rise") + ["--quiet", "--masks", "8"]
    assert cli.main(rise) == 0 and cli.main(rise[:-1] + ["9"]) == 2
    assert "was made with other arguments (differing: method_options)" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    (lambda a, w: a.__setitem__(a.index("--data") + 1, str(w / "nothing")), "--data"),
    (lambda a, w: a.extend(["--size", "20"]), "--size 20 20"),
    (lambda a, w: a.extend(["--batch-size", "0"]), "--batch-size must be"),
    (lambda a, w: a.extend(["--block-rows", "6"]), "--block-rows must be a multiple of the dataset's batch size 4"),
    (lambda a, w: a.extend(["--methods", "magic"]), "unknown method"),
    (lambda a, w: a.extend(["--metrics", "deletion, pointing_game"]), "unknown metric(s) pointing_game"),
])
def test_explain_dataset_errors_are_one_clear_line(folder, tmp_path, capsys, change, message):
    args = command(folder, tmp_path / "store")
    change(args, folder)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_report_of_a_missing_store(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "is not an xaifn dataset store" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
