"""SmoothGrad, SmoothGrad-squared and VarGrad over any method, and the seeded Gaussian noise.

Cross-method properties (batching, chunking, determinism, the network untouched) are in
test_properties.py.
"""
import numpy as np
import mindspore as ms
import pytest
from hypothesis import given, settings, strategies as st

import xaifn
from xaifn.smooth_grad import KINDS
from _numerics import assert_close

SETTINGS = settings(max_examples=4, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)


def normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture(scope="module")
def linear(pzoo):
    return pzoo.linear_net(shape=(2, 3, 4), num_class=3, seed=4)


def smooth_np(maps, kind):
    """maps (S, N, ...) float64 -> the NoiseTunnel aggregate over S."""
    mean, mean_sq = maps.mean(axis=0), (maps ** 2).mean(axis=0)
    return {"smoothgrad": mean, "smoothgrad_sq": mean_sq, "vargrad": mean_sq - mean ** 2}[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_zero_noise_gives_the_method_itself(linear, kind):
    net, _, _ = linear
    x = ms.Tensor(normal(0, (3, 2, 3, 4)))

    def method(inputs, targets):
        return xaifn.input_x_gradient(net, inputs * inputs, targets)  # not linear in x: noise would show

    plain = method(x, [0, 1, 2]).asnumpy().astype(np.float64)
    got = xaifn.smooth_grad(method, x, [0, 1, 2], np.zeros((5, 2, 3, 4), np.float32), kind=kind)
    if kind == "vargrad":  # E[a^2] - E[a]^2 in float32, as Captum: zero up to rounding of a^2
        assert np.abs(got.asnumpy()).max() <= 1e-6 * (plain ** 2).max()
    else:
        assert_close(got, plain if kind == "smoothgrad" else plain ** 2, rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(seed=SEEDS, targets=st.lists(st.integers(0, 2), min_size=3, max_size=3), chunk=st.integers(1, 20))
def test_input_x_gradient_of_a_linear_model_matches_float64(linear, kind, seed, targets, chunk):
    """a(x) = x * W_t, so every aggregate has a float64 closed form over the noise samples."""
    net, w, _ = linear
    x, noise = normal(seed, (3, 2, 3, 4)), normal(seed + 1, (6, 2, 3, 4))
    maps = (x[None] + noise[:, None]).astype(np.float64) * w[targets].reshape(x.shape)
    got = xaifn.smooth_grad(lambda a, t: xaifn.input_x_gradient(net, a, t), ms.Tensor(x), targets, noise,
                            kind=kind, chunk=chunk)
    assert_close(got, smooth_np(maps, kind), rtol=1e-5)


def test_smoothing_integrated_gradients_with_a_tensor_of_noise(linear):
    net, w, _ = linear
    x, noise = normal(1, (2, 2, 3, 4)), normal(2, (3, 2, 3, 4))
    got = xaifn.smooth_grad(lambda a, t: xaifn.integrated_gradients(net, a, t, steps=4), ms.Tensor(x), 2,
                            ms.Tensor(noise))
    assert_close(got, (x + noise.mean(axis=0)) * w[2].reshape(1, 2, 3, 4), rtol=1e-5)


def test_several_targets_per_sample_are_passed_through(linear):
    net, w, _ = linear
    x, noise = normal(3, (2, 2, 3, 4)), normal(4, (4, 2, 3, 4))
    labels = ms.Tensor(np.array([[0, 2], [1, 0]], np.int32))
    got = xaifn.smooth_grad(lambda a, t: xaifn.integrated_gradients(net, a, t, steps=2), ms.Tensor(x), labels,
                            noise, chunk=3)
    assert got.shape == (2, 2, 2, 3, 4)
    for n, row in enumerate([[0, 2], [1, 0]]):
        for j, t in enumerate(row):
            assert_close(got[n, j], (x[n] + noise.mean(axis=0)) * w[t].reshape(2, 3, 4), rtol=1e-5)


@pytest.mark.parametrize("n, chunk", [(1, 16), (3, 2), (3, 7), (5, 64)])
def test_method_is_called_on_fixed_size_chunks(linear, n, chunk):
    net, _, _ = linear
    sizes = []

    def method(inputs, targets):
        sizes.append((inputs.shape[0], targets.shape[0]))
        return xaifn.gradient(net, inputs, targets)

    xaifn.smooth_grad(method, ms.Tensor(normal(0, (n, 2, 3, 4))), 1, normal(1, (10, 2, 3, 4)), chunk=chunk)
    block = min(n, chunk)
    per_step = min(max(1, chunk // block), 10)
    assert {s for s, _ in sizes} == {block * per_step}          # one size: one compile of the method
    assert all(s == t for s, t in sizes) and block * per_step <= chunk
    assert len(sizes) == -(-10 // per_step) * -(-n // block)


# --------------------------------------------------------------------------------------------
# The seeded noise.
# --------------------------------------------------------------------------------------------

def test_gaussian_noise_is_data_from_its_seed():
    state = np.random.get_state()[1].copy()
    noise = xaifn.GaussianNoise(seed=3, num_samples=400, shape=(2, 5, 6), std=0.3)
    whole = np.asarray(noise)
    assert whole.shape == (400, 2, 5, 6) and whole.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([noise[0:7], noise[7:400]]), whole)
    np.testing.assert_array_equal(np.asarray(xaifn.GaussianNoise(3, 400, (2, 5, 6), 0.3)), whole)
    assert not np.array_equal(np.asarray(xaifn.GaussianNoise(4, 400, (2, 5, 6), 0.3)), whole)
    assert abs(whole.std() - 0.3) < 0.01 and abs(whole.mean()) < 0.01
    np.testing.assert_array_equal(np.random.get_state()[1], state)   # no global RNG touched


def test_same_seed_same_maps_and_std_zero_is_no_noise(linear):
    net, _, _ = linear
    x = ms.Tensor(normal(5, (2, 2, 3, 4)))

    def method(inputs, targets):
        return xaifn.input_x_gradient(net, inputs * inputs, targets)

    maps = [xaifn.smooth_grad(method, x, 1, xaifn.GaussianNoise(seed, 6, (2, 3, 4), 0.5)).asnumpy()
            for seed in (0, 0, 1)]
    np.testing.assert_array_equal(maps[0], maps[1])
    assert not np.allclose(maps[0], maps[2])
    assert_close(xaifn.smooth_grad(method, x, 1, xaifn.GaussianNoise(0, 3, (2, 3, 4), 0.0)),
                 method(x, [1, 1]).asnumpy(), rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Errors before any computation.
# --------------------------------------------------------------------------------------------

def _never(inputs, targets):
    raise AssertionError("the method must not be called")


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((_never, "x", 1, np.zeros((2, 2, 3, 4), np.float32)), {}, TypeError, "`inputs`"),
    (("method", None, 1, np.zeros((2, 2, 3, 4), np.float32)), {}, TypeError, "`method` must be callable"),
    ((_never, None, 1, np.zeros((2, 3, 3, 4), np.float32)), {}, ValueError, r"`noise` must have shape \(S, 2, 3, 4\)"),
    ((_never, None, 1, np.zeros((2, 3, 4), np.float32)), {}, ValueError, "`noise` must have shape"),
    ((_never, None, 1, np.zeros((2, 2, 3, 4), np.int32)), {}, TypeError, "`noise` must hold floats"),
    ((_never, None, 1, xaifn.GaussianNoise(0, 2, (1, 3, 4), 1.0)), {}, ValueError, "`noise` must have shape"),
    ((_never, None, [1, 2, 0], np.zeros((2, 2, 3, 4), np.float32)), {}, ValueError, "one entry per input"),
    ((_never, None, 1.5, np.zeros((2, 2, 3, 4), np.float32)), {}, TypeError, "`targets`"),
    ((_never, None, 1, np.zeros((2, 2, 3, 4), np.float32)), dict(kind="var"), ValueError, "`kind` must be one of"),
    ((_never, None, 1, np.zeros((2, 2, 3, 4), np.float32)), dict(chunk=0), ValueError, "`chunk`"),
])
def test_bad_arguments(args, kwargs, error, message):
    x = ms.Tensor(normal(0, (2, 2, 3, 4)))
    args = tuple(x if a is None else a for a in args)
    with pytest.raises(error, match=message):
        xaifn.smooth_grad(*args, **kwargs)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(std=-1.0), ValueError, "`std`"), (dict(std=float("nan")), ValueError, "`std`"),
    (dict(shape=(3, 4)), TypeError, "`shape`"), (dict(num_samples=0), ValueError, "`num_samples`"),
    (dict(seed=-1), ValueError, "`seed`")])
def test_bad_noise_arguments(kwargs, error, message):
    arguments = dict(seed=0, num_samples=4, shape=(2, 3, 4), std=1.0) | kwargs
    with pytest.raises(error, match=message):
        xaifn.GaussianNoise(**arguments)


def test_a_method_returning_the_wrong_rows_is_named(linear):
    with pytest.raises(TypeError, match="`method` must return a Tensor with one row per input"):
        xaifn.smooth_grad(lambda a, t: a[:1], ms.Tensor(normal(0, (2, 2, 3, 4))), 1, normal(1, (3, 2, 3, 4)))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e30])   # 1e30: finite maps, squares overflow float32
def test_non_finite_maps_raise_naming_smooth_grad(kind, bad):
    x = ms.Tensor(normal(0, (2, 2, 3, 4)))
    with pytest.raises(FloatingPointError, match="^smooth_grad: .*non-finite"):
        xaifn.smooth_grad(lambda a, t: a * 0 + bad, x, 1, normal(1, (3, 2, 3, 4)), kind=kind)
