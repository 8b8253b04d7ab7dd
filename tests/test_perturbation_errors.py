"""Occlusion, RISE and the mask generators refuse bad arguments with a TypeError/ValueError that
names the argument, before any perturbed forward pass."""
import numpy as np
import mindspore as ms
import pytest
from mindspore import nn, ops

import xaifn
from xaifn import explanation

SIZE = (5, 7)
SHAPE = (2, 2) + SIZE          # inputs (N, C, H, W)
NUM_CLASS = 4
#: One activation Cell for all tests: compiled kernels are cached per (network, activation).
SOFTMAX = nn.Softmax()


@pytest.fixture(scope="module")
def net(pzoo):
    return pzoo.linear_net(SHAPE[1:], num_class=NUM_CLASS, seed=0)[0]


@pytest.fixture(scope="module")
def x():
    return ms.Tensor(np.random.default_rng(0).random(SHAPE).astype(np.float32))


@pytest.fixture(scope="module")
def good_masks():
    return xaifn.rise_masks(0, 4, SIZE)


def good_call_runs(net, x, good_masks):
    """Sanity: the arguments the error tests vary are valid otherwise."""
    xaifn.rise(net, SOFTMAX, x, [0, 1], good_masks)
    xaifn.occlusion(net, SOFTMAX, x, [0, 1], window=2, stride=1)


def test_valid_arguments_run(net, x, good_masks):
    good_call_runs(net, x, good_masks)


# --------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------

MASK_CASES = [
    ("3-D", np.ones((4,) + SIZE, np.float32), ValueError),
    ("5-D", np.ones((4, 1, 1) + SIZE, np.float32), ValueError),
    ("two channels", np.ones((4, 2) + SIZE, np.float32), ValueError),
    ("transposed", np.ones((4, 1) + SIZE[::-1], np.float32), ValueError),
    ("wrong height", np.ones((4, 1, 6, 7), np.float32), ValueError),
    ("no masks", np.ones((0, 1) + SIZE, np.float32), ValueError),
    ("above one", np.full((4, 1) + SIZE, 1.01, np.float32), ValueError),
    ("negative", np.full((4, 1) + SIZE, -0.01, np.float32), ValueError),
    ("NaN", np.where(np.eye(5, 7, dtype=bool), np.nan, 0.5)[None, None].astype(np.float32), ValueError),
    ("inf", np.full((4, 1) + SIZE, np.inf, np.float32), ValueError),
    ("int array", np.ones((4, 1) + SIZE, np.int64), TypeError),
    ("uint8 array", np.ones((4, 1) + SIZE, np.uint8), TypeError),
    ("int tensor", ms.Tensor(np.ones((4, 1) + SIZE, np.int32)), TypeError),
    ("nested list", np.ones((4, 1) + SIZE).tolist(), TypeError),
    ("None", None, TypeError),
    ("float", 0.5, TypeError),
    ("lazy, wrong size", xaifn.RiseMasks(0, 4, (7, 5)), ValueError),
]


@pytest.mark.parametrize("masks, error", [c[1:] for c in MASK_CASES], ids=[c[0] for c in MASK_CASES])
def test_bad_masks(net, x, masks, error):
    with pytest.raises(error, match="masks"):
        xaifn.rise(net, SOFTMAX, x, 0, masks)


def test_one_bad_value_among_many_is_found(net, x):
    masks = np.full((6, 1) + SIZE, 0.5, np.float32)
    masks[4, 0, 3, 6] = 1.0 + 1e-6
    with pytest.raises(ValueError, match="masks"):
        xaifn.rise(net, SOFTMAX, x, 0, masks)


def test_masks_at_the_bounds_are_accepted(net, x):
    """0 and 1 are valid mask values: a zero mask adds nothing, a ones mask adds p / K."""
    masks = np.zeros((2, 1) + SIZE, np.float32)
    masks[1] = 1.0
    got = xaifn.rise(net, SOFTMAX, x, 0, masks).asnumpy()
    ones = xaifn.rise(net, SOFTMAX, x, 0, masks[1:]).asnumpy()
    np.testing.assert_allclose(got, ones / 2, rtol=1e-6)
    assert ones.min() > 0


# --------------------------------------------------------------------------------------------
# window, stride, baseline
# --------------------------------------------------------------------------------------------

WINDOW_CASES = [
    ((6, 2), ValueError),          # taller than the image
    ((2, 8), ValueError),          # wider than the image
    (6, ValueError),               # int: 6 x 6 does not fit 5 x 7
    (0, ValueError),
    ((0, 2), ValueError),
    ((2, -1), ValueError),
    (-2, ValueError),
    (2.0, TypeError),
    ((2.0, 2), TypeError),
    ("3", TypeError),
    ((2,), TypeError),
    ((2, 2, 2), TypeError),
    (True, TypeError),
    ((True, 2), TypeError),
]


@pytest.mark.parametrize("name", ["window", "stride"])
@pytest.mark.parametrize("value, error", WINDOW_CASES, ids=[repr(c[0]) for c in WINDOW_CASES])
def test_bad_window_and_stride(net, x, name, value, error):
    with pytest.raises(error, match=name):
        xaifn.occlusion(net, SOFTMAX, x, 0, **{name: value})


