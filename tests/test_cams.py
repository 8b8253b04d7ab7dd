"""The CAM family (GradCAM++, XGradCAM, LayerCAM, HiResCAM, EigenCAM, ScoreCAM) and Guided GradCAM
against float64 numpy references.

On AvgPool -> Flatten -> Dense at layer 'pool': A = avgpool(x) and dy_t/dA = W_t, so every variant
has a closed form. Cross-method properties are in test_properties.py.
"""
import numpy as np
import mindspore as ms
import pytest
from hypothesis import given, settings, strategies as st
from mindspore import nn, ops

import xaifn
from xaifn import cams
from xaifn.scorecam import normalised_masks
from _numerics import assert_close, softmax_np
from test_gradcam import avg_pool_np, resize_bilinear_np

SETTINGS = settings(max_examples=3, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)
SHAPE, KERNEL, STRIDE = (3, 9, 13), 3, 2      # a 4 x 6 map, non-integer upsampling scales


def normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def safe_divide_np(a, b):
    return np.where(b != 0, a / np.where(b != 0, b, 1), 0.0)


def eigencam_np(a):
    out = []
    for sample in a:
        pixels = sample.reshape(sample.shape[0], -1).T
        centred = pixels - pixels.mean(axis=0)
        v = np.linalg.svd(centred)[2][0]
        out.append((centred @ (v if v.sum() >= 0 else -v)).reshape(sample.shape[1:]))
    return np.array(out)[:, None]


#: name -> (function, float64 map before the ReLU from (A, g))
VARIANTS = {
    "gradcam": (xaifn.gradcam, lambda a, g: (g.mean(axis=(2, 3), keepdims=True) * a).sum(1, keepdims=True)),
    "gradcam_plus_plus": (xaifn.gradcam_plus_plus, lambda a, g: (
        (np.maximum(g, 0) * safe_divide_np(g ** 2, 2 * g ** 2 + a.sum(axis=(2, 3), keepdims=True) * g ** 3))
        .sum(axis=(2, 3), keepdims=True) * a).sum(1, keepdims=True)),
    "xgradcam": (xaifn.xgradcam, lambda a, g: (safe_divide_np(
        (a * g).sum(axis=(2, 3), keepdims=True), a.sum(axis=(2, 3), keepdims=True)) * a).sum(1, keepdims=True)),
    "layercam": (xaifn.layercam, lambda a, g: (np.maximum(g, 0) * a).sum(1, keepdims=True)),
    "hirescam": (xaifn.hirescam, lambda a, g: (g * a).sum(1, keepdims=True)),
    "eigencam": (xaifn.eigencam, lambda a, g: eigencam_np(a)),
}


@pytest.fixture(scope="module")
def pool_net(zoo):
    net = zoo.PoolDense(shape=SHAPE, kernel=KERNEL, stride=STRIDE, num_class=4)
    return zoo.set_params(net, zoo.random_params(net, seed=7))


def pool_forward_np(net, x):
    a = avg_pool_np(x, KERNEL, STRIDE)
    return a.reshape(len(x), -1) @ net.fc.weight.asnumpy().astype(np.float64).T + net.fc.bias.asnumpy()


@pytest.mark.parametrize("name", list(VARIANTS))
@SETTINGS
@given(seed=SEEDS, targets=st.lists(st.integers(0, 3), min_size=2, max_size=2))
def test_variants_match_float64_closed_forms(pool_net, name, seed, targets):
    function, reference = VARIANTS[name]
    x = normal(seed, (2,) + SHAPE) + 0.3
    a = avg_pool_np(x.astype(np.float64), KERNEL, STRIDE)
    g = pool_net.fc.weight.asnumpy().astype(np.float64)[targets].reshape(a.shape)
    raw = np.maximum(reference(a, g), 0)
    got = function(pool_net, ms.Tensor(x), targets, layer="pool", resize=False)
    assert got.shape == (2, 1, 4, 6) and got.dtype == ms.float32
    assert_close(got, raw, rtol=1e-4 if name == "eigencam" else 1e-5)
    assert_close(function(pool_net, ms.Tensor(x), targets, layer="pool"), resize_bilinear_np(raw, SHAPE[1:]),
                 rtol=1e-4 if name == "eigencam" else 1e-5)


