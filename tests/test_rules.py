"""Deconvolution and Guided Backpropagation at every elementwise activation (methods.md, rules).

Reference: for Flatten -> Dense(W1, b1) -> f -> Dense(W2) the gradient arriving at f's output is
R = W2[t] and f's input is z = W1 x + b1; the input gradient is W1^T rule(R, f'(z)), with f'(z)
from ms.grad of f in float64 and the rule written out in numpy:
gradient R f'(z), deconvolution max(R, 0), guided max(R f'(z), 0).
"""
import numpy as np
import mindspore as ms
import pytest
from mindspore import mint, nn, ops
from mindspore.ops import functional as F

import xaifn
from xaifn import explanation
from _numerics import assert_close

SHAPE = (2, 3, 3)
ACTIVATIONS = [nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.HSwish,
               nn.HSigmoid, nn.ELU, nn.Mish]


def _swish():
    from mindcv.models.layers.activation import Swish  # pylint: disable=import-outside-toplevel
    return Swish()


class SubReLU(nn.ReLU):
    """A subclass of nn.ReLU is a ReLU cell."""


class DenseActDense(nn.Cell):
    def __init__(self, act, hidden=12, num_class=4):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Dense(int(np.prod(SHAPE)), hidden)
        self.act = act
        self.fc2 = nn.Dense(hidden, num_class)

    def construct(self, x):
        return self.fc2(self.act(self.fc1(self.flatten(x))))


class Mixed(nn.Cell):
    """Dense -> ReLU -> Dense -> GELU -> Dense (MobileNetV3/visformer-like mix)."""

    def __init__(self, hidden=10, num_class=4):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Dense(int(np.prod(SHAPE)), hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Dense(hidden, hidden)
        self.gelu = nn.GELU()
        self.fc3 = nn.Dense(hidden, num_class)

    def construct(self, x):
        return self.fc3(self.gelu(self.fc2(self.relu(self.fc1(self.flatten(x))))))


def _weights(net, seed):
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        p.set_data(ms.Tensor(rng.normal(0, 0.8, p.shape), ms.float32))
    return net


def _f_prime(act, z):
    """f'(z) elementwise, by ms.grad of sum f in float64 (float32 where f has no float64 kernel)."""
    for dtype in (ms.float64, ms.float32):
        try:
            return ms.grad(lambda t: act(t).sum())(ms.Tensor(z, dtype)).asnumpy().astype(np.float64)
        except (TypeError, RuntimeError, ValueError):
            continue
    raise AssertionError(f"no gradient for {type(act).__name__}")


def _rule(name, r, fp):
    return {"gradient": r * fp, "deconvolution": np.maximum(r, 0),
            "guided_backprop": np.maximum(r * fp, 0)}[name]


def _dense(cell):
    return cell.weight.asnumpy().astype(np.float64), cell.bias.asnumpy().astype(np.float64)


def _reference(net, acts, x, t, rules):
    """Input gradient map for a chain Dense -> act -> Dense ... -> Dense with a rule per act."""
    dense = [c for _, c in net.cells_and_names() if isinstance(c, nn.Dense)]
    h = x.reshape(x.shape[0], -1).astype(np.float64)
    zs = []
    for (w, b), act in zip([_dense(d) for d in dense[:-1]], acts):
        z = h @ w.T + b
        zs.append(z)
        h = act(ms.Tensor(z, ms.float32)).asnumpy().astype(np.float64)
    r = _dense(dense[-1])[0][t]                                    # (N, hidden)
    for (w, _), act, z, rule in reversed(list(zip([_dense(d) for d in dense[:-1]], acts, zs, rules))):
        r = _rule(rule, r, _f_prime(act, z)) @ w
    return np.abs(r.reshape(x.shape)).max(axis=1, keepdims=True)


METHODS = {"gradient": xaifn.gradient, "deconvolution": xaifn.deconvolution,
           "guided_backprop": xaifn.guided_backprop}


@pytest.mark.parametrize("make", ACTIVATIONS + [SubReLU, _swish], ids=lambda m: m.__name__)
def test_rule_at_each_activation(make):
    net = _weights(DenseActDense(make()), seed=1)
    x = np.random.default_rng(2).normal(0, 1, (3,) + SHAPE).astype(np.float32)
    t = np.array([0, 3, 1])
    for rule in ("deconvolution", "guided_backprop", "gradient"):
        got = METHODS[rule](net, ms.Tensor(x), ms.Tensor(t, ms.int32))
        assert_close(got, _reference(net, [net.act], x, t, [rule]), rtol=1e-3)
    deconv = METHODS["deconvolution"](net, ms.Tensor(x), ms.Tensor(t, ms.int32)).asnumpy()
    assert not np.allclose(deconv, METHODS["gradient"](net, ms.Tensor(x), ms.Tensor(t, ms.int32)).asnumpy())


@pytest.mark.parametrize("rule", ["deconvolution", "guided_backprop"])
def test_mixed_activations_all_and_relu(rule):
    net = _weights(Mixed(), seed=3)
    x = np.random.default_rng(4).normal(0, 1, (2,) + SHAPE).astype(np.float32)
    t = np.array([1, 2])
    acts = [net.relu, net.gelu]
    got_all = METHODS[rule](net, ms.Tensor(x), ms.Tensor(t, ms.int32))
    assert_close(got_all, _reference(net, acts, x, t, [rule, rule]), rtol=1e-3)
    got_relu = METHODS[rule](net, ms.Tensor(x), ms.Tensor(t, ms.int32), activations="relu")
    assert_close(got_relu, _reference(net, acts, x, t, [rule, "gradient"]), rtol=1e-3)
    got_gelu = METHODS[rule](net, ms.Tensor(x), ms.Tensor(t, ms.int32), activations=(nn.GELU,))
    assert_close(got_gelu, _reference(net, acts, x, t, ["gradient", rule]), rtol=1e-3)
    assert not np.allclose(got_all.asnumpy(), got_relu.asnumpy())


# ---- activations the rule cannot reach: detected from the compiled graph, refused by name ----

class Block(nn.Cell):
    def __init__(self, how):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, pad_mode="same")
        self.how = how
        self.prim = ops.ReLU()
        self.relu = nn.ReLU()     # a ReLU cell, used or not
        self.used = how == "cell_and_functional"

    def construct(self, x):
        y = self.conv(x)
        if self.how == "ops.relu":
            y = ops.relu(y)
        elif self.how == "ops.ReLU()":
            y = self.prim(y)
        elif self.how == "F.relu":
            y = F.relu(y)
        elif self.how == "mint":
            y = mint.nn.functional.relu(y)
        elif self.how == "ops.gelu":
            y = ops.gelu(y)
        elif self.how == "cell_and_functional":
            y = ops.relu(self.relu(y)) + y
        return y