@pytest.mark.parametrize("baseline, error", [("0", TypeError), (None, TypeError), (ms.Tensor(0.0), TypeError),
                                             ([0.0], TypeError), (float("nan"), ValueError),
                                             (float("inf"), ValueError), (True, TypeError), (1 + 2j, TypeError)])
def test_bad_baseline(net, x, baseline, error):
    with pytest.raises(error, match="baseline"):
        xaifn.occlusion(net, SOFTMAX, x, 0, baseline=baseline)


# --------------------------------------------------------------------------------------------
# chunk, activation_fn, net_fn, inputs
# --------------------------------------------------------------------------------------------

CHUNK_CASES = [(0, ValueError), (-3, ValueError), (4.0, TypeError), (True, TypeError),
               (False, TypeError), ("8", ValueError), ("-1MiB", ValueError), ("0GB", ValueError),
               ("12 parsecs", ValueError), (None, TypeError)]


@pytest.mark.parametrize("method", ["rise", "occlusion"])
@pytest.mark.parametrize("chunk, error", CHUNK_CASES, ids=[repr(c[0]) for c in CHUNK_CASES])
def test_bad_chunk(net, x, good_masks, method, chunk, error):
    with pytest.raises(error, match="chunk"):
        if method == "rise":
            xaifn.rise(net, SOFTMAX, x, 0, good_masks, chunk=chunk)
        else:
            xaifn.occlusion(net, SOFTMAX, x, 0, chunk=chunk)


@pytest.mark.parametrize("method", ["rise", "occlusion"])
@pytest.mark.parametrize("activation_fn", [None, "softmax", 1.0, ms.Tensor([1.0])])
def test_activation_fn_not_callable(net, x, good_masks, method, activation_fn):
    with pytest.raises(TypeError, match="activation_fn"):
        if method == "rise":
            xaifn.rise(net, activation_fn, x, 0, good_masks)
        else:
            xaifn.occlusion(net, activation_fn, x, 0)


@pytest.mark.parametrize("method", ["rise", "occlusion"])
def test_net_fn_not_callable(x, good_masks, method):
    with pytest.raises(TypeError, match="net_fn"):
        if method == "rise":
            xaifn.rise("net", SOFTMAX, x, 0, good_masks)
        else:
            xaifn.occlusion(None, SOFTMAX, x, 0)


INPUT_CASES = [
    ("numpy", np.zeros(SHAPE, np.float32), TypeError),
    ("int tensor", ms.Tensor(np.zeros(SHAPE, np.int32)), TypeError),
    ("3-D", ms.Tensor(np.zeros(SHAPE[1:], np.float32)), ValueError),
    ("empty", ms.Tensor(np.zeros((0,) + SHAPE[1:], np.float32)), ValueError),
]


@pytest.mark.parametrize("method", ["rise", "occlusion"])
@pytest.mark.parametrize("inputs, error", [c[1:] for c in INPUT_CASES], ids=[c[0] for c in INPUT_CASES])
def test_bad_inputs(net, good_masks, method, inputs, error):
    with pytest.raises(error, match="inputs"):
        if method == "rise":
            xaifn.rise(net, SOFTMAX, inputs, 0, good_masks)
        else:
            xaifn.occlusion(net, SOFTMAX, inputs, 0)


# --------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------

TARGET_CASES = [
    ("float tensor", ms.Tensor([0.0, 1.0], ms.float32), TypeError),
    ("float 0-D", ms.Tensor(1.0, ms.float32), TypeError),
    ("bool tensor", ms.Tensor([True, False]), TypeError),
    ("float", 1.0, TypeError),
    ("bool", True, TypeError),
    ("str", "1", TypeError),
    ("None", None, TypeError),
    ("list of floats", [0.0, 1.0], TypeError),
    ("too large", NUM_CLASS, ValueError),
    ("negative", -1, ValueError),
    ("one out of range", [0, NUM_CLASS], ValueError),
    ("2-D out of range", ms.Tensor([[0, 1], [2, NUM_CLASS]], ms.int32), ValueError),
    ("too short", [0], ValueError),
    ("too long", ms.Tensor([0, 1, 2], ms.int32), ValueError),
    ("2-D wrong rows", ms.Tensor([[0, 1]], ms.int32), ValueError),
    ("2-D no columns", ms.Tensor(np.zeros((2, 0), np.int32)), ValueError),
    ("3-D", ms.Tensor(np.zeros((2, 1, 1), np.int32)), ValueError),
]


@pytest.mark.parametrize("method", ["rise", "occlusion"])
@pytest.mark.parametrize("targets, error", [c[1:] for c in TARGET_CASES], ids=[c[0] for c in TARGET_CASES])
def test_bad_targets(net, x, good_masks, method, targets, error):
    with pytest.raises(error, match="targets"):
        if method == "rise":
            xaifn.rise(net, SOFTMAX, x, targets, good_masks)
        else:
            xaifn.occlusion(net, SOFTMAX, x, targets)


