"""Integrated Gradients and Input x Gradient: quadrature rules, closed forms, float64 references.

    IG = (x - b) * sum_s w_s d f(b + alpha_s (x - b))[t] / dx

Cross-method properties (batching, chunking, determinism, the network untouched) are in
test_properties.py.
"""
import numpy as np
import mindspore as ms
import pytest
from hypothesis import given, settings, strategies as st
from mindspore import nn, ops

import xaifn
from xaifn.integrated_gradients import METHODS
from _numerics import assert_close

SETTINGS = settings(max_examples=4, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)


def normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def f64(param):
    return param.asnumpy().astype(np.float64)


# --------------------------------------------------------------------------------------------
# The quadrature rules: Captum's nodes, weights that sum to 1.
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [2, 5, 50])
def test_riemann_nodes_are_captums(steps):
    n = steps
    nodes = {"riemann_left": [s / n for s in range(n)], "riemann_right": [(s + 1) / n for s in range(n)],
             "riemann_middle": [(s + 0.5) / n for s in range(n)],
             "riemann_trapezoid": [s / (n - 1) for s in range(n)]}
    for method, expected in nodes.items():
        alphas, weights = xaifn.quadrature(method, steps)
        np.testing.assert_allclose(alphas, expected, rtol=0, atol=1e-15)
        assert weights.sum() == pytest.approx(1.0, abs=1e-14)
    _, weights = xaifn.quadrature("riemann_trapezoid", steps)
    np.testing.assert_allclose(weights[1:-1], 1 / (n - 1))
    assert weights[0] == weights[-1] == pytest.approx(0.5 / (n - 1))


@pytest.mark.parametrize("steps", [1, 3, 8])
def test_gauss_legendre_is_exact_for_polynomials_of_degree_below_2n(steps):
    alphas, weights = xaifn.quadrature("gausslegendre", steps)
    assert np.all((alphas > 0) & (alphas < 1)) and np.all(weights > 0)
    for degree in range(2 * steps):
        assert weights @ alphas ** degree == pytest.approx(1 / (degree + 1), abs=1e-13)


@pytest.mark.parametrize("method, steps, message", [
    ("simpson", 10, "`method` must be one of"), ("gausslegendre", 0, "`steps` must be a positive int"),
    ("riemann_trapezoid", 1, "at least 2"), ("riemann_left", 2.0, "`steps` must be a positive int")])
def test_quadrature_errors(method, steps, message):
    with pytest.raises((TypeError, ValueError), match=message):
        xaifn.quadrature(method, steps)


# --------------------------------------------------------------------------------------------
# A linear model: IG = (x - b) * W_t exactly, for every rule and every form of baseline.
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def linear(pzoo):
    return pzoo.linear_net(shape=(2, 3, 4), num_class=3, seed=4)


def baseline_forms(seed, n):
    return {"number": 0.7, "image": normal(seed + 1, (2, 3, 4)), "broadcast": normal(seed + 2, (2, 1, 4)),
            "one_batch": normal(seed + 3, (1, 2, 3, 4)), "per_sample": ms.Tensor(normal(seed + 4, (n, 2, 3, 4)))}


@pytest.mark.parametrize("method", METHODS)
@SETTINGS
@given(seed=SEEDS, targets=st.lists(st.integers(0, 2), min_size=3, max_size=3))
def test_linear_model_is_exact_for_every_rule(linear, method, seed, targets):
    net, w, _ = linear
    x = normal(seed, (3, 2, 3, 4))
    for name, baselines in baseline_forms(seed, 3).items():
        b = np.broadcast_to(baselines.asnumpy() if isinstance(baselines, ms.Tensor) else baselines, x.shape)
        expected = (x - b).astype(np.float64) * w[targets].reshape(x.shape)
        got, delta = xaifn.integrated_gradients(net, ms.Tensor(x), targets, baselines, steps=3, method=method,
                                                return_convergence_delta=True)
        assert got.shape == x.shape and got.dtype == ms.float32, name
        assert_close(got, expected, rtol=2e-6)
        assert np.abs(delta.asnumpy()).max() < 1e-5 * max(1.0, np.abs(expected).sum(axis=(1, 2, 3)).max())


