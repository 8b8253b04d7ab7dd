"""GradCAM: closed forms against float64 numpy references, the building blocks, the class API.

    cam = ReLU(sum_k mean_hw(dy_t/dA)_k * A_k), resized to (H, W) by float bilinear interpolation
    with half-pixel centres (align_corners=False).

Cross-method properties (batching, target forms, modes, determinism, the network untouched, new
weights, non-square inputs) are in test_gradient_family.py, parametrised over GradCAM too.
"""
import numpy as np
import mindspore as ms
import pytest
from hypothesis import given, settings, strategies as st
from mindspore import nn

import xaifn
from xaifn import explanation
from xaifn.models import LeNet5, SmallResNet

SETTINGS = settings(max_examples=5, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)


def normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def f64(param):
    return param.asnumpy().astype(np.float64)


def assert_close(got, expected, rtol=1e-5):
    expected = np.asarray(expected, np.float64)
    atol = rtol * max(np.abs(expected).max(), 1e-30)
    np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=rtol, atol=atol)


def resize_bilinear_np(images, size, align_corners=False):
    """(N, C, h, w) -> (N, C, H, W), float64 bilinear, half-pixel centres, clamped at the edges.

    `align_corners=True` (corner pixels aligned) only serves to show that the tests can tell.
    """
    images = np.asarray(images, np.float64)

    def axis(n_in, n_out):
        if align_corners:
            src = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        else:
            src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        src = np.clip(src, 0, n_in - 1)
        low = np.floor(src).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, src - low

    y0, y1, wy = axis(images.shape[2], size[0])
    x0, x1, wx = axis(images.shape[3], size[1])
    rows = images[:, :, y0, :] * (1 - wy)[:, None] + images[:, :, y1, :] * wy[:, None]
    return rows[:, :, :, x0] * (1 - wx) + rows[:, :, :, x1] * wx


def gradcam_np(activation, grads, size):
    """The whole GradCAM map in float64 from A and dy/dA."""
    alpha = np.asarray(grads, np.float64).mean(axis=(2, 3), keepdims=True)
    cam = np.maximum((alpha * activation).sum(axis=1, keepdims=True), 0)
    return resize_bilinear_np(cam, size)


def avg_pool_np(x, kernel, stride):
    n, c, h, w = x.shape
    out = np.zeros((n, c, (h - kernel) // stride + 1, (w - kernel) // stride + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel].mean((2, 3))
    return out


# --------------------------------------------------------------------------------------------
# The float64 reference resize, and gradcam_map against it.
# --------------------------------------------------------------------------------------------

def test_reference_resize_is_half_pixel():
    row = np.array([0.0, 1.0]).reshape(1, 1, 1, 2)
    np.testing.assert_allclose(resize_bilinear_np(row, (1, 4)), [[[[0, 0.25, 0.75, 1]]]])
    column = row.reshape(1, 1, 2, 1)
    np.testing.assert_allclose(resize_bilinear_np(column, (4, 3))[0, 0, :, 1], [0, 0.25, 0.75, 1])
    image = np.random.default_rng(0).random((1, 2, 3, 5))
    np.testing.assert_allclose(resize_bilinear_np(image, (3, 5)), image)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, n=st.integers(1, 2), k=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6),
       big_h=st.integers(1, 15), big_w=st.integers(1, 15))
def test_gradcam_map_matches_reference(seed, n, k, h, w, big_h, big_w):
    activation = normal(seed, (n, k, h, w))
    grads = normal(seed + 1, (n, k, h, w))
    got = xaifn.gradcam_map(ms.Tensor(activation), ms.Tensor(grads), (big_h, big_w))
    assert got.shape == (n, 1, big_h, big_w)
    assert_close(got.asnumpy(), gradcam_np(activation, grads, (big_h, big_w)))


def test_gradcam_map_applies_relu_after_the_channel_sum():
    activation = np.array([[[[1.0, 2.0]], [[3.0, 1.0]]]], np.float32)      # (1, 2, 1, 2)
    grads = np.array([[[[1.0, 1.0]], [[-1.0, -1.0]]]], np.float32)         # alpha = (1, -1)
    got = xaifn.gradcam_map(ms.Tensor(activation), ms.Tensor(grads), (1, 2)).asnumpy()
    np.testing.assert_array_equal(got, [[[[0.0, 1.0]]]])  # ReLU(1-3, 2-1); per-channel ReLU gives (1, 2)


# --------------------------------------------------------------------------------------------
# Closed form: AvgPool -> Flatten -> Dense, layer = 'pool'. A = avgpool(x), dy_t/dA = W_t.
# --------------------------------------------------------------------------------------------

POOL_CONFIGS = {
    "9x13_k3s2": dict(shape=(3, 9, 13), kernel=3, stride=2),  # 4 x 6 map, non-integer scales
    "8x12_k2s2": dict(shape=(2, 8, 12), kernel=2, stride=2),  # 4 x 6 map, scale 2
}