class Outer(nn.Cell):
    def __init__(self, how):
        super().__init__()
        self.block = Block(how)
        self.bias = ms.Parameter(ms.Tensor(np.ones((1, 4)), ms.float32))
        self.cell_relu = nn.ReLU()
        self.fc = nn.Dense(4, 3)

    def construct(self, x):
        features = self.cell_relu(self.block(x)).mean(axis=(2, 3))
        return self.fc(features + ops.relu(self.bias))  # input-independent: harmless


@pytest.mark.parametrize("how", ["ops.relu", "ops.ReLU()", "F.relu", "mint", "cell_and_functional"])
@pytest.mark.parametrize("method", [xaifn.deconvolution, xaifn.guided_backprop])
def test_functional_relu_is_refused_with_its_cell(how, method):
    net = _weights(Outer(how), seed=5)
    x = ms.Tensor(np.random.default_rng(6).normal(0, 1, (1, 3, 6, 6)), ms.float32)
    with pytest.raises(ValueError, match=r"ReLU in cell 'block' \(Block\)"):
        method(net, x, 1)
    with pytest.raises(ValueError, match="'block'"):
        method(net, x, 1, activations="relu")
    assert xaifn.gradient(net, x, 1).shape == (1, 1, 6, 6)


def test_functional_gelu_refused_for_all_but_not_for_relu():
    net = _weights(Outer("ops.gelu"), seed=7)
    x = ms.Tensor(np.random.default_rng(8).normal(0, 1, (1, 3, 6, 6)), ms.float32)
    with pytest.raises(ValueError, match=r"(GeLU|Erf) in cell 'block' \(Block\)"):
        xaifn.guided_backprop(net, x, 1)
    # only ReLU-like activations chosen: the GELU passes the plain gradient, by the user's choice
    assert xaifn.guided_backprop(net, x, 1, activations="relu").shape == (1, 1, 6, 6)


def test_input_independent_functional_relu_and_cells_are_fine():
    net = _weights(Outer("none"), seed=9)   # Block applies no activation; Outer: cell + bias relu
    x = ms.Tensor(np.random.default_rng(10).normal(0, 1, (2, 3, 6, 6)), ms.float32)
    for method in (xaifn.deconvolution, xaifn.guided_backprop):
        assert method(net, x, [0, 2]).shape == (2, 1, 6, 6)


def test_no_activation_at_all_is_refused():
    net = nn.SequentialCell([nn.Flatten(), nn.Dense(18, 3)])
    x = ms.Tensor(np.ones((1,) + SHAPE), ms.float32)
    with pytest.raises(ValueError, match="applies no elementwise activation cell"):
        xaifn.deconvolution(net, x, 0)
    vit_like = DenseActDense(nn.GELU())
    with pytest.raises(ValueError, match="activations='all'"):
        xaifn.deconvolution(vit_like, x, 0, activations="relu")


def test_bad_activations_argument():
    x = ms.Tensor(np.ones((1,) + SHAPE), ms.float32)
    net = DenseActDense(nn.ReLU())
    with pytest.raises(ValueError, match="`activations`"):
        xaifn.deconvolution(net, x, 0, activations="gelu")
    with pytest.raises(TypeError, match="`activations`"):
        xaifn.guided_backprop(net, x, 0, activations=(int,))


def test_class_api_takes_activations():
    net = _weights(Mixed(), seed=11)
    x = np.random.default_rng(12).normal(0, 1, (1,) + SHAPE).astype(np.float32)
    got = explanation.GuidedBackprop(net, activations="relu")(ms.Tensor(x), 2)
    assert_close(got, _reference(net, [net.relu, net.gelu], x, np.array([2]), ["guided_backprop", "gradient"]),
                 rtol=1e-3)
