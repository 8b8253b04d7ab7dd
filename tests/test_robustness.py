"""Dependable under real use (issue 9): memory in bytes, recompilation, threads, changed networks,
non-finite values, input kinds, OoD training, Occlusion strides.

Each test reproduces a failure of the earlier code (wrong answer, MindSpore trace, unbounded memory)
and checks the fixed behaviour. Tiny networks from conftest.py, 8 x 8 to 16 x 16 images.
"""
import threading
import tracemalloc
import warnings
import weakref

import numpy as np
import mindspore as ms
import pytest
from hypothesis import given, settings, strategies as st
from mindspore import nn, ops

import xaifn
from xaifn import _checks, _chunked

SOFTMAX = nn.Softmax()


def uniform(seed, shape):
    return ms.Tensor(np.random.default_rng(seed).random(shape), ms.float32)


# ------------------------------------------------------------------------------------------------
# Item 5: the chunk knob is a byte budget; memory does not grow with the number of masks.
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [("256MiB", 256 * 2**20), ("1GB", 10**9), ("1.5KiB", 1536),
                                            (" 64 kb ", 64000), ("100B", 100)])
def test_chunk_byte_sizes_parse(text, expected):
    assert _checks.check_chunk(text) == _checks.ByteBudget(expected)
    assert _checks.check_chunk(7) == 7


def test_byte_budget_gives_fewer_images_per_step_for_larger_images(zoo):
    net = zoo.GlobalNet()
    budget = _checks.check_chunk("4MiB")
    steps = []
    for side in (8, 16, 32):
        per_image = _chunked.bytes_per_image(net, uniform(0, (1, 3, side, side)))
        # honest: at least the image itself and the network's intermediate outputs
        assert per_image > _chunked.PERTURBATION_COPIES * 3 * side * side * 4
        steps.append(_chunked.images_per_step(budget, per_image))
    assert steps[0] > steps[1] > steps[2] >= 1
    assert steps[0] * _chunked.bytes_per_image(net, uniform(0, (1, 3, 8, 8))) <= budget.bytes
    assert _chunked.images_per_step(_checks.check_chunk("1B"), 10**6) == 1  # never zero
    assert _chunked.images_per_step(5, 10**9) == 5                          # an int is images


@pytest.mark.parametrize("method", ["rise", "occlusion"])
def test_byte_chunk_gives_the_same_map_as_an_image_chunk(zoo, method):
    net, x = zoo.GlobalNet(), uniform(1, (2, 3, 8, 8))
    masks = xaifn.rise_masks(0, 40, (8, 8))
    run = {"rise": lambda c: xaifn.rise(net, SOFTMAX, x, [1, 2], masks, chunk=c),
           "occlusion": lambda c: xaifn.occlusion(net, SOFTMAX, x, [1, 2], chunk=c)}[method]
    reference = run(7).asnumpy()
    for chunk in ("20KiB", "1MiB", _chunked.DEFAULT_CHUNK):
        np.testing.assert_allclose(run(chunk).asnumpy(), reference, rtol=0, atol=1e-6)  # probabilities


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_rendering_masks_needs_no_float64_copy_of_them_all():
    # the upsampled float64 grids were rendered for all masks at once: 3x the result's size here
    masks, peak = _peak_bytes(lambda: xaifn.rise_masks(0, 2000, (40, 40)))
    assert peak < 1.5 * masks.nbytes


def test_checking_float32_masks_copies_nothing(zoo):
    masks = xaifn.rise_masks(0, 2000, (16, 16))
    checked, peak = _peak_bytes(lambda: _checks.check_masks(masks, 16, 16))
    assert checked is masks or np.shares_memory(checked, masks)
    assert peak < 0.1 * masks.nbytes


# ------------------------------------------------------------------------------------------------
# A network whose forward depends on a replaceable parameter-free sub-cell and on a plain flag.
# ------------------------------------------------------------------------------------------------