@pytest.fixture(scope="module")
def pool_nets(zoo):
    nets = {}
    for name, config in POOL_CONFIGS.items():
        net = zoo.PoolDense(num_class=4, **config)
        nets[name] = zoo.set_params(net, zoo.random_params(net, seed=7))
    return nets


def pool_dense_expected(net, config, x, targets):
    c, h, w = config["shape"]
    activation = avg_pool_np(x.astype(np.float64), config["kernel"], config["stride"])
    grads = f64(net.fc.weight)[targets].reshape(activation.shape)
    return activation, grads, gradcam_np(activation, grads, (h, w))


@pytest.mark.parametrize("config", list(POOL_CONFIGS))
@SETTINGS
@given(seed=SEEDS, targets=st.lists(st.integers(0, 3), min_size=2, max_size=2))
def test_pool_dense_closed_form(pool_nets, config, seed, targets):
    net = pool_nets[config]
    x = normal(seed, (2,) + POOL_CONFIGS[config]["shape"])
    activation, grads, expected = pool_dense_expected(net, POOL_CONFIGS[config], x, targets)
    got = xaifn.gradcam(net, ms.Tensor(x), targets, layer="pool")
    assert got.shape == (2, 1) + x.shape[2:]
    assert_close(got.asnumpy(), expected)
    assert_close(explanation.GradCAM(net, "pool")(ms.Tensor(x), targets).asnumpy(), expected)

    probed = xaifn.layer_probe_view(net, "pool", activation.shape)
    a, g = xaifn.layer_activation_gradient(probed, ms.Tensor(x), ms.Tensor(targets, ms.int32))
    assert_close(a.asnumpy(), activation)
    assert_close(g.asnumpy(), grads)


def test_pool_dense_closed_form_is_discriminating(pool_nets):
    """On this input, align_corners=True or a ReLU per channel (before the sum) would differ."""
    config = POOL_CONFIGS["9x13_k3s2"]
    net = pool_nets["9x13_k3s2"]
    x = normal(3, (2,) + config["shape"])
    activation, grads, expected = pool_dense_expected(net, config, x, [1, 2])
    got = xaifn.gradcam(net, ms.Tensor(x), [1, 2], layer="pool").asnumpy()
    assert_close(got, expected)
    assert (expected == 0).any() and (expected > 0).any()
    alpha = grads.mean(axis=(2, 3), keepdims=True)
    per_channel_relu = resize_bilinear_np(np.maximum(alpha * activation, 0).sum(1, keepdims=True), (9, 13))
    assert not np.allclose(got, per_channel_relu, rtol=1e-3)
    cam = np.maximum((alpha * activation).sum(1, keepdims=True), 0)
    corners = resize_bilinear_np(cam, (9, 13), align_corners=True)
    assert not np.allclose(got, corners, rtol=1e-3)


@pytest.mark.parametrize("scale", [1e-4, 1e3])
def test_gradcam_is_not_quantised(zoo, scale):
    """No 8-bit image on the way: values below 1/255 survive, values above 1 do not wrap."""
    config = POOL_CONFIGS["8x12_k2s2"]
    net = zoo.PoolDense(num_class=4, **config)
    values = {k: v * scale for k, v in zoo.random_params(net, seed=8).items()}
    zoo.set_params(net, values)
    x = normal(9, (2,) + config["shape"])
    expected = pool_dense_expected(net, config, x, [0, 1])[2]
    got = xaifn.gradcam(net, ms.Tensor(x), [0, 1], layer="pool").asnumpy()
    assert (expected > 0).any()
    assert_close(got, expected)


# --------------------------------------------------------------------------------------------
# Other closed forms: the input itself (layer=''), and a conv layer before / after its ReLU.
# --------------------------------------------------------------------------------------------

def test_input_layer_closed_form(zoo):
    net = zoo.ReluDense(shape=(3, 4, 5), num_class=4)
    zoo.set_params(net, zoo.random_params(net, seed=12))
    x = normal(13, (3, 3, 4, 5))
    targets = [0, 3, 1]
    grads = f64(net.fc.weight)[targets].reshape(x.shape) * (x > 0)
    expected = gradcam_np(x.astype(np.float64), grads, (4, 5))
    assert (expected > 0).any()
    got = xaifn.gradcam(net, ms.Tensor(x), targets)
    assert got.shape == (3, 1, 4, 5)
    assert_close(got.asnumpy(), expected)
    assert_close(explanation.GradCAM(net)(ms.Tensor(x), targets).asnumpy(), expected)


@pytest.mark.parametrize("layer", ["conv", "relu"])
def test_conv_layer_closed_form(zoo, layer):
    net = zoo.ConvDense(channels=2, kernels=3, size=(8, 10), num_class=4)
    zoo.set_params(net, zoo.random_params(net, seed=14))
    x = normal(15, (2, 2, 8, 10))
    targets = [2, 0]
    wc, bc = f64(net.conv.weight), f64(net.conv.bias)
    z = np.zeros((2, 3, 6, 8)) + bc[None, :, None, None]
    for u in range(3):
        for v in range(3):
            z += np.einsum("nchw,kc->nkhw", x[:, :, u:u + 6, v:v + 8].astype(np.float64), wc[:, :, u, v])
    w_t = f64(net.fc.weight)[targets].reshape(z.shape)
    activation, grads = (z, w_t * (z > 0)) if layer == "conv" else (np.maximum(z, 0), w_t)
    expected = gradcam_np(activation, grads, (8, 10))
    assert (expected > 0).any()
    assert_close(xaifn.gradcam(net, ms.Tensor(x), targets, layer=layer).asnumpy(), expected)