def test_variants_differ(pool_net):
    """On one input the six maps are pairwise distinct: a swapped formula cannot go unnoticed."""
    x = ms.Tensor(normal(3, (2,) + SHAPE) + 0.3)
    maps = {name: f(pool_net, x, [1, 2], layer="pool", resize=False).asnumpy() for name, (f, _) in VARIANTS.items()}
    names = list(maps)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not np.allclose(maps[first], maps[second]), (first, second)


class OneChannel(nn.Cell):
    """Conv 1 -> 1 channel ('conv'), global mean, Dense(1, L): dy_t/dA = v_t / (h w), constant."""

    def __init__(self, num_class=3):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 3, pad_mode="valid", has_bias=True)
        self.fc = nn.Dense(1, num_class)

    def construct(self, x):
        return self.fc(self.conv(x).mean(axis=(2, 3)))


def test_gradcam_plus_plus_on_a_one_channel_layer(zoo):
    """One channel, constant gradient c: w = h w relu(c) / (2 + c sum A), cam = ReLU(w A)."""
    net = zoo.set_params(OneChannel(), zoo.random_params(OneChannel(), seed=3))
    x = normal(4, (3, 2, 7, 8))
    probed = xaifn.layer_probe_view(net, "conv", (3, 1, 5, 6))
    a = xaifn.layer_activation_gradient(probed, ms.Tensor(x), ms.Tensor([0, 1, 2], ms.int32))[0].asnumpy()
    a = a.astype(np.float64)
    c = net.fc.weight.asnumpy()[:, 0].astype(np.float64)[[0, 1, 2]] / 30
    w = 30 * np.maximum(c, 0) / (2 + c * a.sum(axis=(1, 2, 3)))
    expected = np.maximum(w[:, None, None, None] * a, 0)
    got = xaifn.gradcam_plus_plus(net, ms.Tensor(x), [0, 1, 2], layer="conv", resize=False)
    assert_close(got, expected, rtol=1e-5)
    assert (c < 0).any() and (c > 0).any()        # both branches of relu(c) are exercised


def test_eigencam_sign_is_fixed_and_targets_do_not_matter(pool_net):
    x = ms.Tensor(normal(5, (2,) + SHAPE) + 0.3)
    first = xaifn.eigencam(pool_net, x, 0, layer="pool").asnumpy()
    np.testing.assert_array_equal(first, xaifn.eigencam(pool_net, x, [3, 1], layer="pool").asnumpy())
    assert (first > 0).any()


# --------------------------------------------------------------------------------------------
# ScoreCAM against a direct numpy loop over the channels.
# --------------------------------------------------------------------------------------------

def scorecam_np(net, x, targets):
    """For each sample and channel: upsample, min-max normalise, mask, forward, softmax; in float64."""
    x = x.astype(np.float64)
    a = avg_pool_np(x, KERNEL, STRIDE)
    out = np.zeros((len(x), targets.shape[1]) + a.shape[2:])
    for n in range(len(x)):
        scores = np.zeros((targets.shape[1], a.shape[1]))
        for k in range(a.shape[1]):
            up = resize_bilinear_np(a[n:n + 1, k:k + 1], x.shape[2:])[0, 0]
            mask = (up - up.min()) / (up.max() - up.min())
            probabilities = softmax_np(pool_forward_np(net, x[n:n + 1] * mask))[0]
            scores[:, k] = probabilities[targets[n]]
        for j in range(targets.shape[1]):
            out[n, j] = np.maximum(np.tensordot(softmax_np(scores[j]), a[n], 1), 0)
    return out


@pytest.mark.parametrize("chunk", [1, 256])
def test_scorecam_matches_a_direct_loop(pool_net, chunk):
    x = normal(6, (2,) + SHAPE)
    targets = np.array([[0, 3], [2, 2]], np.int32)
    expected = scorecam_np(pool_net, x, targets)
    got = xaifn.scorecam(pool_net, nn.Softmax(), ms.Tensor(x), ms.Tensor(targets), layer="pool", chunk=chunk,
                         resize=False)
    assert got.shape == (2, 2, 4, 6)
    assert_close(got, expected, rtol=1e-5)
    one = xaifn.scorecam(pool_net, nn.Softmax(), ms.Tensor(x), [0, 2], layer="pool", chunk=chunk)
    assert one.shape == (2, 1) + SHAPE[1:]
    assert_close(one, resize_bilinear_np(expected[:, :1], SHAPE[1:]), rtol=1e-5)