class Switchable(nn.Cell):
    """conv1 -> nn.ReLU -> conv2 -> `act` (replaceable) -> global mean -> fc, times 3 if `sharp`."""

    def __init__(self, channels=3, num_class=5):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4, 3, pad_mode="same", has_bias=True)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, pad_mode="same", has_bias=True)
        self.act = nn.ReLU()
        self.fc = nn.Dense(4, num_class)
        self.sharp = False
        self.num_features = 4
        self.output_features = False

    def construct(self, x):
        h = self.act(self.conv2(self.relu(self.conv1(x))))
        if self.output_features:
            return h.mean(axis=(2, 3))
        out = self.fc(h.mean(axis=(2, 3)))
        if self.sharp:
            return out * 3
        return out


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def switchable(zoo, seed, act="relu", sharp=False):
    net = Switchable()
    zoo.set_params(net, zoo.random_params(Switchable(), seed))
    net.act, net.sharp = ACTIVATIONS[act](), sharp
    return net


_FEATURES = weakref.WeakKeyDictionary()


def _inlier_for(net):
    """An inlier function over a features view of `net` as it is now (a view is a snapshot: made
    again, like a user would, after the network changed; otherwise reused, so compiled once)."""
    from xaifn import _cache, ood
    classifier = getattr(net, "net", net)
    structure, features = _FEATURES.get(classifier, (None, None))
    if structure != _cache.structure(classifier):
        features = xaifn.network_view(classifier, output_features=True)
        _FEATURES[classifier] = (_cache.structure(classifier), features)
    return ood.inlier_fn(ood.init(0, 4, 3), features)


METHODS = {
    "gradient": lambda net, x, masks: xaifn.gradient(net, x, [1, 2]),
    "deconvolution": lambda net, x, masks: xaifn.deconvolution(net, x, [1, 2]),
    "guided_backprop": lambda net, x, masks: xaifn.guided_backprop(net, x, [1, 2]),
    "gradcam": lambda net, x, masks: xaifn.gradcam(net, x, [1, 2], layer="conv1"),
    "occlusion": lambda net, x, masks: xaifn.occlusion(net, SOFTMAX, x, [1, 2], window=3, stride=2),
    "rise": lambda net, x, masks: xaifn.rise(net, SOFTMAX, x, [1, 2], masks),
    "rise_plus": lambda net, x, masks: xaifn.rise_plus(net, SOFTMAX, _inlier_for(net), x, [1, 2], masks),
}


# ------------------------------------------------------------------------------------------------
# Item 6: equal activations and inlier functions reuse the compiled kernel; a warning otherwise.
# ------------------------------------------------------------------------------------------------

def test_equal_activations_and_inlier_functions_reuse_the_kernel(zoo):
    from xaifn import _cache, ood
    net, x, masks = switchable(zoo, 0), uniform(2, (2, 3, 8, 8)), xaifn.rise_masks(0, 16, (8, 8))
    first = xaifn.rise(net, nn.Softmax(), x, 1, masks).asnumpy()
    builds = _cache._BUILDS[net]  # pylint: disable=protected-access
    for activation in (nn.Softmax(), nn.Softmax(axis=-1)):
        np.testing.assert_array_equal(xaifn.rise(net, activation, x, 1, masks).asnumpy(), first)
    assert _cache._BUILDS[net] == builds  # pylint: disable=protected-access
    # other settings are another kernel, and another map
    other = xaifn.rise(net, nn.Softmax(axis=0), x, 1, masks).asnumpy()
    assert _cache._BUILDS[net] == builds + 1  # pylint: disable=protected-access
    assert np.abs(other - first).max() > 1e-3
    features, params = xaifn.network_view(net, output_features=True), ood.init(0, 4, 3)
    plus = xaifn.rise_plus(net, SOFTMAX, ood.inlier_fn(params, features), x, 1, masks).asnumpy()
    builds = _cache._BUILDS[net]  # pylint: disable=protected-access
    again = xaifn.rise_plus(net, nn.Softmax(), ood.inlier_fn(params, features), x, 1, masks).asnumpy()
    np.testing.assert_array_equal(again, plus)
    assert _cache._BUILDS[net] == builds  # pylint: disable=protected-access
    # other parameter Tensors: another inlier function
    xaifn.rise_plus(net, SOFTMAX, ood.inlier_fn(ood.init(1, 4, 3), features), x, 1, masks)
    assert _cache._BUILDS[net] > builds  # pylint: disable=protected-access


