"""Shared tiny networks and fixtures for xaifn's tests.

The networks are deliberately small (a few hundred parameters, 8 x 8 to 16 x 16 images) so that
each compile stays around 0.3 s on a 2-core CPU. Their `construct` methods live in this file so
that `ms.jit` / GRAPH_MODE can parse their source.

Use them through the session fixture `zoo` (a namespace of the classes and helpers below), e.g.
``net = zoo.GlobalNet()``.
"""
import contextlib
import types

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn, ops

import xaifn
from xaifn import explanation
from _numerics import softmax_np


class ReluDense(nn.Cell):
    """nn.ReLU cell -> Flatten -> Dense: the gradient family has a closed form on it."""

    def __init__(self, shape=(3, 4, 5), num_class=4, bias=True):
        super().__init__()
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(int(np.prod(shape)), num_class, has_bias=bias)

    def construct(self, x):
        return self.fc(self.flatten(self.relu(x)))


class DenseReluDense(nn.Cell):
    """Flatten -> Dense -> nn.ReLU -> Dense: a ReLU whose R and z both take both signs."""

    def __init__(self, shape=(2, 3, 3), hidden=16, num_class=4):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Dense(int(np.prod(shape)), hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Dense(hidden, num_class)

    def construct(self, x):
        return self.fc2(self.relu(self.fc1(self.flatten(x))))


class PoolDense(nn.Cell):
    """AvgPool -> Flatten -> Dense: GradCAM at 'pool' has a closed form on it."""

    def __init__(self, shape=(3, 9, 13), kernel=3, stride=2, num_class=4):
        super().__init__()
        c, h, w = shape
        self.pool = nn.AvgPool2d(kernel_size=kernel, stride=stride)
        self.flatten = nn.Flatten()
        pooled = c * ((h - kernel) // stride + 1) * ((w - kernel) // stride + 1)
        self.fc = nn.Dense(pooled, num_class)

    def construct(self, x):
        return self.fc(self.flatten(self.pool(x)))


class ConvDense(nn.Cell):
    """Conv2d 3x3 'valid' (with bias) -> nn.ReLU -> Flatten -> Dense, for float64 references."""

    def __init__(self, channels=2, kernels=3, size=(8, 8), num_class=4):
        super().__init__()
        self.conv = nn.Conv2d(channels, kernels, 3, pad_mode="valid", has_bias=True)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(kernels * (size[0] - 2) * (size[1] - 2), num_class)

    def construct(self, x):
        return self.fc(self.flatten(self.relu(self.conv(x))))


class GlobalNet(nn.Cell):
    """conv1 -> relu1 -> maxpool -> conv2 -> relu2 -> global mean -> fc; any H, W >= 2."""

    def __init__(self, channels=3, num_class=5):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4, 3, pad_mode="same", has_bias=True)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(4, 6, 3, pad_mode="same", has_bias=True)
        self.relu2 = nn.ReLU()
        self.fc = nn.Dense(6, num_class)

    def construct(self, x):
        x = self.relu2(self.conv2(self.pool(self.relu1(self.conv1(x)))))
        return self.fc(x.mean(axis=(2, 3)))


class SeqBNNet(nn.Cell):
    """SequentialCell with BatchNorm and nn.ReLU cells, global mean, Dense. GradCAM layer 'features.3'."""

    def __init__(self, channels=3, num_class=5):
        super().__init__()
        self.features = nn.SequentialCell([
            nn.Conv2d(channels, 4, 3, pad_mode="same", has_bias=True),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, pad_mode="same", has_bias=True),
            nn.ReLU(),
        ])
        self.fc = nn.Dense(6, num_class)

    def construct(self, x):
        return self.fc(self.features(x).mean(axis=(2, 3)))


class FunctionalReluNet(nn.Cell):
    """A conv net whose only ReLU is called as a function: Deconvolution/Guided cannot apply."""

    def __init__(self, channels=3, num_class=5):
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, pad_mode="same", has_bias=True)
        self.fc = nn.Dense(4, num_class)

    def construct(self, x):
        return self.fc(ops.relu(self.conv(x)).mean(axis=(2, 3)))


def set_params(net, values):
    """Set `net`'s Parameters (by name) to the given numpy arrays, in float32. Returns `net`."""
    params = {p.name: p for p in net.get_parameters()}
    for name, value in values.items():
        params[name].set_data(ms.Tensor(np.asarray(value, np.float32)))
    return net


def random_params(net, seed, scale=0.5):
    """{name: float32 array} of mixed-sign normal values for every Parameter of `net`.

    BatchNorm variances ('moving_variance', 'gamma') are drawn positive.
    """
    rng = np.random.default_rng(seed)
    values = {}
    for p in net.get_parameters():
        value = rng.standard_normal(p.shape) * scale
        if p.name.endswith("moving_variance") or p.name.endswith("gamma"):
            value = 0.5 + np.abs(value)
        values[p.name] = value.astype(np.float32)
    return values


def twin(net_class, values, *args, **kwargs):
    """A fresh `net_class(*args, **kwargs)` holding the given Parameter values."""
    return set_params(net_class(*args, **kwargs), values)


