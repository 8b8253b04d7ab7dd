"""The main job (`xaifn demo --quick`) and the `xaifn explain` command, run end to end."""
import json

import numpy as np
import mindspore as ms
import pytest
from PIL import Image

from xaifn import cli, demo, ood, visual
from xaifn.models import LeNet5


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert cli.main(["demo", "--quick", "--images", "8", "--output", str(out)]) == 0
    return out, json.loads((out / "report.json").read_text())


def test_demo_writes_every_output(quick_demo):
    out, report = quick_demo
    for name in ["gallery.png", "classifier.ckpt", "ood_head.ckpt", "report.md", "report.json"]:
        assert (out / name).is_file(), name
    for method in demo.METHODS:
        assert (out / f"{method}.png").is_file(), method
        assert method in report["methods"] and method in (out / "report.md").read_text()
        assert report["methods"][method]["seconds_per_image"] > 0


def test_demo_gallery_is_a_png_of_the_expected_size(quick_demo):
    out, _ = quick_demo
    columns, rows, cell, pad = 1 + len(demo.METHODS), 8, 96, visual.GRID_PADDING
    with Image.open(out / "gallery.png") as image:
        assert image.format == "PNG"
        assert image.size == (columns * cell + (columns + 1) * pad,
                              visual.GRID_TITLE_HEIGHT + rows * cell + (rows + 1) * pad)


def test_demo_classifier_learns_and_gradcam_points_at_the_shape(quick_demo):
    _, report = quick_demo
    assert report["accuracy"] >= 0.9
    chance = report["pointing_game_chance"]
    assert chance < 0.25
    assert report["methods"]["gradcam"]["pointing_game"] >= chance + 0.3


def test_demo_checkpoints_reload(quick_demo):
    out, _ = quick_demo
    net = LeNet5(num_class=4)
    missing, _ = ms.load_param_into_net(net, ms.load_checkpoint(str(out / "classifier.ckpt")))
    assert not missing
    assert set(ood.load(out / "ood_head.ckpt")) == set(ood.init(0, 84, 4))


def test_pointing_game_counts_hits_inside_boxes():
    maps = np.zeros((2, 1, 8, 8), np.float32)
    maps[0, 0, 2, 3] = 1  # inside box 0
    maps[1, 0, 7, 7] = 1  # outside box 1
    boxes = np.array([[1, 1, 4, 4], [0, 0, 4, 4]])
    assert demo.pointing_game(maps, boxes).tolist() == [True, False]


@pytest.fixture(scope="module")
def user_model(tmp_path_factory):
    where = tmp_path_factory.mktemp("user")
    ms.set_seed(1)
    net = LeNet5()
    ms.save_checkpoint(net, str(where / "net.ckpt"))
    ood.save(ood.init(0, 84, 10), where / "head.ckpt")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(where / name)
    return where


@pytest.mark.parametrize("method", demo.METHODS)
def test_explain_writes_overlays_and_maps(user_model, tmp_path, method):
    where = user_model
    args = ["explain", "--model", "xaifn.models:LeNet5", "--checkpoint", str(where / "net.ckpt"),
            str(where / "a.png"), str(where / "b.jpg"), "--methods", method, "--masks", "40",
            "--layer", "conv2", "--ood-checkpoint", str(where / "head.ckpt"), "--output", str(tmp_path)]
    assert cli.main(args) == 0
    for stem in ("a", "b"):
        saliency = np.load(tmp_path / f"{stem}_{method}.npy")
        assert saliency.shape == (1, 32, 32) and np.isfinite(saliency).all()
        with Image.open(tmp_path / f"{stem}_{method}.png") as image:  # the 30 x 40 image under a caption
            strip = visual.GRID_TITLE_HEIGHT + visual.GRID_PADDING
            assert image.size[1] == 40 + strip and image.size[0] >= 30


def test_explain_target_and_model_from_a_file(user_model, tmp_path):
    where = user_model
    (where / "mynet.py").write_text("from xaifn.models import LeNet5\n\ndef build():\n    return LeNet5()\n")
    args = ["explain", "--model", f"{where / 'mynet.py'}:build", "--checkpoint", str(where / "net.ckpt"),
            str(where / "a.png"), "--target", "3", "--output", str(tmp_path)]
    assert cli.main(args) == 0
    import xaifn  # the map is the gradient of class 3 of the loaded network on the loaded image
    x, _, _ = cli.load_images([str(where / "a.png")], (32, 32), [0.5], [0.25])
    expected = xaifn.gradient(cli.load_network("xaifn.models:LeNet5", str(where / "net.ckpt")), ms.Tensor(x), 3)
    np.testing.assert_allclose(np.load(tmp_path / "a_gradient.npy"), expected.asnumpy()[0], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("change, message", [
    (lambda a, w: a.__setitem__(5, str(w / "missing.png")), "does not exist"),
    (lambda a, w: a.__setitem__(4, str(w / "a.png")), "not a readable MindSpore checkpoint"),
    (lambda a, w: a.__setitem__(4, str(w / "nothing.ckpt")), "does not exist"),
    (lambda a, w: a.__setitem__(2, "xaifn.models:NoSuchNet"), "no attribute"),
    (lambda a, w: a.__setitem__(2, "xaifn.models"), "module:factory"),
    (lambda a, w: a.extend(["--methods", "gradcam", "--layer", "conv9"]), "conv9"),
    (lambda a, w: a.extend(["--methods", "magic"]), "unknown method"),
    (lambda a, w: a.extend(["--methods", "rise_plus"]), "--ood-checkpoint"),
    (lambda a, w: a.extend(["--target", "99"]), "--target 99 is out of range"),
    (lambda a, w: a.extend(["--methods", " , "]), "--methods"),
    (lambda a, w: a.extend(["--model-arg", "9=1"]), "--model-arg"),
    (lambda a, w: a.extend(["--model-arg", "depth=3"]), "--model-arg depth"),
    (lambda a, w: a.extend(["--mean", "0.1", "0.2"]), "--mean must give 1 or 3 values"),
    (lambda a, w: a.extend(["--std", "0"]), "--std must be non-zero"),
    (lambda a, w: a.extend(["--size", "0"]), "--size must be"),
    (lambda a, w: a.extend(["--methods", "occlusion", "--chunk", "0"]), "chunk"),
])
def test_explain_errors_are_one_clear_line(user_model, tmp_path, capsys, change, message):
    where = user_model
    args = ["explain", "--model", "xaifn.models:LeNet5", "--checkpoint", str(where / "net.ckpt"),
            str(where / "a.png"), "--output", str(tmp_path)]
    change(args, where)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
