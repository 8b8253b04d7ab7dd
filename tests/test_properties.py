"""Properties every method of issue 12 shares, as one table: a new method joins by adding a row.

Each row is `explain(net, inputs, targets, chunk) -> Tensor`; `chunked` says whether `chunk` changes
how the work is split (and must change nothing else). Properties: a batch gives each sample's
result alone; the chunk size changes nothing (to rounding); repeated calls are bit-identical;
the user's network (Parameters, flags, cells, training mode) is left untouched.
"""
import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

import xaifn
from _numerics import assert_close

LAYER = "features.3"   # SeqBNNet: Conv -> BN -> ReLU -> [Conv] -> ReLU
NOISE = xaifn.GaussianNoise(seed=5, num_samples=5, shape=(3, 8, 8), std=0.3)


def _smooth(net, x, t, chunk):
    return xaifn.smooth_grad(lambda a, b: xaifn.gradient(net, a, b), x, t, NOISE, kind="vargrad", chunk=chunk)


#: name -> (explain(net, inputs, targets, chunk), chunked)
METHODS = {
    "integrated_gradients": (lambda net, x, t, chunk: xaifn.integrated_gradients(
        net, x, t, 0.1, steps=5, method="riemann_middle", chunk=chunk), True),
    "input_x_gradient": (lambda net, x, t, chunk: xaifn.input_x_gradient(net, x, t), False),
    "smooth_grad": (_smooth, True),
    "guided_gradcam": (lambda net, x, t, chunk: xaifn.guided_gradcam(net, x, t, layer=LAYER), False),
    "scorecam": (lambda net, x, t, chunk: xaifn.scorecam(net, nn.Softmax(), x, t, layer=LAYER, chunk=chunk), True),
}
METHODS.update({name: (lambda net, x, t, chunk, f=getattr(xaifn, name): f(net, x, t, layer=LAYER), False)
                for name in ("gradcam_plus_plus", "xgradcam", "layercam", "hirescam", "eigencam")})
NAMES = sorted(METHODS)


def normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture(scope="module")
def nets(zoo):
    """One network per method (same weights), so that no network gathers every method's kernels."""
    values, made = zoo.random_params(zoo.SeqBNNet(), seed=71, scale=1.0), {}

    def net_for(name):
        if name not in made:
            made[name] = zoo.twin(zoo.SeqBNNet, values)
        return made[name]
    return net_for


@pytest.fixture(scope="module")
def batch():
    return ms.Tensor(normal(72, (2, 3, 8, 8))), np.array([1, 4], np.int32)


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_each_sample_alone(nets, batch, name):
    explain, _ = METHODS[name]
    net = nets(name)
    x, t = batch
    whole = explain(net, x, t, 64).asnumpy()
    for n in range(2):
        assert_close(whole[n:n + 1], explain(net, x[n:n + 1], t[n:n + 1], 64).asnumpy(), rtol=1e-5)


@pytest.mark.parametrize("name", [n for n in NAMES if METHODS[n][1]])
def test_chunk_size_changes_nothing(nets, batch, name):
    explain, _ = METHODS[name]
    net = nets(name)
    x, t = batch
    reference = explain(net, x, t, 256).asnumpy()
    for chunk in (1, 4):   # one copy per step; two copies per step, the last block padded
        assert_close(explain(net, x, t, chunk), reference, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_repeated_calls_are_bit_identical(nets, batch, name):
    explain, _ = METHODS[name]
    net = nets(name)
    x, t = batch
    np.testing.assert_array_equal(explain(net, x, t, 4).asnumpy(), explain(net, x, t, 4).asnumpy())


def snapshot(network):
    return ([(p.name, id(p), p.requires_grad, p.asnumpy().copy()) for p in network.get_parameters()],
            [(name, id(cell), type(cell), cell.training, cell.requires_grad)
             for name, cell in network.cells_and_names()])


@pytest.mark.parametrize("name", NAMES)
def test_network_is_untouched(zoo, name):
    explain, _ = METHODS[name]
    network = zoo.twin(zoo.SeqBNNet, zoo.random_params(zoo.SeqBNNet(), seed=73)).set_train(True)
    network.set_grad(True)
    network.fc.weight.requires_grad = False
    (params, cells) = snapshot(network)
    explain(network, ms.Tensor(normal(74, (2, 3, 8, 8))), np.array([2, 3], np.int32), 4)
    new_params, new_cells = snapshot(network)
    assert [p[:3] for p in new_params] == [p[:3] for p in params] and new_cells == cells
    for old, new in zip(params, new_params):
        np.testing.assert_array_equal(new[3], old[3], err_msg=old[0])
    assert network.training and network.requires_grad and not network.fc.weight.requires_grad
    assert type(network.features[2]) is nn.ReLU