# --------------------------------------------------------------------------------------------
# Real networks: the spec's example on LeNet5 and a non-square SmallResNet.
# --------------------------------------------------------------------------------------------

def eager_gradcam_np(net, layer, activation_shape, x, targets):
    """A and dy/dA from the eager building blocks; the rest of GradCAM in float64 numpy."""
    probed = xaifn.layer_probe_view(net, layer, activation_shape)
    a, g = xaifn.layer_activation_gradient(probed, x, ms.Tensor(np.asarray(targets, np.int32)))
    return gradcam_np(a.asnumpy(), g.asnumpy(), x.shape[2:])


def test_spec_example():
    net = LeNet5(10, num_channel=3)
    layer_name = "conv2"
    gradcam = explanation.GradCAM(net, layer=layer_name)
    assert gradcam.network is net
    inputs = ms.Tensor(np.random.default_rng(0).random((1, 3, 32, 32)), ms.float32)
    saliency = gradcam(inputs, 5)
    assert saliency.shape == (1, 1, 32, 32)
    np.testing.assert_array_equal(saliency.asnumpy(), xaifn.gradcam(net, inputs, 5, layer="conv2").asnumpy())
    assert_close(saliency.asnumpy(), eager_gradcam_np(net, "conv2", (1, 16, 10, 10), inputs, [5]))


def test_non_square_small_resnet():
    net = SmallResNet(num_class=5, num_channel=3, widths=(4, 8, 8))
    x = ms.Tensor(normal(16, (2, 3, 12, 20)))
    activation_shape = tuple(net.stages(net.stem(x)).shape)  # a fresh Cell is in eval mode
    assert activation_shape[2] != activation_shape[3]
    got = xaifn.gradcam(net, x, [4, 1], layer="stages.2")
    assert got.shape == (2, 1, 12, 20)
    expected = eager_gradcam_np(net, "stages.2", activation_shape, x, [4, 1])
    assert (expected > 0).any()
    assert_close(got.asnumpy(), expected)


def test_parameter_names_survive_and_checkpoints_still_load():
    """Explaining at a layer must not rename the user's Parameters (a later checkpoint load would
    silently skip them)."""
    net = LeNet5()
    names = [p.name for p in net.get_parameters()]
    x = ms.Tensor(np.random.default_rng(1).random((1, 3, 32, 32)), ms.float32)
    xaifn.gradcam(net, x, 5, layer="conv2")
    explanation.GradCAM(net, "conv1")(x, 5)
    assert [p.name for p in net.get_parameters()] == names
    checkpoint = {p.name: ms.Parameter(ms.Tensor(np.full(p.shape, 0.01, np.float32)), name=p.name)
                  for p in LeNet5().get_parameters()}
    not_loaded = ms.load_param_into_net(net, checkpoint)
    assert not any(not_loaded)
    assert np.all(net.conv2.weight.asnumpy() == np.float32(0.01))


# --------------------------------------------------------------------------------------------
# The traceable core inside a user's Cell (PYNATIVE and GRAPH_MODE).
# --------------------------------------------------------------------------------------------

class ExplainedCAM(nn.Cell):
    """Returns the logits and a GradCAM map at `layer`, from one construct."""

    def __init__(self, net, layer, activation_shape):
        super().__init__()
        self.net = net
        self.probed = xaifn.layer_probe_view(net, layer, activation_shape)

    def construct(self, x, t):
        activation, grads = xaifn.layer_activation_gradient(self.probed, x, t)
        return self.net(x), xaifn.gradcam_map(activation, grads, x.shape[2:])


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_gradcam_inside_a_cell(zoo, mode):
    values = zoo.random_params(zoo.GlobalNet(), seed=17)
    x = ms.Tensor(normal(18, (2, 3, 8, 10)))
    t = ms.Tensor([3, 0], ms.int32)
    reference_net = zoo.twin(zoo.GlobalNet, values)
    logits_expected = reference_net(x).asnumpy()
    expected = xaifn.gradcam(reference_net, x, t, layer="conv2").asnumpy()
    assert (expected > 0).any()
    cell = ExplainedCAM(zoo.twin(zoo.GlobalNet, values), "conv2", (2, 6, 4, 5))
    if mode == "graph":
        with zoo.graph_mode():
            logits, cam = cell(x, t)
    else:
        logits, cam = cell(x, t)
    assert cam.shape == (2, 1, 8, 10)
    assert_close(logits.asnumpy(), logits_expected, rtol=1e-6)
    assert_close(cam.asnumpy(), expected, rtol=1e-6)