def test_scorecam_constant_channel_gives_a_zero_mask():
    masks = normalised_masks(ms.Tensor(np.array([[[[2.0, 2.0]], [[1.0, 3.0]]]], np.float32)), (1, 2))
    np.testing.assert_array_equal(masks.asnumpy(), [[[[0.0, 0.0]], [[0.0, 1.0]]]])


# --------------------------------------------------------------------------------------------
# Guided GradCAM: closed form on nn.ReLU -> Flatten -> Dense, at the input (A = x).
# --------------------------------------------------------------------------------------------

def test_guided_gradcam_closed_form(zoo):
    net = zoo.ReluDense(shape=(3, 4, 5), num_class=4)
    zoo.set_params(net, zoo.random_params(net, seed=11))
    x = normal(12, (2, 3, 4, 5)).astype(np.float64)
    targets = [1, 3]
    w_t = net.fc.weight.asnumpy().astype(np.float64)[targets].reshape(x.shape)
    g = w_t * (x > 0)                                                   # the true gradient at x
    cam = np.maximum((g.mean(axis=(2, 3), keepdims=True) * x).sum(1, keepdims=True), 0)
    expected = np.maximum(g, 0) * cam
    got = xaifn.guided_gradcam(net, ms.Tensor(x.astype(np.float32)), targets)
    assert got.shape == (2, 3, 4, 5)
    assert_close(got, expected, rtol=1e-5)


