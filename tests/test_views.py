"""Views by structural cloning: networks that cannot be deep-copied, sharing, the original untouched."""
import copy
import threading

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn, ops

import xaifn
from xaifn import _views, explanation


class Locked(nn.Cell):
    """Holds a threading.Lock and an ops.LpNorm with bound arguments (ConvNeXt V2's GRN)."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.config = {"scale": 2.0}
        self.conv = nn.Conv2d(3, 4, 3, pad_mode="same", has_bias=True)
        self.norm = ops.LpNorm(axis=[2, 3], p=2, keep_dims=True)
        self.body = nn.SequentialCell([nn.BatchNorm2d(4), nn.ReLU()])
        self.fc = nn.Dense(4, 3)

    def construct(self, x):
        y = self.body(self.conv(x))
        y = y / (self.norm(y) + 1.0)
        return self.fc(y.mean(axis=(2, 3)))


def test_deepcopy_fails_but_every_method_runs():
    net = Locked()
    with pytest.raises(TypeError):
        copy.deepcopy(net)
    x = ms.Tensor(np.random.default_rng(0).normal(0, 1, (2, 3, 8, 8)), ms.float32)
    for method in (xaifn.gradient, xaifn.deconvolution, xaifn.guided_backprop):
        assert method(net, x, [0, 2]).shape == (2, 1, 8, 8)
    assert xaifn.gradcam(net, x, 1, layer="body").shape == (2, 1, 8, 8)
    assert xaifn.occlusion(net, nn.Softmax(), x, 1, window=4, stride=4).shape == (2, 1, 8, 8)
    masks = xaifn.rise_masks(seed=0, num_masks=8, size=(8, 8))
    assert xaifn.rise(net, nn.Softmax(), x, 1, masks).shape == (2, 1, 8, 8)
    assert explanation.Gradient(net)(x, 1).shape == (2, 1, 8, 8)


def test_clone_shares_what_need_not_be_copied_and_leaves_the_original():
    net = Locked().set_train(True)
    view = _views.eval_view(net)
    assert view is not net and view.body is not net.body and view.body[1] is not net.body[1]
    assert view.body.cell_list[0] is view.body[0]                 # containers remapped
    assert view.lock is net.lock and view.norm is net.norm        # shared, not copied
    assert view.conv.weight is net.conv.weight                    # Parameters shared
    assert [p.name for p in view.get_parameters()] == [p.name for p in net.get_parameters()]
    assert not view.training and net.training and net.body[0].training
    view.config = {"scale": 3.0}
    view.body[1] = nn.Tanh()
    assert net.config == {"scale": 2.0} and type(net.body[1]) is nn.ReLU
    x = ms.Tensor(np.ones((1, 3, 8, 8)), ms.float32)
    np.testing.assert_allclose(_views.eval_view(net)(x).asnumpy(), net.set_train(False)(x).asnumpy())