def _softmax_sharp(logits):
    return ops.softmax(2 * logits, -1)


def _softmax_flat(logits):
    return ops.softmax(logits / 2, -1)


def test_a_network_that_keeps_recompiling_warns_once(zoo, monkeypatch):
    from xaifn import _cache
    monkeypatch.setattr(_cache, "RECOMPILE_WARNING", 3)
    net, x, masks = switchable(zoo, 1), uniform(3, (1, 3, 8, 8)), xaifn.rise_masks(0, 8, (8, 8))
    xaifn.rise(net, SOFTMAX, x, 1, masks)
    xaifn.rise(net, _softmax_sharp, x, 1, masks)
    with pytest.warns(RuntimeWarning, match="keeps recompiling"):
        xaifn.rise(net, _softmax_flat, x, 1, masks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xaifn.rise(net, ops.sigmoid, x, 1, masks)  # once only


def test_many_methods_on_one_network_do_not_warn(zoo, monkeypatch):
    from xaifn import _cache
    monkeypatch.setattr(_cache, "RECOMPILE_WARNING", 3)  # gradcam and gradcam++ share a kind
    net, x, masks = zoo.GlobalNet(), uniform(4, (2, 3, 8, 8)), xaifn.rise_masks(0, 8, (8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            xaifn.gradient(net, x, 1)
            xaifn.guided_backprop(net, x, 1)
            xaifn.gradcam(net, x, 1, layer="conv2")
            xaifn.gradcam_plus_plus(net, x, 1, layer="conv2")
            xaifn.integrated_gradients(net, x, 1, steps=4)
            xaifn.rise(net, SOFTMAX, x, 1, masks)
            xaifn.occlusion(net, SOFTMAX, x, 1, window=4, stride=4)


# ------------------------------------------------------------------------------------------------
# Item 3: a network changed between calls is explained as it is now, by every method.
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(METHODS))
@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 2**16), changes=st.lists(st.tuples(st.sampled_from(sorted(ACTIVATIONS)), st.booleans()),
                                                    min_size=1, max_size=1))
def test_a_changed_network_is_explained_as_it_is_now(zoo, method, seed, changes):
    x, masks = uniform(seed, (2, 3, 8, 8)), xaifn.rise_masks(seed, 12, (8, 8))
    net = switchable(zoo, seed)
    explain = METHODS[method]
    previous = explain(net, x, masks).asnumpy()
    for act, sharp in changes:
        net.act, net.sharp = ACTIVATIONS[act](), sharp  # a new parameter-free cell, a plain flag
        got = explain(net, x, masks).asnumpy()
        expected = explain(switchable(zoo, seed, act, sharp), x, masks).asnumpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * max(np.abs(expected).max(), 1e-12))
        previous = got
    assert previous.shape[0] == 2


def test_the_cache_does_not_keep_a_network_alive(zoo):
    import gc
    net = switchable(zoo, 3)
    xaifn.rise(net, SOFTMAX, uniform(0, (1, 3, 8, 8)), 1, xaifn.rise_masks(0, 4, (8, 8)))
    alive = weakref.ref(net)
    del net
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("method", ["gradient", "gradcam", "rise", "occlusion"])
def test_one_call_fingerprints_the_network_once(zoo, method, monkeypatch):
    """The cell-tree fingerprint (5-25 ms on a mindcv ResNet) is computed once per explanation,
    not at every cache lookup of it (checks, profile, chunk estimate, kernel)."""
    from xaifn import _cache
    net, x, masks = switchable(zoo, 1), uniform(1, (2, 3, 8, 8)), xaifn.rise_masks(1, 12, (8, 8))
    METHODS[method](net, x, masks)
    counted, structure = [], _cache.structure
    monkeypatch.setattr(_cache, "structure", lambda cell: counted.append(cell) or structure(cell))
    METHODS[method](net, x, masks)
    assert sum(cell is net for cell in counted) == 1
    METHODS[method](net, x, masks)
    assert sum(cell is net for cell in counted) == 2