def test_float64_run_is_exact_to_float64_rounding(linear):
    """A float64 linear function: the quadrature weights are used in float64, so completeness
    holds to float64 rounding at any step count (float32 weights sum to 1 only within ~1e-9)."""
    _, w, _ = linear
    weights = ms.Tensor(w.T, ms.float64)

    def f(x):
        return ops.matmul(x.reshape(x.shape[0], -1), weights)
    x = ms.Tensor(normal(5, (2, 2, 3, 4)).astype(np.float64))
    for steps in (7, 50, 300):
        got, delta = xaifn.integrated_gradients(f, x, [0, 2], steps=steps, return_convergence_delta=True)
        assert got.dtype == ms.float64
        assert np.abs(delta.asnumpy()).max() < 1e-12, steps
        assert_close(got, x.asnumpy() * w[[0, 2]].reshape(2, 2, 3, 4), rtol=1e-12)


def test_several_targets_share_the_work_and_equal_separate_calls(linear):
    net, w, _ = linear
    x = normal(1, (2, 2, 3, 4))
    labels = np.array([[0, 2], [1, 1]], np.int32)
    got, delta = xaifn.integrated_gradients(net, ms.Tensor(x), ms.Tensor(labels), steps=4,
                                            return_convergence_delta=True)
    assert got.shape == (2, 2, 2, 3, 4) and delta.shape == (2, 2)
    for j in range(2):
        single = xaifn.integrated_gradients(net, ms.Tensor(x), ms.Tensor(labels[:, j]), steps=4)
        np.testing.assert_array_equal(got[:, j].asnumpy(), single.asnumpy())
        assert_close(got[:, j], x * w[labels[:, j]].reshape(x.shape), rtol=2e-6)


# --------------------------------------------------------------------------------------------
# A ReLU network: float64 numpy reference and completeness.
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dense_relu(zoo):
    net = zoo.DenseReluDense(shape=(2, 3, 3), hidden=16, num_class=4)
    zoo.set_params(net, zoo.random_params(net, seed=21))
    return net, (f64(net.fc1.weight), f64(net.fc1.bias), f64(net.fc2.weight), f64(net.fc2.bias))


def dense_relu_np(params, x):
    w1, b1, w2, b2 = params
    return np.maximum(x.reshape(len(x), -1) @ w1.T + b1, 0) @ w2.T + b2


def dense_relu_grad_np(params, x, targets):
    w1, b1, w2, _ = params
    z = x.reshape(len(x), -1) @ w1.T + b1
    return ((w2[targets] * (z > 0)) @ w1).reshape(x.shape)


def ig_np(params, x, b, targets, method, steps):
    """IG in float64, one path position at a time."""
    alphas, weights = xaifn.quadrature(method, steps)
    total = sum(w * dense_relu_grad_np(params, b + a * (x - b), targets) for a, w in zip(alphas, weights))
    return (x - b) * total


@pytest.mark.parametrize("method", METHODS)
@SETTINGS
@given(seed=SEEDS, targets=st.lists(st.integers(0, 3), min_size=3, max_size=3))
def test_relu_network_matches_float64_reference(dense_relu, method, seed, targets):
    net, params = dense_relu
    x, b = normal(seed, (3, 2, 3, 3)), normal(seed + 1, (3, 2, 3, 3))
    expected = ig_np(params, x.astype(np.float64), b.astype(np.float64), targets, method, 7)
    got = xaifn.integrated_gradients(net, ms.Tensor(x), targets, ms.Tensor(b), steps=7, method=method, chunk=5)
    assert_close(got, expected, rtol=2e-5)


@pytest.mark.parametrize("method, steps, tolerance", [("gausslegendre", 64, 0.02), ("riemann_middle", 64, 0.02),
                                                      ("riemann_trapezoid", 65, 0.02), ("riemann_left", 400, 0.02)])
def test_completeness_on_a_relu_network(dense_relu, method, steps, tolerance):
    """sum IG = f(x) - f(b) within the rule's accuracy, and delta is exactly that difference."""
    net, params = dense_relu
    x = 2 * normal(5, (4, 2, 3, 3))
    targets = [0, 1, 2, 3]
    ig, delta = xaifn.integrated_gradients(net, ms.Tensor(x), targets, 0.0, steps=steps, method=method,
                                           return_convergence_delta=True)
    logits_x, logits_b = dense_relu_np(params, x.astype(np.float64)), dense_relu_np(params, np.zeros(x.shape))
    change = logits_x[range(4), targets] - logits_b[range(4), targets]
    total = ig.asnumpy().astype(np.float64).sum(axis=(1, 2, 3))
    assert_close(delta, total - change, rtol=1e-4)
    assert np.all(np.abs(total - change) <= tolerance * np.abs(change).max())


