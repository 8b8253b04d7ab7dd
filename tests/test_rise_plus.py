"""RISEPlus (xaifn.rise_plus and the class explanation.RISEPlus) against the formula of methods.md:

    o(x) = max_c inlier(x)[c],  s_min = o(0-image),  s_max_n = o(x_n)
    s_ni = (clip(o(x_n * M_i), s_min, s_max_n) - s_min) / (s_max_n - s_min + 2.22e-16)
    S[n, j] = (1/K) sum_i s_ni * softmax(f(x_n * M_i))[t_nj] * M_i
"""
import numpy as np
import mindspore as ms
import pytest
from hypothesis import example, given, settings, strategies as st
from mindspore import nn, ops

import xaifn
from xaifn import _cache, ood
from xaifn.explanation import OoDNet, RISEPlus
from _numerics import assert_close, softmax_np

EPS = 2.22e-16
SETTINGS = settings(max_examples=4, deadline=None)


def inlier_weights_np(inlier_np, x, masks):
    """(N, K) weights s_ni and the raw o(x_n * M_i), s_min, s_max from a numpy inlier function."""
    s_min = inlier_np(np.zeros((1,) + x.shape[1:])).max()
    s_max = inlier_np(x).max(axis=1)
    raw = np.stack([inlier_np(x[n][None] * masks).max(axis=1) for n in range(len(x))])   # (N, K)
    clipped = np.minimum(np.maximum(raw, s_min), s_max[:, None])
    return (clipped - s_min) / (s_max[:, None] - s_min + EPS), raw, s_min, s_max


def rise_plus_np(probs_np, inlier_np, x, targets, masks):
    """The RISEPlus map (N, l, H, W) in float64, from numpy probability and inlier functions."""
    x, masks = np.asarray(x, np.float64), np.asarray(masks, np.float64)
    weights, _, _, _ = inlier_weights_np(inlier_np, x, masks)
    out = np.zeros((len(x), targets.shape[1]) + x.shape[2:])
    for n in range(len(x)):
        probs = probs_np(x[n][None] * masks)[:, targets[n]]                                  # (K, l)
        out[n] = np.einsum("kj,k,khw->jhw", probs, weights[n], masks[:, 0])
    return out / len(masks)


class LinearNet(nn.Cell):
    """Flatten -> Dense: a linear classifier with a closed form."""

    def __init__(self, shape, num_class):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(int(np.prod(shape)), num_class)

    def construct(self, x):
        return self.fc(self.flatten(x))


def linear_inlier(weight, bias):
    """images -> flatten(images) weight^T + bias: a hand-made inlier function (traceable)."""
    w = ms.Tensor(np.asarray(weight, np.float32).T)
    b = ms.Tensor(np.asarray(bias, np.float32))

    def inlier(images):
        return ops.matmul(images.reshape(images.shape[0], -1), w) + b
    return inlier


def linear_inlier_np(weight, bias):
    weight, bias = np.asarray(weight, np.float32).astype(np.float64), np.asarray(bias, np.float32)

    def inlier(images):
        return images.reshape(len(images), -1) @ weight.T + bias
    return inlier


def saturating_inlier(images):
    """1 (column 1) for any image that is not all zero, 0 for the zero image: o(x * M) = s_max."""
    level = ops.minimum(images.abs().sum(axis=(1, 2, 3)) * 1e4, 1.0)
    return ops.stack([level * 0.5, level], axis=1)


def constant_inlier(images):
    """The same scores for every image: s_max == s_min, so every weight is 0/eps = 0."""
    return ops.zeros((images.shape[0], 3), images.dtype) + ms.Tensor([0.1, 0.5, 0.2], ms.float32)


# --------------------------------------------------------------------------------------------
# A hand-made case: linear classifier, softmax, linear inlier, three masks
# --------------------------------------------------------------------------------------------

SHAPE = (2, 4, 4)