def test_a_network_changed_between_nested_calls_is_seen(zoo):
    """A call inside a `one_call` function starts afresh: a network changed between two nested
    calls (as model randomisation changes its private copy) is explained as it is now."""
    from xaifn import _cache
    x = uniform(2, (2, 3, 8, 8))

    @_cache.one_call
    def twice(net):
        first = xaifn.gradient(net, x, [1, 2]).asnumpy()
        net.act = nn.Tanh()
        return first, xaifn.gradient(net, x, [1, 2]).asnumpy()
    first, second = twice(switchable(zoo, 2))
    np.testing.assert_array_equal(first, xaifn.gradient(switchable(zoo, 2), x, [1, 2]).asnumpy())
    np.testing.assert_array_equal(second, xaifn.gradient(switchable(zoo, 2, "tanh"), x, [1, 2]).asnumpy())
    assert np.abs(first - second).max() > 0


# ------------------------------------------------------------------------------------------------
# Item 1: threads. Concurrent calls (first calls included) equal the sequential results exactly.
# ------------------------------------------------------------------------------------------------

@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**16), threads=st.integers(2, 6),
       methods=st.lists(st.sampled_from(["gradient", "guided_backprop", "gradcam", "occlusion", "rise"]),
                        min_size=1, max_size=3))
def test_concurrent_calls_equal_sequential_calls(zoo, seed, threads, methods):
    nets = [switchable(zoo, seed), switchable(zoo, seed + 1)]  # fresh: the threads compile
    x, masks = uniform(seed, (2, 3, 8, 8)), xaifn.rise_masks(seed, 12, (8, 8))
    jobs = [(method, i % 2) for i in range(threads) for method in methods]
    barrier = threading.Barrier(threads)
    results, errors = {}, []

    def worker(index):
        try:
            barrier.wait()
            for job in range(index, len(jobs), threads):
                method, which = jobs[job]
                results[(method, which, job)] = METHODS[method](nets[which], x, masks).asnumpy()
        except Exception as error:  # pylint: disable=broad-except
            errors.append(error)
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors, errors
    for (method, which, _), got in results.items():
        np.testing.assert_array_equal(got, METHODS[method](nets[which], x, masks).asnumpy())
    assert len(results) == len(jobs)


# ------------------------------------------------------------------------------------------------
# Item 4: non-finite inputs, masks, baselines, logits, OoD features.
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_refused(zoo, method, bad):
    x = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    x[1, 2, 3, 4] = bad
    with pytest.raises(ValueError, match="`inputs` must be finite"):
        METHODS[method](SHARED_NET(zoo), ms.Tensor(x), xaifn.rise_masks(0, 4, (8, 8)))


def SHARED_NET(zoo, _cache={}):  # pylint: disable=dangerous-default-value,invalid-name
    """One Switchable shared by the cheap refusal tests (compiled once)."""
    return _cache.setdefault("net", switchable(zoo, 5))


def test_non_finite_masks_and_baselines_are_refused(zoo):
    net, x = SHARED_NET(zoo), uniform(0, (1, 3, 8, 8))
    masks = xaifn.rise_masks(0, 4, (8, 8))
    masks[2, 0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="masks"):
        xaifn.rise(net, SOFTMAX, x, 1, masks)
    for baseline in (np.nan, np.inf):
        with pytest.raises(ValueError, match="baseline"):
            xaifn.occlusion(net, SOFTMAX, x, 1, baseline=baseline)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_non_finite_weights_are_refused_naming_the_parameter(zoo, method):
    net = switchable(zoo, 6)
    METHODS[method](net, uniform(1, (2, 3, 8, 8)), xaifn.rise_masks(0, 4, (8, 8)))
    weight = net.fc.weight.asnumpy()
    weight[1, 0] = np.nan  # finite inputs, NaN logits: CPU ReLU would drop the NaN from maps
    net.fc.weight.set_data(ms.Tensor(weight))
    with pytest.raises(ValueError, match="Parameter 'fc.weight'"):
        METHODS[method](net, uniform(1, (2, 3, 8, 8)), xaifn.rise_masks(0, 4, (8, 8)))


class Overflowing(nn.Cell):
    """Finite weights, logits that overflow float32 to Inf."""

    def __init__(self):
        super().__init__()
        self.net = Switchable()

    def construct(self, x):
        return self.net(x) * (x.mean() * 1e38 * 1e38)  # Inf in float32