def test_bad_targets_are_refused_before_any_perturbed_pass(x, good_masks):
    """A plain net_fn records its batch sizes: at most the single-sample shape probe runs."""
    calls = []

    def net_fn(images):
        calls.append(images.shape[0])
        return ops.zeros((images.shape[0], NUM_CLASS), ms.float32)

    with pytest.raises(ValueError, match="targets"):
        xaifn.rise(net_fn, SOFTMAX, x, NUM_CLASS, good_masks)
    with pytest.raises(ValueError, match="targets"):
        xaifn.occlusion(net_fn, SOFTMAX, x, [0, 1, 2])
    assert all(size == 1 for size in calls), calls


def test_network_output_must_be_2d(x, good_masks):
    def net_fn(images):
        return images.sum(axis=1)    # (N, H, W): not logits

    with pytest.raises(ValueError, match="net_fn"):
        xaifn.rise(net_fn, SOFTMAX, x, 0, good_masks)


# --------------------------------------------------------------------------------------------
# rise_masks / RiseMasks arguments
# --------------------------------------------------------------------------------------------

MASK_GENERATOR_CASES = [
    ("seed", -1, ValueError),
    ("seed", 1.5, TypeError),
    ("seed", "0", TypeError),
    ("seed", None, TypeError),
    ("seed", True, TypeError),
    ("num_masks", 0, ValueError),
    ("num_masks", -5, ValueError),
    ("num_masks", 10.0, TypeError),
    ("num_masks", True, TypeError),
    ("size", (0, 8), ValueError),
    ("size", -8, ValueError),
    ("size", (8,), TypeError),
    ("size", (8, 8, 8), TypeError),
    ("size", "32", TypeError),
    ("size", 8.0, TypeError),
    ("size", (8.0, 8), TypeError),
    ("size", None, TypeError),
    ("grid", 0, ValueError),
    ("grid", 2.5, TypeError),
    ("keep_prob", 0.0, ValueError),
    ("keep_prob", -0.1, ValueError),
    ("keep_prob", 1.5, ValueError),
    ("keep_prob", float("nan"), ValueError),
    ("keep_prob", "0.5", TypeError),
    ("keep_prob", True, TypeError),
    ("keep_prob", None, TypeError),
]


@pytest.mark.parametrize("factory", [xaifn.rise_masks, xaifn.RiseMasks], ids=["rise_masks", "RiseMasks"])
@pytest.mark.parametrize("name, value, error", MASK_GENERATOR_CASES,
                         ids=[f"{c[0]}={c[1]!r}" for c in MASK_GENERATOR_CASES])
def test_bad_mask_generator_arguments(factory, name, value, error):
    kwargs = dict(seed=0, num_masks=3, size=(8, 8), grid=4, keep_prob=0.5)
    kwargs[name] = value
    with pytest.raises(error, match=name):
        factory(**kwargs)


# --------------------------------------------------------------------------------------------
# Class API
# --------------------------------------------------------------------------------------------

CLASSES = [explanation.Occlusion, explanation.RISE]


@pytest.mark.parametrize("cls", CLASSES, ids=["Occlusion", "RISE"])
@pytest.mark.parametrize("activation_fn", [ops.softmax, lambda z: z, None, "softmax"],
                         ids=["ops.softmax", "lambda", "None", "str"])
def test_class_activation_fn_must_be_a_cell(net, cls, activation_fn):
    with pytest.raises(TypeError, match="activation_fn"):
        cls(net, activation_fn)


@pytest.mark.parametrize("cls", CLASSES, ids=["Occlusion", "RISE"])
def test_class_network_must_be_a_cell(cls):
    with pytest.raises(TypeError, match="network"):
        cls(lambda z: z, SOFTMAX)


@pytest.mark.parametrize("cls", CLASSES, ids=["Occlusion", "RISE"])
@pytest.mark.parametrize("value, error", [(0, ValueError), (-1, ValueError), (8.0, TypeError),
                                          (True, TypeError), ("32", TypeError)])
def test_class_bad_perturbation_per_eval(net, cls, value, error):
    with pytest.raises(error, match="perturbation_per_eval"):
        cls(net, SOFTMAX, perturbation_per_eval=value)


@pytest.mark.parametrize("name, value, error", [("seed", -1, ValueError), ("seed", 0.5, TypeError),
                                                ("num_masks", 0, ValueError),
                                                ("num_masks", 100.0, TypeError)])
def test_class_rise_bad_arguments(net, name, value, error):
    with pytest.raises(error, match=name):
        explanation.RISE(net, SOFTMAX, **{name: value})


@pytest.mark.parametrize("cls", CLASSES, ids=["Occlusion", "RISE"])
def test_class_bad_call_arguments(net, x, cls):
    explainer = cls(net, SOFTMAX, **({"num_masks": 4} if cls is explanation.RISE else {}))
    with pytest.raises(TypeError, match="inputs"):
        explainer(np.zeros(SHAPE, np.float32), 0)
    with pytest.raises(TypeError, match="targets"):
        explainer(x, ms.Tensor([0.5, 1.5], ms.float32))
    with pytest.raises(ValueError, match="targets"):
        explainer(x, NUM_CLASS)