@pytest.fixture(scope="module")
def hand_case():
    rng = np.random.default_rng(0)
    c, h, w = SHAPE
    net = LinearNet(SHAPE, 3)
    weight, bias = rng.normal(0, 0.5, (3, c * h * w)), rng.normal(0, 0.5, 3)
    net.fc.weight.set_data(ms.Tensor(weight, ms.float32))
    net.fc.bias.set_data(ms.Tensor(bias, ms.float32))
    # inlier class 0: +1 on the left half, -1 on the right half; class 1: -1 everywhere
    left = np.zeros(SHAPE)
    left[:, :, :w // 2] = 1
    inlier_w = np.stack([(2 * left - 1).ravel(), -np.ones(c * h * w)])
    inlier_b = np.array([0.1, -0.05])                                      # s_min = 0.1
    # images brighter on the left, so that s_max = A - B + 0.1 > s_min
    x = np.concatenate([rng.uniform(0.5, 1, (2, c, h, w // 2)), rng.uniform(0, 0.3, (2, c, h, w // 2))],
                       axis=3).astype(np.float32)
    masks = np.zeros((3, 1, h, w), np.float32)
    masks[0, 0, :, :w // 2] = 1                     # keeps the left: o > s_max, clipped, weight 1
    masks[1, 0, :, w // 2:] = 1                     # keeps the right: o < s_min, clipped, weight 0
    masks[2, 0] = rng.uniform(0, 1, (h, w))         # in between
    return dict(net=net, weight=weight.astype(np.float32), bias=bias.astype(np.float32),
                inlier=linear_inlier(inlier_w, inlier_b), inlier_np=linear_inlier_np(inlier_w, inlier_b),
                x=x, masks=masks)


def probs_linear(case):
    weight = case["weight"].astype(np.float64)
    bias = case["bias"].astype(np.float64)
    return lambda images: softmax_np(images.reshape(len(images), -1) @ weight.T + bias)


def test_hand_case_covers_both_clips(hand_case):
    weights, raw, s_min, s_max = inlier_weights_np(hand_case["inlier_np"], hand_case["x"].astype(np.float64),
                                                   hand_case["masks"].astype(np.float64))
    assert s_min == pytest.approx(0.1)
    assert np.all(s_max > s_min)
    assert np.all(raw[:, 0] > s_max) and np.all(raw[:, 1] < s_min)
    assert np.all((raw[:, 2] > s_min) & (raw[:, 2] < s_max))
    np.testing.assert_allclose(weights[:, 0], 1.0)
    np.testing.assert_array_equal(weights[:, 1], 0.0)
    assert np.all((weights[:, 2] > 0.05) & (weights[:, 2] < 0.95))


@pytest.mark.parametrize("targets", [[[0, 2], [1, 0]], [[2], [1]], [[1, 1, 0], [2, 0, 1]]])
def test_hand_case_matches_formula(hand_case, targets):
    targets = np.array(targets)
    got = xaifn.rise_plus(hand_case["net"], nn.Softmax(), hand_case["inlier"], ms.Tensor(hand_case["x"]),
                          ms.Tensor(targets, ms.int32), hand_case["masks"])
    expected = rise_plus_np(probs_linear(hand_case), hand_case["inlier_np"], hand_case["x"], targets,
                            hand_case["masks"])
    assert got.shape == (2, targets.shape[1]) + SHAPE[1:]
    assert_close(got, expected)


def test_hand_case_target_forms(hand_case):
    x = ms.Tensor(hand_case["x"])
    expected = rise_plus_np(probs_linear(hand_case), hand_case["inlier_np"], hand_case["x"],
                            np.array([[2], [0]]), hand_case["masks"])
    for targets in ([2, 0], ms.Tensor([2, 0], ms.int32), ms.Tensor([[2], [0]], ms.int32)):
        got = xaifn.rise_plus(hand_case["net"], nn.Softmax(), hand_case["inlier"], x, targets,
                              hand_case["masks"])
        assert_close(got, expected)
    both = rise_plus_np(probs_linear(hand_case), hand_case["inlier_np"], hand_case["x"],
                        np.array([[1], [1]]), hand_case["masks"])
    for targets in (1, ms.Tensor(1, ms.int32)):
        assert_close(xaifn.rise_plus(hand_case["net"], nn.Softmax(), hand_case["inlier"], x, targets,
                                     hand_case["masks"]), both)


def test_hand_case_is_not_plain_rise(hand_case):
    """The weights matter: mask 1 (weight 0) and mask 2 (partial) change the map."""
    x, masks = ms.Tensor(hand_case["x"]), hand_case["masks"]
    plus = xaifn.rise_plus(hand_case["net"], nn.Softmax(), hand_case["inlier"], x, 0, masks).asnumpy()
    plain = xaifn.rise(hand_case["net"], nn.Softmax(), x, 0, masks).asnumpy()
    right = (slice(None), slice(None), slice(None), slice(SHAPE[2] // 2, None))
    assert np.abs(plus[right]).max() < 0.5 * np.abs(plain[right]).max()


# --------------------------------------------------------------------------------------------
# Degenerate inlier functions
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def global_case(zoo):
    net = zoo.GlobalNet(channels=3, num_class=5)
    zoo.set_params(net, zoo.random_params(net, seed=3))
    x = np.random.default_rng(4).uniform(0.1, 1, (2, 3, 8, 8)).astype(np.float32)
    masks = xaifn.rise_masks(seed=1, num_masks=30, size=(8, 8))
    assert np.all(masks.reshape(30, -1).max(axis=1) > 0)      # no all-zero mask
    return net, ms.Tensor(x), masks


def test_inlier_at_s_max_for_every_mask_gives_rise(global_case):
    net, x, masks = global_case
    targets = ms.Tensor([[0, 3], [4, 1]], ms.int32)
    plus = xaifn.rise_plus(net, nn.Softmax(), saturating_inlier, x, targets, masks)
    plain = xaifn.rise(net, nn.Softmax(), x, targets, masks)
    assert np.abs(plain.asnumpy()).max() > 0
    assert_close(plus, plain.asnumpy(), rtol=1e-6)


def test_constant_inlier_gives_zero_weights(global_case):
    net, x, masks = global_case
    got = xaifn.rise_plus(net, nn.Softmax(), constant_inlier, x, 2, masks).asnumpy()
    np.testing.assert_array_equal(got, np.zeros((2, 1, 8, 8)))


def prototype_head(net, x, seed=1):
    """OoD parameters whose first head rows are the features of the images x: o(x_n) is then
    near the largest possible cosine score, so the weights of masked images spread over [0, 1]."""
    params = ood.init(seed, net.num_features, 5)
    head = params["head"].asnumpy()
    head[:len(x)] = xaifn.network_view(net, output_features=True)(x).asnumpy()
    params["head"] = ms.Tensor(head)
    return params


def weights_with_ood_head(net, params, x, masks):
    """The reference weights s_ni, from eager MindSpore features and scores."""
    features = xaifn.network_view(net, output_features=True)

    def inlier_np(images):
        return ood.scores(params, features(ms.Tensor(images, ms.float32))).asnumpy().astype(np.float64)
    return inlier_weights_np(inlier_np, np.asarray(x, np.float64), np.asarray(masks, np.float64))[0]


def test_functional_matches_formula_with_ood_head(ood_zoo):
    """With xaifn.ood.inlier_fn on a classifier's view; probabilities and scores taken eagerly."""
    net = ood_zoo.he_init(ood_zoo.FeatureNet(num_class=5), seed=0)
    features = xaifn.network_view(net, output_features=True)
    x = np.random.default_rng(8).random((2, 3, 8, 8), np.float32)
    params = prototype_head(net, ms.Tensor(x))
    masks = xaifn.rise_masks(seed=2, num_masks=16, size=(8, 8))
    targets = np.array([[3, 4], [0, 3]])
    got = xaifn.rise_plus(net, nn.Softmax(), ood.inlier_fn(params, features), ms.Tensor(x),
                          ms.Tensor(targets, ms.int32), masks)

    def probs_np(images):
        return softmax_np(net(ms.Tensor(images, ms.float32)).asnumpy().astype(np.float64))

    def inlier_np(images):
        return ood.scores(params, features(ms.Tensor(images, ms.float32))).asnumpy().astype(np.float64)

    weights = weights_with_ood_head(net, params, x, masks)
    assert (weights < 0.01).any() and (weights > 0.99).any() and ((weights > 0.1) & (weights < 0.9)).any()
    assert_close(got, rise_plus_np(probs_np, inlier_np, x, targets, masks), rtol=1e-5)


class InPlaceResidualNet(nn.Cell):
    """conv -> [conv -> BatchNorm, ``out += identity``, ReLU] -> mean -> fc: ResNet's block, tiny.

    Compiled into one graph with a Parameter-sharing view of itself (its features), MindSpore 2.10
    gives the view wrong values (the in-place add after BatchNorm; ``out = out + identity`` is fine)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, pad_mode="same")
        self.conv = nn.Conv2d(4, 4, 3, pad_mode="same")
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.fc = nn.Dense(4, 5)

    def construct(self, x):
        identity = self.stem(x)
        out = self.bn(self.conv(identity))
        out += identity
        return self.fc(self.relu(out).mean(axis=(2, 3)))


def test_functional_matches_formula_on_an_in_place_residual_network():
    """The inlier function is the features view of a network with ResNet's in-place residual add
    (o = the largest feature): the map equals the formula with everything taken eagerly (the
    weights were wrong when the inlier function and the classifier were traced into one graph)."""
    ms.set_seed(0)
    net = InPlaceResidualNet()
    features = xaifn.features_view(net, "fc")
    x = np.random.default_rng(4).random((2, 3, 8, 8), np.float32)
    masks = xaifn.rise_masks(seed=2, num_masks=12, size=(8, 8))
    got = xaifn.rise_plus(net, nn.Softmax(), features, ms.Tensor(x), [1, 3], masks)

    def probs_np(images):
        return softmax_np(net(ms.Tensor(images, ms.float32)).asnumpy().astype(np.float64))

    def inlier_np(images):
        return features(ms.Tensor(images, ms.float32)).asnumpy().astype(np.float64)

    weights = inlier_weights_np(inlier_np, x.astype(np.float64), np.asarray(masks[0:12], np.float64))[0]
    assert ((weights > 0.2) & (weights < 0.8)).all(), "clipped weights would check less"
    assert_close(got, rise_plus_np(probs_np, inlier_np, x, np.array([[1], [3]]), masks[0:12]), rtol=1e-5)


def _fused_verdicts(net):
    """The fused-kernel checks `perturbation_sums` recorded for `net`: [True] fused, [False] apart."""
    return [entry[1] for key, entry in _cache._KERNELS[net].items()  # pylint: disable=protected-access
            if key[0] == "perturbation_fused_agrees"]


def test_fused_kernel_refused_on_in_place_residual_and_kept_elsewhere(ood_zoo):
    """The one-graph kernel is checked against the kernels run apart: refused where MindSpore gets
    it wrong (in-place residual add), kept where it is right (its speed)."""
    x = np.random.default_rng(4).random((2, 3, 8, 8), np.float32)
    masks = xaifn.rise_masks(seed=2, num_masks=6, size=(8, 8))
    residual = InPlaceResidualNet()
    plain = ood_zoo.he_init(ood_zoo.FeatureNet(num_class=5), seed=0)
    for net, features, verdict in ((residual, xaifn.features_view(residual, "fc"), False),
                                   (plain, xaifn.network_view(plain, output_features=True), True)):
        xaifn.rise_plus(net, nn.Softmax(), features, ms.Tensor(x), 1, masks, chunk=4)
        assert _fused_verdicts(net) == [[verdict]]


# --------------------------------------------------------------------------------------------
# Chunks, seeds, the network untouched
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chunk_case(zoo):
    net = zoo.GlobalNet(channels=3, num_class=5)
    zoo.set_params(net, zoo.random_params(net, seed=5))
    rng = np.random.default_rng(6)
    x = ms.Tensor(rng.uniform(0, 1, (3, 3, 8, 8)), ms.float32)
    inlier = linear_inlier(rng.normal(0, 0.1, (4, 3 * 8 * 8)), rng.normal(0, 0.1, 4))
    masks = xaifn.rise_masks(seed=3, num_masks=25, size=(8, 8))
    targets = ms.Tensor([[0, 1], [2, 3], [4, 0]], ms.int32)
    reference = xaifn.rise_plus(net, nn.Softmax(), inlier, x, targets, masks).asnumpy()
    return net, x, inlier, masks, targets, reference


@SETTINGS
@given(chunk=st.integers(1, 40))
@example(chunk=2)          # fewer than the 3 samples: padded sample blocks
def test_chunk_size_does_not_change_the_map(chunk_case, chunk):
    net, x, inlier, masks, targets, reference = chunk_case
    got = xaifn.rise_plus(net, nn.Softmax(), inlier, x, targets, masks, chunk=chunk)
    assert_close(got, reference, rtol=1e-6)


def test_lazy_masks_equal_rendered_masks(chunk_case):
    net, x, inlier, _, targets, reference = chunk_case
    lazy = xaifn.RiseMasks(seed=3, num_masks=25, size=(8, 8))
    assert_close(xaifn.rise_plus(net, nn.Softmax(), inlier, x, targets, lazy, chunk=7), reference, rtol=1e-6)


def test_batch_equals_each_sample_alone(chunk_case):
    net, x, inlier, masks, targets, reference = chunk_case
    for n in range(3):
        alone = xaifn.rise_plus(net, nn.Softmax(), inlier, x[n:n + 1], targets[n:n + 1], masks)
        assert_close(alone, reference[n:n + 1], rtol=1e-6)


def test_same_masks_seed_gives_identical_maps(chunk_case):
    net, x, inlier, _, targets, reference = chunk_case
    first = xaifn.rise_plus(net, nn.Softmax(), inlier, x, targets, xaifn.rise_masks(9, 25, (8, 8)))
    again = xaifn.rise_plus(net, nn.Softmax(), inlier, x, targets, xaifn.rise_masks(9, 25, (8, 8)))
    np.testing.assert_array_equal(first.asnumpy(), again.asnumpy())
    assert not np.allclose(first.asnumpy(), reference)          # seed 9 is not seed 3


def _state(cell):
    return {p.name: p.asnumpy().copy() for p in cell.get_parameters()}


def _net(ood_zoo, seed=0):
    """A FeatureNet (5 classes, 6 features, 3 x 8 x 8 inputs) with He-normal weights."""
    return ood_zoo.he_init(ood_zoo.FeatureNet(num_class=5), seed)


def _images(seed, n=2):
    return ms.Tensor(np.random.default_rng(seed).random((n, 3, 8, 8)), ms.float32)


def test_functional_leaves_the_network_untouched(ood_zoo):
    net = _net(ood_zoo)
    net.set_train(True)
    before = _state(net)
    features = xaifn.network_view(net, output_features=True)
    params = ood.init(0, 6, 5)
    head_before = {k: v.asnumpy().copy() for k, v in params.items()}
    xaifn.rise_plus(net, nn.Softmax(), ood.inlier_fn(params, features), _images(0), 1,
                    xaifn.rise_masks(0, 8, (8, 8)))
    assert net.training is True and net.output_features is False
    assert features.output_features is True
    for name, value in _state(net).items():
        np.testing.assert_array_equal(value, before[name])
    for key, value in params.items():
        np.testing.assert_array_equal(value.asnumpy(), head_before[key])


# --------------------------------------------------------------------------------------------
# Class RISEPlus
# --------------------------------------------------------------------------------------------

def _as_checkpoint(params):
    """ood params as the {name: Parameter} dict that ms.load_param_into_net takes."""
    return {k: ms.Parameter(v.copy(), name=k) for k, v in params.items()}


@pytest.fixture(scope="module")
def class_setup(ood_zoo):
    net = _net(ood_zoo)
    ood_net = OoDNet(net, 5)
    x = _images(1)
    ms.load_param_into_net(ood_net, _as_checkpoint(prototype_head(net, x)))
    return net, ood_net, x


def test_class_equals_functional_with_the_same_masks(class_setup):
    net, ood_net, x = class_setup
    explainer = RISEPlus(ood_net, net, activation_fn=nn.Softmax(), perturbation_per_eval=16, seed=4,
                         num_masks=20)
    targets = ms.Tensor([[1, 2], [3, 4]], ms.int32)
    got = explainer(x, targets)
    features = xaifn.network_view(net, output_features=True)
    expected = xaifn.rise_plus(net, nn.Softmax(), ood.inlier_fn(ood_net.params(), features), x, targets,
                               xaifn.rise_masks(4, 20, (8, 8)))
    assert got.shape == (2, 2, 8, 8)
    assert_close(got, expected.asnumpy(), rtol=1e-6)


def test_class_same_seed_identical_maps(class_setup):
    net, ood_net, x = class_setup
    a = RISEPlus(ood_net, net, nn.Softmax(), seed=7, num_masks=16)
    b = RISEPlus(ood_net, net, nn.Softmax(), seed=7, num_masks=16)
    first = a(x, 3).asnumpy()
    np.testing.assert_array_equal(a(x, 3).asnumpy(), first)
    np.testing.assert_array_equal(b(x, 3).asnumpy(), first)
    assert np.abs(first).max() > 0


def test_class_leaves_network_and_ood_net_untouched(class_setup):
    net, ood_net, x = class_setup
    net.set_train(True)
    try:
        before, head_before = _state(net), _state(ood_net)
        RISEPlus(ood_net, net, nn.Softmax(), seed=0, num_masks=8)(x, 1)
        assert net.training is True and net.output_features is False
        assert ood_net.training is False
        for name, value in _state(net).items():
            np.testing.assert_array_equal(value, before[name])
        for name, value in _state(ood_net).items():
            np.testing.assert_array_equal(value, head_before[name])
    finally:
        net.set_train(False)


def test_class_honours_new_ood_weights(ood_zoo):
    net = _net(ood_zoo)
    ood_net = OoDNet(net, 5)
    x = _images(2)
    masks = xaifn.rise_masks(3, 20, (8, 8))
    explainer = RISEPlus(ood_net, net, nn.Softmax(), seed=3, num_masks=20)
    first = explainer(x, 4).asnumpy()
    params = prototype_head(net, x, seed=11)
    ms.load_param_into_net(ood_net, _as_checkpoint(params))
    second = explainer(x, 4).asnumpy()
    np.testing.assert_array_equal(ood_net.head.asnumpy(), params["head"].asnumpy())
    assert weights_with_ood_head(net, params, x, masks).std() > 0.1
    features = xaifn.network_view(net, output_features=True)
    expected = xaifn.rise_plus(net, nn.Softmax(), ood.inlier_fn(params, features), x, 4, masks).asnumpy()
    assert not np.allclose(expected, first, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    assert_close(second, expected, rtol=1e-6)


def _new_classifier_values(net, seed):
    rng = np.random.default_rng(seed)
    return {p.name: ms.Parameter(ms.Tensor(p.asnumpy() * rng.uniform(0.5, 1.5, p.shape), ms.float32),
                                 name=p.name) for p in net.get_parameters()}


def _twin(ood_zoo, values):
    net = ood_zoo.FeatureNet(num_class=5)
    ms.load_param_into_net(net, {k: ms.Parameter(v.asnumpy(), name=k) for k, v in values.items()})
    return net


def test_functional_honours_new_classifier_weights(ood_zoo):
    """A checkpoint loaded into the classifier after a first call: the same inlier function (on a
    view of the classifier) must see the new weights, for s_min/s_max as for the masked images."""
    net = _net(ood_zoo)
    x = _images(3)
    params = prototype_head(net, x)
    inlier = ood.inlier_fn(params, xaifn.network_view(net, output_features=True))
    masks = xaifn.rise_masks(seed=0, num_masks=24, size=(8, 8))
    first = xaifn.rise_plus(net, nn.Softmax(), inlier, x, 3, masks).asnumpy()
    values = _new_classifier_values(net, 4)
    ms.load_param_into_net(net, values)
    second = xaifn.rise_plus(net, nn.Softmax(), inlier, x, 3, masks).asnumpy()
    twin = _twin(ood_zoo, values)
    assert weights_with_ood_head(twin, params, x.asnumpy(), masks).std() > 0.1
    fresh = xaifn.rise_plus(twin, nn.Softmax(),
                            ood.inlier_fn(params, xaifn.network_view(twin, output_features=True)),
                            x, 3, masks).asnumpy()
    assert not np.allclose(fresh, first, rtol=1e-3, atol=1e-3 * np.abs(fresh).max())
    assert_close(second, fresh, rtol=1e-5)


def test_class_honours_new_classifier_weights(ood_zoo):
    net = _net(ood_zoo)
    ood_net = OoDNet(net, 5)
    x = _images(3)
    params = prototype_head(net, x)
    ms.load_param_into_net(ood_net, _as_checkpoint(params))
    explainer = RISEPlus(ood_net, net, nn.Softmax(), seed=0, num_masks=24)
    first = explainer(x, 3).asnumpy()
    values = _new_classifier_values(net, 4)
    ms.load_param_into_net(net, values)
    second = explainer(x, 3).asnumpy()
    twin = _twin(ood_zoo, values)
    assert weights_with_ood_head(twin, params, x.asnumpy(), xaifn.rise_masks(0, 24, (8, 8))).std() > 0.1
    twin_ood = OoDNet(twin, 5)
    ms.load_param_into_net(twin_ood, _as_checkpoint(params))
    fresh = RISEPlus(twin_ood, twin, nn.Softmax(), seed=0, num_masks=24)(x, 3).asnumpy()
    assert not np.allclose(fresh, first, rtol=1e-3, atol=1e-3 * np.abs(fresh).max())
    assert_close(second, fresh, rtol=1e-5)


def test_class_ood_net_on_a_twin_of_the_network(ood_zoo):
    """RISEPlus(ood_net, network) where ood_net.underlying is another Cell with the same weights
    (e.g. the classifier loaded twice from one checkpoint): the same map, or a clear error."""
    net = _net(ood_zoo)
    twin = _twin(ood_zoo, {p.name: p for p in net.get_parameters()})
    x = _images(5)
    own, other = OoDNet(net, 5), OoDNet(twin, 5)
    for ood_net in (own, other):
        ms.load_param_into_net(ood_net, _as_checkpoint(prototype_head(net, x)))
    expected = RISEPlus(own, net, nn.Softmax(), seed=1, num_masks=16)(x, 2).asnumpy()
    try:
        got = RISEPlus(other, net, nn.Softmax(), seed=1, num_masks=16)(x, 2).asnumpy()
    except (TypeError, ValueError):
        return                                   # a clear refusal is acceptable
    assert_close(got, expected, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("inlier", [None, 3, "scores", ms.Tensor([1.0])])
def test_functional_rejects_non_callable_inlier_fn(hand_case, inlier):
    with pytest.raises(TypeError):
        xaifn.rise_plus(hand_case["net"], nn.Softmax(), inlier, ms.Tensor(hand_case["x"]), 0, hand_case["masks"])


def test_functional_rejects_bad_call(hand_case):
    net, inlier, x, masks = hand_case["net"], hand_case["inlier"], ms.Tensor(hand_case["x"]), hand_case["masks"]
    with pytest.raises(ValueError):
        xaifn.rise_plus(net, nn.Softmax(), inlier, x, 3, masks)                      # 3 classes
    with pytest.raises(ValueError):
        xaifn.rise_plus(net, nn.Softmax(), inlier, x, 0, masks[:, :, :3])           # mask size
    with pytest.raises(TypeError):
        xaifn.rise_plus(net, nn.Softmax(), inlier, hand_case["x"], 0, masks)         # not a Tensor
    with pytest.raises(TypeError):
        xaifn.rise_plus(net, None, inlier, x, 0, masks)
    with pytest.raises(ValueError):
        xaifn.rise_plus(net, nn.Softmax(), inlier, x, 0, masks, chunk=0)


@pytest.mark.parametrize("make, error", [
    (lambda net, ood_net: RISEPlus(net, net, nn.Softmax()), TypeError),             # not an OoDNet
    (lambda net, ood_net: RISEPlus(None, net, nn.Softmax()), TypeError),
    (lambda net, ood_net: RISEPlus(ood_net, net, ops.softmax), TypeError),          # not a Cell
    (lambda net, ood_net: RISEPlus(ood_net, net, None), TypeError),
    (lambda net, ood_net: RISEPlus(ood_net, lambda x: x, nn.Softmax()), TypeError),  # network
    (lambda net, ood_net: RISEPlus(ood_net, net, nn.Softmax(), perturbation_per_eval=0), ValueError),
    (lambda net, ood_net: RISEPlus(ood_net, net, nn.Softmax(), perturbation_per_eval=-4), ValueError),
    (lambda net, ood_net: RISEPlus(ood_net, net, nn.Softmax(), perturbation_per_eval=2.5), TypeError),
    (lambda net, ood_net: RISEPlus(ood_net, net, nn.Softmax(), perturbation_per_eval="32"), TypeError),
    (lambda net, ood_net: RISEPlus(ood_net, net, nn.Softmax(), perturbation_per_eval=True), TypeError),
])
def test_class_rejects_bad_arguments(class_setup, make, error):
    net, ood_net, _ = class_setup
    with pytest.raises(error):
        make(net, ood_net)


def test_class_rejects_bad_inputs_and_targets(class_setup):
    net, ood_net, x = class_setup
    explainer = RISEPlus(ood_net, net, nn.Softmax(), seed=0, num_masks=4)
    with pytest.raises(ValueError):
        explainer(x, 5)
    with pytest.raises(ValueError):
        explainer(x, ms.Tensor([1, 2, 3], ms.int32))
    with pytest.raises(TypeError):
        explainer(x, ms.Tensor([1.0, 2.0], ms.float32))
    with pytest.raises(TypeError):
        explainer(x.asnumpy(), 1)
    with pytest.raises(ValueError):
        explainer(x[0], 1)