@pytest.mark.parametrize("method", ["gradient", "occlusion", "rise", "rise_plus"])
def test_non_finite_logits_raise_naming_the_method(zoo, method):
    net = Overflowing()
    zoo.set_params(net, zoo.random_params(net, 6))
    with pytest.raises(FloatingPointError, match=f"^{method}: .*non-finite"):
        METHODS[method](net, uniform(1, (2, 3, 8, 8)), xaifn.rise_masks(0, 4, (8, 8)))


@pytest.mark.parametrize("layer", ["", "net.conv1"])
@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus", "eigencam"])
def test_non_finite_gradients_at_a_cam_layer_raise(zoo, method, layer):
    # the CAM's ReLU would drop the NaN of an Inf gradient: a plausible map without this check
    net = Overflowing()
    zoo.set_params(net, zoo.random_params(net, 6))
    with pytest.raises(FloatingPointError, match=f"CAM at layer {layer!r}: .*non-finite"):
        getattr(xaifn, method)(net, uniform(1, (2, 3, 8, 8)), [1, 2], layer=layer)


def test_ood_fit_on_non_finite_features_names_the_batch():
    from xaifn import ood
    rng = np.random.default_rng(0)
    batches = [(ms.Tensor(rng.normal(size=(8, 4)), ms.float32), ms.Tensor(np.arange(8) % 3, ms.int32))
               for _ in range(3)]
    bad = batches[1][0].asnumpy()
    bad[2, 1] = np.nan
    batches[1] = (ms.Tensor(bad), batches[1][1])
    with pytest.raises(ValueError, match=r"batch 1 \(epoch 0\).*finite"):
        ood.fit(ood.init(0, 4, 3), batches, epochs=1)


# ------------------------------------------------------------------------------------------------
# Item 7: dtypes, channel counts and sizes.
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [ms.float64, ms.float16])
def test_other_float_inputs_are_cast_for_perturbation_methods_and_refused_by_gradients(zoo, dtype):
    net = SHARED_NET(zoo)
    x = uniform(4, (2, 3, 8, 8)).astype(dtype)
    x32 = x.astype(ms.float32)  # the values the network sees
    masks = xaifn.rise_masks(0, 8, (8, 8))
    for method in ("rise", "occlusion"):
        got = METHODS[method](net, x, masks)
        assert got.dtype == ms.float32
        np.testing.assert_array_equal(got.asnumpy(), METHODS[method](net, x32, masks).asnumpy())
    with pytest.raises(TypeError, match=rf"`inputs` must have the dtype .*Float32.*got {dtype}"):
        xaifn.gradient(net, x, 1)


class HalfLogits(nn.Cell):
    """A float32 network that returns float16 logits."""

    def __init__(self):
        super().__init__()
        self.net = Switchable()

    def construct(self, x):
        return self.net(x).astype(ms.float16)


