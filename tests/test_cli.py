"""The `xaifn` console script as a new user runs it: from another folder, with a model file that
imports its neighbours, factory arguments, presets, grayscale images and a wrong --size."""
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import mindspore as ms
import pytest
from PIL import Image

import xaifn
from xaifn import cli, visual
from xaifn.models import LeNet5

ROOT = pathlib.Path(__file__).resolve().parents[1]


def console_script():
    """The installed `xaifn` script beside this Python (an editable install of this clone in CI)."""
    beside = pathlib.Path(sys.executable).parent / "xaifn"
    found = str(beside) if beside.is_file() else shutil.which("xaifn")
    if found is None:
        pytest.skip("the xaifn console script is not installed (pip install -e .)")
    return found


def run_script(args, cwd):
    """Run `xaifn ARGS` in `cwd` with this checkout's package first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([console_script()] + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A user's folder: a model file importing a neighbour, a checkpoint, a colour and a gray image."""
    where = tmp_path_factory.mktemp("project")
    (where / "blocks.py").write_text("from xaifn.models import LeNet5\n")
    (where / "mynet.py").write_text("from blocks import LeNet5\n\n"
                                    "def build(classes=10, channels=3):\n"
                                    "    return LeNet5(num_class=classes, num_channel=channels)\n")
    ms.set_seed(3)
    ms.save_checkpoint(LeNet5(num_class=6), str(where / "net6.ckpt"))
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (45, 60, 3), dtype=np.uint8)).save(where / "wide.png")
    Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(where / "gray.png")
    return where


def test_console_script_from_another_folder(project, tmp_path):
    out = tmp_path / "out"
    result = run_script(["explain", "--model", str(project / "mynet.py") + ":build", "--model-arg", "classes=6",
                         "--checkpoint", str(project / "net6.ckpt"), str(project / "wide.png"),
                         str(project / "gray.png"), "--methods", "gradient, occlusion", "--window", "8",
                         "--stride", "4", "--output", str(out)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("preprocessing: resize to 32 x 32") and "mean 0.5" in line and "std 0.25" in line
               and "preset demo" in line for line in lines), result.stdout
    assert any("gray.png: grayscale image (L), its one channel repeated to 3" in line for line in lines)
    net = LeNet5(num_class=6)
    ms.load_param_into_net(net, ms.load_checkpoint(str(project / "net6.ckpt")))
    x, _, _ = cli.load_images([str(project / "wide.png")], (32, 32), [0.5], [0.25])
    logits = net(ms.Tensor(x)).asnumpy()[0]
    predicted = int(logits.argmax())
    assert any(line.startswith(f"{project / 'wide.png'}: predicted class {predicted} ") for line in lines)
    # overlays at the image's own size (60 x 45) under a caption naming method, target, prediction
    strip = visual.GRID_TITLE_HEIGHT + visual.GRID_PADDING
    with Image.open(out / "wide_occlusion.png") as image:
        assert image.size[1] == 45 + strip and image.size[0] >= 60
    # --window / --stride reached Occlusion unchanged
    expected = xaifn.occlusion(net, ms.nn.Softmax(), ms.Tensor(x), predicted, window=8, stride=4).asnumpy()[0]
    np.testing.assert_allclose(np.load(out / "wide_occlusion.npy"), expected, rtol=1e-5, atol=1e-7)
    assert (out / "gray_gradient.npy").is_file()


def test_wrong_size_points_at_size_not_a_trace(project):
    # 'module:factory' of a module in the working folder, through the console script
    result = run_script(["explain", "--model", "mynet:build", "--model-arg", "classes=6",
                         "--checkpoint", "net6.ckpt", "wide.png", "--preset", "imagenet", "--size", "48"],
                        cwd=project)
    assert result.returncode == 2
    assert "xaifn explain: error: --size 48 48 with --channels 3: the network cannot run" in result.stderr
    assert "Traceback" not in result.stderr and "C++" not in result.stderr
    assert "mean 0.485, 0.456, 0.406, std 0.229, 0.224, 0.225 (preset imagenet" in result.stdout


def test_help_names_every_method():
    result = run_script(["explain", "--help"], cwd=ROOT)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in cli.METHOD_NAMES:
        assert name in text
    for flag in ("--window", "--stride", "--chunk", "--preset", "--model-arg", "--channels"):
        assert flag in text


def test_model_file_one_channel_network(project, tmp_path, capsys):
    ms.set_seed(4)
    ms.save_checkpoint(LeNet5(num_class=10, num_channel=1), str(tmp_path / "gray.ckpt"))
    args = ["explain", "--model", str(project / "mynet.py") + ":build", "--model-arg", "channels=1",
            "--checkpoint", str(tmp_path / "gray.ckpt"), str(project / "wide.png"), str(project / "gray.png"),
            "--channels", "1", "--output", str(tmp_path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "wide.png: colour image (RGB) converted to grayscale (--channels 1)" in out
    assert not any("gray.png" in line and "converted" in line for line in out.splitlines())
    assert np.load(tmp_path / "gray_gradient.npy").shape == (1, 32, 32)


def test_model_args_are_literals_or_text():
    assert cli.parse_model_args(["a=3", "b=0.5", "c=[1, 2]", "d=resnet", "e='x'"]) == \
        dict(a=3, b=0.5, c=[1, 2], d="resnet", e="x")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        cli.parse_model_args(["novalue"])


def test_methods_with_spaces_and_duplicates():
    assert cli.parse_methods(" gradient , rise,gradient") == ["gradient", "rise"]
    with pytest.raises(ValueError, match="unknown method"):
        cli.parse_methods("gradient, magic")


def test_library_argument_names_are_given_as_options():
    message = "`num_masks` must be a positive int, got 0; `layer` 'conv9' is not a cell; `seed` ..."
    assert cli.in_flags(message, "explain") == "--masks must be a positive int, got 0; --layer 'conv9' is not a cell; `seed` ..."
    assert cli.in_flags("`store` 'x' was made with other arguments", "explain-dataset") == \
        "--out 'x' was made with other arguments"
    assert cli.in_flags("`store` 'x' does not exist.", "report") == "`store` 'x' does not exist."


def test_presets_and_overrides():
    with pytest.raises(ValueError, match="at most 16384"):
        cli.preprocessing("demo", [1000000], None, None, 3)
    size, mean, std, text = cli.preprocessing("imagenet", [64, 48], None, [0.5], 3)
    assert size == (64, 48) and mean == (0.485, 0.456, 0.406) and std == (0.5,)
    assert "resize to 64 x 48" in text and "preset imagenet" in text
