"""The demo's metrics table: box masks, `judge` (one method's metrics) and the curves picture."""
import functools

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn
from PIL import Image

import xaifn
from xaifn import demo, metrics


def test_box_masks_match_the_pointing_game_boxes():
    masks = demo.box_masks(np.array([[1, 2, 3, 5], [0, 0, 8, 8]]), (8, 8))
    assert masks.shape == (2, 1, 8, 8)
    assert masks[0, 0].sum() == 6 and masks[0, 0, 1:3, 2:5].all() and masks[1].all()


def test_judge_reports_the_metrics_of_xaifn_metrics(pzoo, tmp_path):
    net, _, _ = pzoo.linear_net((3, 8, 8), num_class=4, seed=41)
    activation = nn.Softmax()
    x = ms.Tensor(np.random.default_rng(42).random((3, 3, 8, 8)), ms.float32)
    targets = ms.Tensor([0, 1, 3], ms.int32)
    explain = functools.partial(xaifn.gradient, net)
    maps = explain(x, targets).asnumpy()
    boxes = np.array([[0, 0, 4, 4], [2, 2, 6, 6], [4, 4, 8, 8]])
    scores, deletion, insertion = demo.judge(net, activation, explain, x, targets, maps, boxes, seed=0,
                                             perturbations=2)
    masks = demo.box_masks(boxes, (8, 8))
    assert scores["deletion"] == np.float32(metrics.deletion_auc(net, activation, x, targets, maps).asnumpy().mean())
    assert scores["iosr"] == np.float32(metrics.iosr(maps, masks).asnumpy().mean())
    assert scores["pointing_game"] == pytest.approx(metrics.pointing_game(maps, masks, radius=1).asnumpy().mean())
    assert scores["max_sensitivity"] == 1.0                 # the gradient of a linear net is constant
    assert deletion.shape == insertion.shape == (9,)       # floor(sqrt(64)) = 8 steps, plus the start
    demo.plot_curves(tmp_path / "curves.png", {"gradient": (deletion, insertion), "other": (insertion, deletion)})
    assert Image.open(tmp_path / "curves.png").format == "PNG"
    assert "| gradient |" in demo._markdown(dict(  # pylint: disable=protected-access
        accuracy=1.0, ood_auroc=0.5, pointing_game_chance=0.1, rise_masks=1, occlusion_window=1,
        occlusion_stride=1, max_sensitivity_perturbations=2,
        methods={"gradient": dict(seconds_per_image=0.1, **scores)}))