def test_float16_logits_give_a_float32_map_close_to_the_float32_one(zoo):
    full, half = switchable(zoo, 7), HalfLogits()
    values = {p.name: p.asnumpy() for p in full.get_parameters()}
    for param in half.get_parameters():  # named "net.<name>" in HalfLogits
        param.set_data(ms.Tensor(values[param.name.split(".", 1)[1]]))
    x, masks = uniform(5, (2, 3, 8, 8)), xaifn.rise_masks(0, 16, (8, 8))
    for method in ("rise", "occlusion"):
        got, expected = METHODS[method](half, x, masks), METHODS[method](full, x, masks).asnumpy()
        assert got.dtype == ms.float32
        np.testing.assert_allclose(got.asnumpy(), expected, atol=2e-3 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("method", ["gradient", "rise", "occlusion"])
def test_wrong_channel_count_is_a_value_error_naming_the_channels(zoo, method):
    with pytest.raises(ValueError, match=r"`inputs` of sample shape \(4, 8, 8\).*expects 3 input channels"):
        METHODS[method](SHARED_NET(zoo), uniform(0, (2, 4, 8, 8)), xaifn.rise_masks(0, 4, (8, 8)))


def test_wrong_image_size_is_a_value_error(pzoo):
    net, _, _ = pzoo.linear_net((1, 6, 6))
    with pytest.raises(ValueError, match=r"`inputs` of sample shape \(1, 8, 8\).*do not fit"):
        xaifn.rise(net, SOFTMAX, uniform(0, (1, 1, 8, 8)), 0, xaifn.rise_masks(0, 4, (8, 8)))


# ------------------------------------------------------------------------------------------------
# Item 8: OoD training errors; RISEPlus with an untrained head warns.
# ------------------------------------------------------------------------------------------------

def _dataset(labels, columns=2, drop=False):
    import mindspore.dataset as ds
    rng = np.random.default_rng(0)
    data = (rng.random((len(labels), 3, 8, 8), np.float32), labels, labels)[:columns]
    return ds.NumpySlicesDataset(data, shuffle=False).batch(2, drop_remainder=drop)


@pytest.mark.parametrize("dataset, match", [
    (lambda: _dataset(np.eye(5, dtype=np.float32)[:1], drop=True), "no batch"),  # 1 row, batches of 2
    (lambda: _dataset(np.arange(4, dtype=np.int32)), r"one-hot \(N, 5\).*class indices"),
    (lambda: _dataset(np.eye(4, dtype=np.float32)), r"one-hot \(N, 5\).*got shape \(2, 4\)"),
    (lambda: _dataset(np.eye(5, dtype=np.float32)[:4], columns=3), "2 columns"),
])
def test_oodnet_train_refuses_bad_datasets(zoo, dataset, match):
    from xaifn.explanation import OoDNet
    ood_net = OoDNet(SHARED_NET(zoo), 5)
    with pytest.raises(ValueError, match=match):
        ood_net.train(dataset(), nn.SoftmaxCrossEntropyWithLogits(), epoch=1)


def test_ood_functions_refuse_bad_params_and_batches():
    from xaifn import ood
    params = ood.init(0, 4, 3)
    features = ms.Tensor(np.ones((6, 4)), ms.float32)
    labels = ms.Tensor(np.arange(6) % 3, ms.int32)
    broken = {k: v for k, v in params.items() if k != "bn_var"}
    with pytest.raises(ValueError, match=r"`params` lacks the key\(s\) \['bn_var'\]"):
        ood.fit(broken, [(features, labels)], epochs=1)
    with pytest.raises(ValueError, match="lacks"):
        ood.inlier_fn({"dense_w": params["dense_w"]}, lambda images: images)
    with pytest.raises(ValueError, match=r"batch 0 must be a pair \(inputs, labels\), got 3 items"):
        ood.fit(params, [(features, labels, labels)], epochs=1)
    with pytest.raises(ValueError, match=r"batch 0 \(epoch 0\).*`labels`"):
        ood.fit(params, [(features, ms.Tensor(np.arange(6) % 5, ms.int32))], epochs=1)


def test_riseplus_with_an_untrained_head_warns(zoo):
    from xaifn.explanation import OoDNet, RISEPlus
    net = SHARED_NET(zoo)
    explainer = RISEPlus(OoDNet(net, 5), net, nn.Softmax(), seed=0, num_masks=8)
    with pytest.warns(UserWarning, match="untrained"):
        explainer(uniform(0, (1, 3, 8, 8)), 1)


# ------------------------------------------------------------------------------------------------
# Item 9: Occlusion with a stride larger than its window.
# ------------------------------------------------------------------------------------------------

def test_occlusion_refuses_a_stride_larger_than_the_window(zoo):
    net, x = SHARED_NET(zoo), uniform(0, (1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"`stride` \(3, 1\) must not exceed `window` \(2, 2\)"):
        xaifn.occlusion(net, SOFTMAX, x, 1, window=2, stride=(3, 1))
    # a default stride never exceeds a given window: every pixel is covered
    big = uniform(0, (1, 3, 8, 64))  # default strides (1, 2)
    got = xaifn.occlusion(net, SOFTMAX, big, 1, window=1).asnumpy()
    expected = xaifn.occlusion(net, SOFTMAX, big, 1, window=1, stride=1).asnumpy()
    np.testing.assert_array_equal(got, expected)