def explainer(method, api, net, layer="conv2"):
    """`(inputs, targets) -> map` for `method` on `net`, through the 'functional' or 'class' API.

    `method` is one of 'gradient', 'deconvolution', 'guided_backprop', 'gradcam'; `layer` is only
    used by GradCAM.
    """
    if api == "class":
        if method == "gradcam":
            return explanation.GradCAM(net, layer=layer)
        return {"gradient": explanation.Gradient, "deconvolution": explanation.Deconvolution,
                "guided_backprop": explanation.GuidedBackprop}[method](net)
    if api != "functional":
        raise ValueError(api)
    if method == "gradcam":
        return lambda inputs, targets: xaifn.gradcam(net, inputs, targets, layer=layer)
    function = {"gradient": xaifn.gradient, "deconvolution": xaifn.deconvolution,
                "guided_backprop": xaifn.guided_backprop}[method]
    return lambda inputs, targets: function(net, inputs, targets)


@contextlib.contextmanager
def graph_mode_context():
    """GRAPH_MODE inside the block, PYNATIVE_MODE after it (for use inside Hypothesis tests)."""
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        yield
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.fixture(autouse=True)
def _pynative_mode():
    """Every test starts and ends in PYNATIVE_MODE, whatever the previous test did."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.fixture
def graph_mode():
    """Run the test body in GRAPH_MODE; PYNATIVE_MODE is restored afterwards."""
    with graph_mode_context():
        yield


@pytest.fixture(scope="session")
def zoo():
    """The shared networks and helpers of this file, as one namespace."""
    return types.SimpleNamespace(
        ReluDense=ReluDense, DenseReluDense=DenseReluDense, PoolDense=PoolDense,
        ConvDense=ConvDense, GlobalNet=GlobalNet, SeqBNNet=SeqBNNet,
        FunctionalReluNet=FunctionalReluNet,
        set_params=set_params, random_params=random_params, twin=twin,
        graph_mode=graph_mode_context, explainer=explainer,
    )


# --------------------------------------------------------------------------------------------
# Perturbation methods (Occlusion, RISE): a linear network and float64 numpy references.
# --------------------------------------------------------------------------------------------

class LinearNet(nn.Cell):
    """Flatten -> Dense: with sigma = identity, occluding a window changes logit t by exactly
    sum_{p in window} W_t,p (x_p - baseline), so Occlusion has a closed form on it."""

    def __init__(self, shape=(1, 6, 6), num_class=3):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(int(np.prod(shape)), num_class)

    def construct(self, x):
        return self.fc(self.flatten(x))


def identity(logits):
    """sigma = identity (a plain function defined in a file, so that ms.jit can parse it)."""
    return logits


def softmax_fn(logits):
    """sigma = softmax as a plain function calling ops.softmax."""
    return ops.softmax(logits, axis=-1)


def linear_net(shape=(1, 6, 6), num_class=3, seed=0, scale=0.5):
    """A LinearNet with mixed-sign random weights; returns (net, W (L, D) float64, b (L,) float64)."""
    net = LinearNet(shape, num_class)
    set_params(net, random_params(net, seed, scale))
    return net, net.fc.weight.asnumpy().astype(np.float64), net.fc.bias.asnumpy().astype(np.float64)


@pytest.fixture(scope="session")
def pzoo():
    """Helpers of the perturbation tests (test_perturbation*.py, test_masks.py), as one namespace."""
    return types.SimpleNamespace(LinearNet=LinearNet, linear_net=linear_net, identity=identity,
                                 softmax_fn=softmax_fn, softmax_np=softmax_np)


# --------------------------------------------------------------------------------------------
# OoDNet and RISEPlus (test_ood*.py, test_rise_plus.py): a tiny classifier with the OoDNet contract.
# --------------------------------------------------------------------------------------------

class FeatureNet(nn.Cell):
    """Conv 3x3 -> nn.ReLU -> AvgPool 2 -> Flatten -> Dense -> nn.ReLU (the features) -> Dense.

    Has the OoDNet contract: `num_features` (int) and `output_features` (bool; True returns the
    (N, num_features) features). Any even H, W; compiles much faster than LeNet5.
    """

    def __init__(self, num_class=5, channels=3, size=(8, 8), num_features=6):
        super().__init__()
        self.num_features = num_features
        self.output_features = False
        self.conv = nn.Conv2d(channels, 4, 3, pad_mode="same", has_bias=True)
        self.relu = nn.ReLU()
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Dense(4 * (size[0] // 2) * (size[1] // 2), num_features)
        self.fc2 = nn.Dense(num_features, num_class)

    def construct(self, x):
        x = self.relu(self.fc1(self.flatten(self.pool(self.relu(self.conv(x))))))
        if self.output_features:
            return x
        return self.fc2(x)


def he_init(net, seed):
    """Deterministic He-normal weights and small random biases, from numpy (no global seed)."""
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        if p.name.endswith("weight"):
            value = rng.normal(0, np.sqrt(2 / int(np.prod(p.shape[1:]))), p.shape)
        else:
            value = rng.normal(0, 0.1, p.shape)
        p.set_data(ms.Tensor(value, ms.float32))
    return net


@pytest.fixture(scope="session")
def ood_zoo():
    """Helpers of the OoDNet/RISEPlus tests, as one namespace."""
    return types.SimpleNamespace(FeatureNet=FeatureNet, he_init=he_init)