def test_convergence_delta_shrinks_with_steps(dense_relu):
    net, _ = dense_relu
    x = ms.Tensor(2 * normal(6, (3, 2, 3, 3)))
    deltas = [np.abs(xaifn.integrated_gradients(net, x, 1, steps=s, method="riemann_right",
                                                return_convergence_delta=True)[1].asnumpy()).max()
              for s in (4, 64)]
    assert deltas[1] < deltas[0] / 4


# --------------------------------------------------------------------------------------------
# Input x Gradient, plain functions, the traceable core inside a Cell.
# --------------------------------------------------------------------------------------------

@SETTINGS
@given(seed=SEEDS, targets=st.lists(st.integers(0, 3), min_size=2, max_size=2))
def test_input_x_gradient_matches_float64_reference(dense_relu, seed, targets):
    net, params = dense_relu
    x = normal(seed, (2, 2, 3, 3))
    expected = x.astype(np.float64) * dense_relu_grad_np(params, x.astype(np.float64), targets)
    assert_close(xaifn.input_x_gradient(net, ms.Tensor(x), targets), expected, rtol=1e-5)


def test_input_x_gradient_is_ig_of_one_right_node_from_zero(dense_relu):
    net, _ = dense_relu
    x = ms.Tensor(normal(7, (2, 2, 3, 3)))
    assert_close(xaifn.integrated_gradients(net, x, [1, 3], steps=1, method="riemann_right"),
                 xaifn.input_x_gradient(net, x, [1, 3]).asnumpy(), rtol=1e-6)


def test_plain_function(linear):
    _, w, b = linear
    weights = ms.Tensor(w.T.astype(np.float32))

    def net_fn(inputs):
        return ms.ops.matmul(inputs.reshape(inputs.shape[0], -1), weights)

    x = normal(8, (2, 2, 3, 4))
    assert_close(xaifn.integrated_gradients(net_fn, ms.Tensor(x), [2, 0], steps=2),
                 x * w[[2, 0]].reshape(x.shape), rtol=2e-6)


class _Explained(nn.Cell):
    """A user's Cell returning logits and IG / Input x Gradient maps (traceable cores)."""

    def __init__(self, net, alphas, weights):
        super().__init__()
        self.net = net
        self.alphas = ms.Tensor(alphas, ms.float32)
        self.weights = ms.Tensor(weights, ms.float32)

    def construct(self, x, t):
        ig = xaifn.integrated_gradients_map(self.net, x, x * 0 + 0.5, t, self.alphas, self.weights)
        return self.net(x), ig, x * xaifn.input_gradient(self.net, x, t)


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_traceable_cores_inside_a_cell(zoo, mode):
    net = zoo.twin(zoo.GlobalNet, zoo.random_params(zoo.GlobalNet(), seed=9))
    x, t = ms.Tensor(normal(10, (2, 3, 6, 6))), ms.Tensor([1, 4], ms.int32)
    expected_ig = xaifn.integrated_gradients(net, x, t, 0.5, steps=6).asnumpy()
    expected_ixg = xaifn.input_x_gradient(net, x, t).asnumpy()
    explained = _Explained(net, *xaifn.quadrature("gausslegendre", 6))
    if mode == "graph":
        with zoo.graph_mode():
            _, ig, ixg = explained(x, t)
    else:
        _, ig, ixg = explained(x, t)
    assert_close(ig, expected_ig, rtol=1e-5)
    assert_close(ixg, expected_ixg, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Errors before any computation.
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    (dict(baselines=np.zeros((3, 3, 4))), ValueError, "broadcastable"),
    (dict(baselines=np.zeros((5, 2, 3, 4))), ValueError, "broadcastable"),
    (dict(baselines=np.full((2, 3, 4), np.nan)), ValueError, "finite"),
    (dict(baselines="zero"), TypeError, "`baselines`"),
    (dict(baselines=np.zeros((2, 3, 4), np.int32)), TypeError, "floats"),
    (dict(method="riemann"), ValueError, "`method` must be one of"),
    (dict(steps=0), ValueError, "`steps`"),
    (dict(chunk=0), ValueError, "`chunk`"),
    (dict(return_convergence_delta=1), TypeError, "return_convergence_delta"),
])
def test_bad_arguments(linear, kwargs, error, message):
    net, _, _ = linear
    with pytest.raises(error, match=message):
        xaifn.integrated_gradients(net, ms.Tensor(normal(0, (2, 2, 3, 4))), 1, **kwargs)


def test_bad_targets(linear):
    net, _, _ = linear
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        xaifn.integrated_gradients(net, ms.Tensor(normal(0, (2, 2, 3, 4))), [0, 3])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        xaifn.input_x_gradient(net, ms.Tensor(normal(0, (2, 2, 3, 4))), 5)