def test_guided_gradcam_at_a_layer_is_guided_backprop_times_gradcam(zoo):
    net = zoo.twin(zoo.GlobalNet, zoo.random_params(zoo.GlobalNet(), seed=13))
    x = ms.Tensor(normal(14, (2, 3, 8, 8)))
    guided = xaifn.input_gradient(xaifn.rule_view(net, "guided_backprop"), x, ms.Tensor([0, 4], ms.int32))
    expected = guided.asnumpy() * xaifn.gradcam(net, x, [0, 4], layer="conv2").asnumpy()
    assert_close(xaifn.guided_gradcam(net, x, [0, 4], layer="conv2"), expected, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# The traceable cores inside a user's Cell, and errors.
# --------------------------------------------------------------------------------------------

class _CamCell(nn.Cell):
    def __init__(self, probed):
        super().__init__()
        self.probed = probed

    def construct(self, x, t):
        a, g = xaifn.layer_activation_gradient(self.probed, x, t)
        forward_only, _ = xaifn.layer_activation(self.probed, x)
        return ops.stack([cams.gradcam_plus_plus_cam(a, g), cams.xgradcam_cam(a, g), cams.layercam_cam(a, g),
                          cams.hirescam_cam(a, g), cams.eigencam_cam(forward_only)])


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_traceable_cores_inside_a_cell(zoo, mode):
    net = zoo.twin(zoo.GlobalNet, zoo.random_params(zoo.GlobalNet(), seed=15))
    x, t = ms.Tensor(normal(16, (2, 3, 8, 8))), ms.Tensor([1, 2], ms.int32)
    cell = _CamCell(xaifn.layer_probe_view(net, "conv2", (2, 6, 4, 4)))
    if mode == "graph":
        with zoo.graph_mode():
            got = cell(x, t).asnumpy()
    else:
        got = cell(x, t).asnumpy()
    for row, function in enumerate([xaifn.gradcam_plus_plus, xaifn.xgradcam, xaifn.layercam, xaifn.hirescam,
                                    xaifn.eigencam]):
        assert_close(np.maximum(got[row], 0), function(net, x, t, layer="conv2", resize=False).asnumpy(),
                     rtol=1e-4)


@pytest.mark.parametrize("call, error, message", [
    (lambda net, x: xaifn.layercam(net, x, 1, layer="pool", resize=1), TypeError, "`resize` must be a bool"),
    (lambda net, x: xaifn.hirescam(net, x, 1, layer="pol"), ValueError, "Close names: pool"),
    (lambda net, x: xaifn.eigencam(net, x, 9, layer="pool"), ValueError, r"\[0, 4\)"),
    (lambda net, x: xaifn.scorecam(net, "softmax", x, 1, layer="pool"), TypeError, "`activation_fn`"),
    (lambda net, x: xaifn.scorecam(net, nn.Softmax(), x, 1, layer="pool", chunk=0), ValueError, "`chunk`"),
    (lambda net, x: xaifn.scorecam(net, nn.Softmax(), x, 1, layer="pool", resize="no"), TypeError, "`resize`"),
    (lambda net, x: xaifn.guided_gradcam(net, x, [1, 2, 3], layer="pool"), ValueError, "length 2"),
    (lambda net, x: xaifn.gradcam_plus_plus(net, x.asnumpy(), 1, layer="pool"), TypeError, "`inputs`"),
    (lambda net, x: xaifn.xgradcam(net, x.astype(ms.float64), 1, layer="pool"), TypeError, "`inputs` must have the dt"),
    (lambda net, x: xaifn.eigencam(net, x.astype(ms.float64), 1, layer="pool"), TypeError, "`inputs` must have the dt"),
])
def test_bad_arguments(pool_net, call, error, message):
    with pytest.raises(error, match=message):
        call(pool_net, ms.Tensor(normal(0, (2,) + SHAPE)))


class _NoBackward(nn.Cell):
    """The identity, whose backward cannot be compiled (a wrong-shaped gradient)."""

    def construct(self, x):
        return x

    def bprop(self, x, out, dout):  # pylint: disable=unused-argument
        return (ops.zeros((1,), ms.float32),)


class _PoolNoBackward(nn.Cell):
    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(KERNEL, STRIDE)
        self.stop = _NoBackward()
        self.fc = nn.Dense(3 * 4 * 6, 4)

    def construct(self, x):
        return self.fc(self.stop(self.pool(x)).reshape(x.shape[0], -1))


def test_eigencam_and_scorecam_run_no_backward_pass(zoo):
    """They read the layer's output only: a network whose backward fails still gets its maps."""
    net = zoo.set_params(_PoolNoBackward(), zoo.random_params(_PoolNoBackward(), seed=7))
    x = normal(18, (2,) + SHAPE)
    a = avg_pool_np(x.astype(np.float64), KERNEL, STRIDE)
    assert_close(xaifn.eigencam(net, ms.Tensor(x), 1, layer="pool", resize=False), np.maximum(eigencam_np(a), 0),
                 rtol=1e-4)
    cam = xaifn.scorecam(net, nn.Softmax(), ms.Tensor(x), [0, 2], layer="pool", resize=False)
    assert cam.shape == (2, 1, 4, 6) and np.isfinite(cam.asnumpy()).all()


def test_variants_read_token_layers_through_reshape():
    """A ViT-like token layer (class token + 2 x 3 patches), reshape recognised from the shape."""
    from test_reshape import Tokens  # pylint: disable=import-outside-toplevel
    net = Tokens(class_token=True, dim=6)
    x = normal(17, (2, 3, 8, 12)).astype(np.float64)
    t = [0, 2]
    patches = x.reshape(2, 3, 2, 4, 3, 4).transpose(0, 2, 4, 1, 3, 5).reshape(2, 6, -1)
    tokens = patches @ net.embed.weight.asnumpy().astype(np.float64).T + net.embed.bias.asnumpy()
    a = tokens.transpose(0, 2, 1).reshape(2, 6, 2, 3)                     # (N, D, gh, gw)
    g = np.broadcast_to((net.fc.weight.asnumpy().astype(np.float64)[t] / 7)[:, :, None, None], a.shape)
    for name, (function, reference) in VARIANTS.items():
        got = function(net, ms.Tensor(x.astype(np.float32)), t, layer="mix", resize=False)
        assert_close(got, np.maximum(reference(a, g), 0), rtol=1e-4)
    cam = xaifn.scorecam(net, nn.Softmax(), ms.Tensor(x.astype(np.float32)), t, layer="mix", chunk=5)
    assert cam.shape == (2, 1, 8, 12) and np.isfinite(cam.asnumpy()).all()


def _nan_scores(logits):
    return logits * np.nan


def test_scorecam_with_non_finite_scores_raises_naming_it(pool_net):
    with pytest.raises(FloatingPointError, match="^scorecam: .*non-finite"):
        xaifn.scorecam(pool_net, _nan_scores, ms.Tensor(normal(19, (2,) + SHAPE)), 1, layer="pool")
