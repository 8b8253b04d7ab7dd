"""GradCAM's `reshape`: built-in layouts recognised from the shape, user functions, clear refusals.

Reference: a token network whose logits are linear in its tokens, so that GradCAM has a float64
closed form once the tokens are laid out on their grid.
"""
import numpy as np
import mindspore as ms
import pytest
from mindspore import nn, ops

import xaifn
from xaifn.gradcam import channels_last, reshape_for, tokens_to_grid
from _numerics import assert_close


class Tokens(nn.Cell):
    """Patches of p x p -> Dense embedding (N, T, D) [+ class token] -> 'mix' (identity cell) ->
    mean over tokens -> Dense. With layout='nhwc' the 'mix' output is (N, gh, gw, D) instead."""

    def __init__(self, size=(8, 12), patch=4, dim=5, num_class=3, class_token=True, layout="tokens"):
        super().__init__()
        self.p, self.grid = patch, (size[0] // patch, size[1] // patch)
        self.embed = nn.Dense(3 * patch * patch, dim)
        self.cls = ms.Parameter(ms.Tensor(np.ones((1, 1, dim)), ms.float32)) if class_token else None
        self.mix = nn.Identity()
        self.layout = layout
        self.fc = nn.Dense(dim, num_class)

    def construct(self, x):
        n, c = x.shape[0], x.shape[1]
        gh, gw = self.grid
        patches = x.reshape(n, c, gh, self.p, gw, self.p).transpose(0, 2, 4, 1, 3, 5)
        tokens = self.embed(patches.reshape(n, gh * gw, c * self.p * self.p))
        if self.layout == "nhwc":
            return self.fc(self.mix(tokens.reshape(n, gh, gw, -1)).mean(axis=(1, 2)))
        if self.cls is not None:
            tokens = ops.cat([ops.broadcast_to(self.cls, (n, 1, tokens.shape[2])), tokens], 1)
        return self.fc(self.mix(tokens).mean(axis=1))


def _reference(net, x, t):
    """A = tokens on the grid (N, D, gh, gw); dA = W_fc[t] / T for every token."""
    n, gh, gw, p = x.shape[0], net.grid[0], net.grid[1], net.p
    patches = x.reshape(n, 3, gh, p, gw, p).transpose(0, 2, 4, 1, 3, 5).reshape(n, gh * gw, -1)
    w_e, b_e = (v.asnumpy().astype(np.float64) for v in (net.embed.weight, net.embed.bias))
    tokens = patches @ w_e.T + b_e                                      # (N, T, D)
    count = gh * gw + (1 if net.cls is not None and net.layout == "tokens" else 0)
    grads = net.fc.weight.asnumpy().astype(np.float64)[t][:, None, :] / count
    alpha = grads[:, 0, :]                                              # same for every token
    cam = np.maximum((tokens * alpha[:, None, :]).sum(-1), 0).reshape(n, 1, gh, gw)
    return cam


def _upsample(cam, size):
    from test_gradcam import resize_bilinear_np  # pylint: disable=import-outside-toplevel
    return resize_bilinear_np(cam, size)


@pytest.mark.parametrize("class_token", [True, False])
@pytest.mark.parametrize("layout", ["tokens", "nhwc"])
def test_builtin_reshapes_closed_form(class_token, layout):
    # channel-last is recognised when the last axis cannot be a width of the input (D > W)
    net = Tokens(class_token=class_token, layout=layout, dim=16)
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 8, 12)).astype(np.float32)
    t = np.array([0, 2])
    got = xaifn.gradcam(net, ms.Tensor(x), ms.Tensor(t, ms.int32), layer="mix")
    assert_close(got, _upsample(_reference(net, x.astype(np.float64), t), (8, 12)), rtol=1e-4)


def test_user_reshape_equals_builtin():
    net = Tokens()
    x = ms.Tensor(np.random.default_rng(1).normal(0, 1, (2, 3, 8, 12)), ms.float32)
    auto = xaifn.gradcam(net, x, 1, layer="mix").asnumpy()
    given = xaifn.gradcam(net, x, 1, layer="mix", reshape=tokens_to_grid(1, (2, 3))).asnumpy()
    np.testing.assert_array_equal(auto, given)
    wrong = xaifn.gradcam(net, x, 1, layer="mix", reshape=tokens_to_grid(1, (3, 2))).asnumpy()
    assert not np.allclose(auto, wrong)


def test_recognition_from_shapes():
    assert reshape_for("l", (1, 8, 4, 4), (32, 32))[1] == ("identity",)
    assert reshape_for("l", (1, 4, 4, 768), (32, 32))[1] == ("channels_last",)
    assert reshape_for("l", (1, 197, 768), (224, 224))[1] == ("tokens", 1, (14, 14))
    assert reshape_for("l", (1, 49, 768), (224, 224))[1] == ("tokens", 0, (7, 7))
    assert reshape_for("l", (1, 6, 5), (8, 12))[1] == ("tokens", 0, (2, 3))
    with pytest.raises(ValueError, match="198 tokens.*`reshape=`"):   # DeiT: class + distillation
        reshape_for("l", (1, 198, 768), (224, 224))
    with pytest.raises(ValueError, match=r"\(1, 7, 16, 3, 3\).*4-D.*`reshape=`"):
        reshape_for("l", (1, 7, 16, 3, 3), (32, 32))
    assert channels_last(ms.Tensor(np.zeros((1, 2, 3, 4)), ms.float32)).shape == (1, 4, 2, 3)


def test_bad_reshape_is_refused_before_work():
    net = Tokens()
    x = ms.Tensor(np.ones((1, 3, 8, 12)), ms.float32)
    with pytest.raises(ValueError, match="`reshape` must turn.*'mix'.*\\(N, K, h, w\\)"):
        xaifn.gradcam(net, x, 1, layer="mix", reshape=lambda a: a)
    with pytest.raises(TypeError, match="`reshape`"):
        xaifn.gradcam(net, x, 1, layer="mix", reshape="tokens")
    with pytest.raises(ValueError, match="layer=''"):
        xaifn.gradcam(net, x, 1, layer="", reshape=channels_last)
