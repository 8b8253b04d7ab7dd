"""Model-parameter randomisation (Adebayo et al., 2018): the rule, the similarities, the headline.

The headline test trains a small conv net on synthetic shapes for a few seconds and checks the
paper's result: Gradient maps change as the top layers are randomised, Guided Backpropagation maps
stay clearly more similar.
"""
import functools
import importlib
import warnings

import numpy as np
import mindspore as ms
import pytest
from hypothesis import given, settings, strategies as st
from mindspore import nn, ops
from scipy import stats

import xaifn
from xaifn import _cache, metrics, synthetic
from _numerics import assert_close


class SmallConvNet(nn.Cell):
    """conv1 -> relu -> maxpool -> conv2 -> relu -> fc1 -> relu -> fc2, on 16 x 16 images."""

    def __init__(self, num_class=4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, pad_mode="same", has_bias=True)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(8, 8, 3, pad_mode="same", has_bias=True)
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Dense(8 * 8 * 8, 16)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Dense(16, num_class)

    def construct(self, x):
        x = self.relu2(self.conv2(self.pool(self.relu1(self.conv1(x)))))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


@pytest.fixture(scope="module")
def trained(ood_zoo):
    """(net, images, labels): SmallConvNet trained to ~100 % on 400 synthetic 16 x 16 shapes (~4 s)."""
    images, labels, _ = synthetic.make_shapes(0, 400, size=16, min_extent=5, max_extent=8)
    images = ((images - 0.5) / 0.25).astype(np.float32)
    net = ood_zoo.he_init(SmallConvNet(), 0)
    optimizer = nn.Adam(net.trainable_params(), learning_rate=3e-3)
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")

    def loss_of(x, y):
        return loss_fn(net(x), y)
    step = _cache.training_step(loss_of, optimizer)
    rng = np.random.default_rng(0)
    net.set_train(True)
    for _ in range(4):
        for idx in np.array_split(rng.permutation(len(labels)), 12):
            step(ms.Tensor(images[idx]), ms.Tensor(labels[idx].astype(np.int32)))
    net.set_train(False)
    accuracy = (net(ms.Tensor(images)).argmax(axis=1).asnumpy() == labels).mean()
    assert accuracy > 0.9, accuracy
    return net, images, labels.astype(np.int32)


def test_gradient_changes_guided_backprop_stays_similar(trained):
    net, images, labels = trained
    x, t = ms.Tensor(images[:6]), ms.Tensor(labels[:6])
    grad = metrics.model_randomization(lambda n: functools.partial(xaifn.gradient, n), net, x, t)
    guided = metrics.model_randomization(lambda n: functools.partial(xaifn.guided_backprop, n), net, x, t)
    assert grad.layers == guided.layers == ("fc2", "fc1", "conv2", "conv1")
    for field in ("spearman", "spearman_abs", "ssim"):
        g, b = (getattr(r, field).asnumpy().mean(axis=0) for r in (grad, guided))
        assert (b[:2] > g[:2] + 0.1).all(), (field, g, b)   # top layers randomised: GBP clearly more similar
        assert g[-1] < 0.5, (field, g)                       # whole net randomised: Gradient map changed


def snapshot(net):
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}, [id(p) for p in net.get_parameters()]


def test_user_network_untouched_seeded_and_modes(trained):
    net, images, labels = trained
    before = snapshot(net)
    x, t = ms.Tensor(images[:3]), ms.Tensor(labels[:3])
    explain = lambda n: functools.partial(xaifn.gradient, n)  # noqa: E731
    first = metrics.model_randomization(explain, net, x, t, seed=1)
    again = metrics.model_randomization(explain, net, x, t, seed=1)
    other = metrics.model_randomization(explain, net, x, t, seed=2)
    back = metrics.model_randomization(explain, net, x, t, seed=1)   # the draws of seed 1 made afresh
    independent = metrics.model_randomization(explain, net, x, t, seed=1, mode="independent")
    for field in ("spearman", "spearman_abs", "ssim"):
        np.testing.assert_array_equal(getattr(first, field).asnumpy(), getattr(again, field).asnumpy())
        np.testing.assert_array_equal(getattr(first, field).asnumpy(), getattr(back, field).asnumpy())
        assert not np.array_equal(getattr(first, field).asnumpy(), getattr(other, field).asnumpy())
        # the first step randomises the same (top) layer in both modes, with the same draw
        np.testing.assert_array_equal(getattr(first, field).asnumpy()[:, 0],
                                      getattr(independent, field).asnumpy()[:, 0])
    after = snapshot(net)
    assert after[1] == before[1]
    for name, value in before[0].items():
        np.testing.assert_array_equal(after[0][name], value, err_msg=name)
    # the user's network still explains as before (its compiled kernels were not disturbed)
    np.testing.assert_array_equal(xaifn.gradient(net, x, t).asnumpy(),
                                  xaifn.gradient(net, x, t).asnumpy())


def test_randomisation_rule_on_a_linear_network(pzoo):
    """One Dense layer: after randomisation the gradient map is max_c abs(W'_t), with W' drawn
    from default_rng([seed, 0]) (float32 uniforms on mean +- sqrt(3) std) with the trained mean
    and standard deviation of each Parameter."""
    shape = (2, 5, 5)
    net, weights, bias = pzoo.linear_net(shape, num_class=3, seed=6)
    x = ms.Tensor(np.random.default_rng(7).random((2,) + shape), ms.float32)
    result = metrics.model_randomization(lambda n: functools.partial(xaifn.gradient, n), net, x, [0, 2], seed=9)
    assert result.layers == ("fc",)
    rng = np.random.default_rng([9, 0])
    trained = weights.astype(np.float32)
    mean, std = trained.mean(dtype=np.float64), trained.std(dtype=np.float64)
    new_w = (mean - np.sqrt(3) * std) + 2 * np.sqrt(3) * std * rng.random(weights.shape, dtype=np.float32)
    for row, t in enumerate([0, 2]):
        before = np.abs(weights[t].reshape(shape)).max(axis=0)
        after = np.abs(new_w[t].reshape(shape)).max(axis=0)
        assert result.spearman.asnumpy()[row, 0] == pytest.approx(
            stats.spearmanr(before.ravel(), after.ravel()).statistic, abs=1e-5)
        assert result.ssim.asnumpy()[row, 0] == pytest.approx(ref_ssim(before, after), abs=1e-5)


def ref_ssim(a, b):
    """Loop SSIM of min-max scaled maps: 5 x 5 windows (min(7, H, W)), sample covariance."""
    a = (a - a.min()) / (a.max() - a.min())
    b = (b - b.min()) / (b.max() - b.min())
    win = min(7, *a.shape)
    win -= 1 - win % 2
    values = []
    for r in range(a.shape[0] - win + 1):
        for c in range(a.shape[1] - win + 1):
            u, v = a[r:r + win, c:c + win].ravel(), b[r:r + win, c:c + win].ravel()
            cov = np.cov(u, v)
            values.append((2 * u.mean() * v.mean() + 1e-4) * (2 * cov[0, 1] + 9e-4)
                          / ((u.mean() ** 2 + v.mean() ** 2 + 1e-4) * (cov[0, 0] + cov[1, 1] + 9e-4)))
    return float(np.mean(values))


def test_similarity_measures():
    rng = np.random.default_rng(8)
    a, b = rng.random((3, 9, 8)), rng.random((3, 9, 8))
    assert_close(metrics.ssim(a, a), np.ones(3), rtol=1e-12)
    assert_close(metrics.ssim(a, b), [ref_ssim(u, v) for u, v in zip(a, b)], rtol=1e-10)
    tied = np.round(a * 3).reshape(3, -1)
    assert_close(metrics.spearman(tied, b.reshape(3, -1)),
                 [stats.spearmanr(u, v).statistic for u, v in zip(tied, b.reshape(3, -1))], rtol=1e-10)
    # one map against several (N, 1, ...) vs (N, L, ...): column l as the row-wise measure of (a, c[:, l])
    c = rng.random((3, 4, 9, 8))
    flat = a.reshape(3, 1, -1)
    assert_close(metrics.spearman(flat, c.reshape(3, 4, -1)),
                 np.stack([metrics.spearman(flat[:, 0], c[:, k].reshape(3, -1)) for k in range(4)], 1), rtol=1e-12)
    assert_close(metrics.ssim(a[:, None], c), np.stack([metrics.ssim(a, c[:, k]) for k in range(4)], 1), rtol=1e-12)
    # the record: signed maps ranked again by absolute value; non-negative maps are their own
    similarities = importlib.import_module("xaifn.metrics.randomization")._similarities
    for sign in (1.0, -1.0):
        signed = sign * (a - 0.5)
        record = similarities(("l1", "l2", "l3", "l4"), signed, c - 0.5)
        assert_close(record.spearman_abs, metrics.spearman(np.abs(signed).reshape(3, 1, -1),
                                                           np.abs(c - 0.5).reshape(3, 4, -1)), rtol=1e-6)
        assert not np.allclose(record.spearman.asnumpy(), record.spearman_abs.asnumpy())
    record = similarities(("l1", "l2", "l3", "l4"), a, c)
    np.testing.assert_array_equal(record.spearman.asnumpy(), record.spearman_abs.asnumpy())


@given(st.integers(0, 2 ** 32 - 1), st.sampled_from(["float16", "float32", "float64", "float32 in float64"]))
@settings(max_examples=30, deadline=None)
def test_spearman_ranks_as_scipy_with_ties_signs_and_zeros(seed, kind):
    """Float32 values (also held as float64, as `check_saliency` returns maps) are ranked by a radix
    sort of their bits, others by argsort: ties (including -0.0 and 0.0), negative values and
    infinities of any sign rank as `scipy.stats.rankdata` ranks them."""
    rng = np.random.default_rng(seed)
    dtype = np.float32 if kind == "float32 in float64" else np.dtype(kind)
    a = rng.choice([-np.inf, -2.5, -1.0, -0.0, 0.0, 1e-30, 0.5, 3.0, np.inf], size=(2, 3, 40)).astype(dtype)
    a[..., ::3] = rng.standard_normal(a[..., ::3].shape)
    b = rng.random((2, 3, 40)).astype(dtype)
    if kind == "float32 in float64":
        a, b = a.astype(np.float64), b.astype(np.float64)
    want = [[stats.spearmanr(u, v).statistic for u, v in zip(x, y)] for x, y in zip(a, b)]
    assert_close(metrics.spearman(a, b), want, rtol=1e-12)


def test_new_weights_of_the_user_network_are_honoured(pzoo):
    """The private copy is kept between calls; weights changed in place or loaded since are used."""
    shape = (1, 4, 4)
    net, _, _ = pzoo.linear_net(shape, num_class=2, seed=10)
    x = ms.Tensor(np.random.default_rng(11).random((2,) + shape), ms.float32)
    explain = lambda n: functools.partial(xaifn.gradient, n)  # noqa: E731
    metrics.model_randomization(explain, net, x, 0, seed=0)
    fresh = np.random.default_rng(12).standard_normal(net.fc.weight.shape).astype(np.float32)
    ms.ops.assign(net.fc.weight, ms.Tensor(fresh))                          # in place
    twin, _, _ = pzoo.linear_net(shape, num_class=2, seed=10)
    ms.ops.assign(twin.fc.weight, ms.Tensor(fresh))
    ours, theirs = (metrics.model_randomization(explain, n, x, 0, seed=0) for n in (net, twin))
    for field in ("spearman", "ssim"):
        np.testing.assert_array_equal(getattr(ours, field).asnumpy(), getattr(theirs, field).asnumpy())
    net.fc.weight.set_data(ms.Tensor(-fresh))                               # storage replaced
    twin.fc.weight.set_data(ms.Tensor(-fresh))
    np.testing.assert_array_equal(metrics.model_randomization(explain, net, x, 0, seed=0).ssim.asnumpy(),
                                  metrics.model_randomization(explain, twin, x, 0, seed=0).ssim.asnumpy())


# ---- data randomisation ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train_fn_of(ood_zoo):
    """(train, images, labels): train(label_seed, order_seed) -> one SmallConvNet, retrained in place
    (one compiled step for all trainings) from one initialisation, 60 Adam steps on batches of 32 of
    128 synthetic 16 x 16 shapes drawn by `order_seed`, on the true labels (label_seed None) or on
    `metrics.permuted_labels(labels, label_seed)` (memorised: ~98 % of them); memoised."""
    images, labels, _ = synthetic.make_shapes(1, 128, size=16, min_extent=5, max_extent=8)
    images = ((images - 0.5) / 0.25).astype(np.float32)
    net = SmallConvNet()
    optimizer = nn.Adam(net.trainable_params(), learning_rate=3e-3)
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")

    def loss_of(x, t):
        return loss_fn(net(x), t)
    step = _cache.training_step(loss_of, optimizer)
    own = {id(p) for p in net.get_parameters()}
    # Adam's state at the start (copies: the compiled step updates the Parameters' memory in place)
    state = [(p, p.asnumpy().copy()) for p in optimizer.get_parameters() if id(p) not in own]
    weights = {}

    def train(label_seed, order_seed):
        if (label_seed, order_seed) not in weights:
            start = ood_zoo.he_init(SmallConvNet(), 0).get_parameters()
            for p, value in list(zip(net.get_parameters(), (q.asnumpy() for q in start))) + state:
                ops.assign(p, ms.Tensor(value))
            y = labels if label_seed is None else metrics.permuted_labels(labels, label_seed)
            rng = np.random.default_rng(order_seed)
            net.set_train(True)
            for _ in range(60):
                idx = rng.choice(len(y), 32, replace=False)
                step(ms.Tensor(images[idx]), ms.Tensor(y[idx].astype(np.int32)))
            weights[label_seed, order_seed] = [p.asnumpy().copy() for p in net.get_parameters()]
        for p, value in zip(net.get_parameters(), weights[label_seed, order_seed]):
            ops.assign(p, ms.Tensor(value))
        net.set_train(False)
        return net
    return train, images, labels.astype(np.int32)


def test_data_randomization_random_labels_change_gradient_maps(train_fn_of):
    """Adebayo et al.'s data randomisation test with Gradient. From one initialisation, the maps of
    the network trained on permuted labels are far less similar to those of the network trained on
    the true labels than the maps of the true-label network trained again on batches drawn in
    another order are (measured: Spearman 0.21 vs 0.72, SSIM 0.09 vs 0.74, every sample apart); the
    same network twice gives 1. The one network is retrained in place between the two calls of
    train_fn: each is explained before the next."""
    train, images, labels = train_fn_of
    x, t = ms.Tensor(images[:8]), ms.Tensor(labels[:8])
    explain = lambda n: functools.partial(xaifn.gradient, n)  # noqa: E731
    calls = []

    def random_labels(label_seed):
        calls.append(label_seed)
        return train(None, 0) if label_seed is None else train(label_seed, 1)
    permuted = metrics.data_randomization(explain, random_labels, x, t, seed=5)
    assert calls == [None, 5] and permuted.layers == ("permuted labels",)
    retrained = metrics.data_randomization(explain, lambda s: train(None, 0 if s is None else 1), x, t, seed=5)
    same = metrics.data_randomization(explain, lambda s: train(None, 0), x, t, seed=5)
    for field in ("spearman", "spearman_abs", "ssim"):
        p, r, s = (getattr(result, field).asnumpy() for result in (permuted, retrained, same))
        assert p.shape == r.shape == s.shape == (8, 1)
        assert p.mean() < r.mean() - 0.2 and (p < r).all(), (field, p.ravel(), r.ravel())
        assert_close(s, np.ones((8, 1)), rtol=1e-6)


def test_permuted_labels_and_data_randomization_errors():
    labels = np.arange(10) % 3
    first = metrics.permuted_labels(labels, 4)
    np.testing.assert_array_equal(first, metrics.permuted_labels(ms.Tensor(labels), 4))   # seeded, Tensor too
    np.testing.assert_array_equal(np.sort(first), np.sort(labels))                        # a permutation
    assert not np.array_equal(first, metrics.permuted_labels(labels, 5))
    with pytest.raises(ValueError, match="labels"):
        metrics.permuted_labels(np.zeros((2, 3)), 0)
    with pytest.raises(TypeError, match="seed"):
        metrics.permuted_labels(labels, 0.5)
    x = ms.Tensor(np.zeros((2, 1, 4, 4)), ms.float32)
    explain = lambda n: functools.partial(xaifn.gradient, n)  # noqa: E731
    trained = []
    train = lambda s: trained.append(s) or nn.SequentialCell([nn.Flatten(), nn.Dense(16, 2)])  # noqa: E731
    with pytest.raises(TypeError, match="train_fn"):
        metrics.data_randomization(explain, "not a function", x, 0)
    with pytest.raises(TypeError, match="seed"):
        metrics.data_randomization(explain, train, x, 0, seed=None)
    assert not trained                                      # refused before any training
    with pytest.raises(TypeError, match=r"train_fn\(None\)"):
        metrics.data_randomization(explain, lambda s: "a net", x, 0)


def test_modes_randomise_the_right_layers():
    """What the explainer sees at each step: cascading, layer l and those above it redrawn;
    independent, layer l alone (the layers above it back at their trained values)."""
    net = nn.SequentialCell([nn.Flatten(), nn.Dense(16, 8), nn.ReLU(), nn.Dense(8, 8), nn.ReLU(), nn.Dense(8, 3)])
    x = ms.Tensor(np.random.default_rng(13).random((2, 1, 4, 4)), ms.float32)
    trained = {name: p.asnumpy().copy() for name, p in net.parameters_and_names()}
    for mode in ("cascading", "independent"):
        seen = []

        def explain_fn_of_net(copy):
            def explain(inputs, targets):
                seen.append({name: p.asnumpy().copy() for name, p in copy.parameters_and_names()})
                return xaifn.gradient(copy, inputs, targets)
            return explain
        result = metrics.model_randomization(explain_fn_of_net, net, x, 0, mode=mode, seed=3)
        assert result.layers == ("5", "3", "1") and len(seen) == 4
        assert all(np.array_equal(seen[0][k], v) for k, v in trained.items())
        for step, layer in enumerate(result.layers, 1):
            above = result.layers[:step - 1]
            for name, value in trained.items():
                owner = name.split(".")[0]
                redrawn = owner == layer or (mode == "cascading" and owner in above)
                assert np.array_equal(seen[step][name], value) != redrawn, (mode, step, name)


def test_a_subset_of_layers_is_randomised_as_in_the_full_run():
    """Only the chosen layers get private Parameters (the copy shares the others with the user's
    network, read only); step l draws from default_rng([seed, l]) whichever layers follow, so the
    first columns of a run over the top layers equal those of the run over all of them, and a
    weight of an unchosen layer changed in place by the user is seen."""
    net = nn.SequentialCell([nn.Flatten(), nn.Dense(16, 8), nn.ReLU(), nn.Dense(8, 8), nn.ReLU(), nn.Dense(8, 3)])
    x = ms.Tensor(np.random.default_rng(14).random((3, 1, 4, 4)), ms.float32)
    explain = lambda n: functools.partial(xaifn.gradient, n)  # noqa: E731
    before = {name: p.asnumpy().copy() for name, p in net.parameters_and_names()}
    tops = {}
    for mode in ("cascading", "independent"):
        full = metrics.model_randomization(explain, net, x, 1, mode=mode, seed=5)
        top = tops[mode] = metrics.model_randomization(explain, net, x, 1, mode=mode, seed=5, layers=["5", "3"])
        assert top.layers == ("5", "3")
        for field in ("spearman", "spearman_abs", "ssim"):
            np.testing.assert_array_equal(getattr(top, field).asnumpy(), getattr(full, field).asnumpy()[:, :2])
    for name, p in net.parameters_and_names():
        np.testing.assert_array_equal(p.asnumpy(), before[name], err_msg=name)
    ops.assign(net[1].weight, ms.Tensor(-before["1.weight"]))               # an unchosen layer, in place
    twin = nn.SequentialCell([nn.Flatten(), nn.Dense(16, 8), nn.ReLU(), nn.Dense(8, 8), nn.ReLU(), nn.Dense(8, 3)])
    for (name, p) in twin.parameters_and_names():
        ops.assign(p, ms.Tensor(-before[name] if name == "1.weight" else before[name]))
    ours, theirs = (metrics.model_randomization(explain, n, x, 1, seed=5, layers=["5", "3"]) for n in (net, twin))
    np.testing.assert_array_equal(ours.ssim.asnumpy(), theirs.ssim.asnumpy())
    assert not np.array_equal(ours.ssim.asnumpy(), tops["cascading"].ssim.asnumpy())


def test_batch_norm_statistics_of_the_user_network_are_never_written():
    """The copy shares the Parameters of the layers it does not randomise, but never those a
    forward pass may write: an explainer running the copy in training mode updates the copy's
    BatchNorm statistics, not the user's."""
    net = nn.SequentialCell([nn.Conv2d(1, 3, 3, pad_mode="same"), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                             nn.Dense(48, 2)])
    x = ms.Tensor(np.random.default_rng(15).random((3, 1, 4, 4)), ms.float32)
    before = {name: p.asnumpy().copy() for name, p in net.parameters_and_names()}

    def explain_fn_of_net(copy):
        def explain(inputs, targets):
            copy.set_train(True)
            copy(inputs)                                      # a training-mode forward
            copy.set_train(False)
            return xaifn.gradient(copy, inputs, targets)
        return explain
    metrics.model_randomization(explain_fn_of_net, net, x, 0, layers=["4"])
    for name, p in net.parameters_and_names():
        np.testing.assert_array_equal(p.asnumpy(), before[name], err_msg=name)


def test_float16_parameters_are_redrawn_finite_with_their_spread():
    redrawn = importlib.import_module("xaifn.metrics.randomization")._redrawn
    value = np.random.default_rng(16).normal(0.5, 2.0, 200_000).astype(np.float16)   # squares sum past 65504
    unit = np.random.default_rng(17).random(value.shape, dtype=np.float32)
    draw = redrawn(unit, value, np.empty_like(value))
    assert draw.dtype == np.float16 and np.isfinite(draw).all()
    assert draw.astype(np.float64).mean() == pytest.approx(0.5, abs=0.02)
    assert draw.astype(np.float64).std() == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize("mean, std", [(0.0, 0.05), (0.3, 1.0), (1.0, 1e-3), (-3.0, 1e-4), (5.0, 0.0),
                                       (2e19, 1e15)])
def test_redraws_take_the_mean_and_spread_of_the_trained_values(mean, std):
    """Weights (mean small against the spread: raw moments) and BatchNorm-like scales (a mean far
    from 0 with a small spread, or values whose raw squares overflow float32: the centred squares)
    are redrawn on mean +- sqrt(3) std of their float64 moments; a constant stays that constant."""
    redrawn = importlib.import_module("xaifn.metrics.randomization")._redrawn
    rng = np.random.default_rng(18)
    value = (mean + std * rng.standard_normal(100_000)).astype(np.float32)
    unit = rng.random(value.shape, dtype=np.float32)
    wide = value.astype(np.float64)
    want = wide.mean() + np.sqrt(3) * wide.std() * (2 * unit.astype(np.float64) - 1)
    draw = redrawn(unit, value, np.empty_like(value))
    np.testing.assert_allclose(draw, want, rtol=1e-5, atol=1e-6 * max(std, 1e-3))
    if std == 0:
        np.testing.assert_array_equal(draw, value)


def test_a_copy_ignored_or_a_constant_map_is_flagged(pzoo):
    """An explainer bound to the user's network ignores the copy it is handed: every column then
    equals the original (Spearman 1, which reads like a method insensitive to the model); a
    constant map has no rank correlation (NaN). Both warn; a proper call does not."""
    shape = (1, 4, 4)
    net, _, _ = pzoo.linear_net(shape, num_class=2, seed=13)
    x = ms.Tensor(np.random.default_rng(14).random((2,) + shape), ms.float32)
    bound = functools.partial(xaifn.gradient, net)
    with pytest.warns(RuntimeWarning, match="every randomised map equals the original"):
        result = metrics.model_randomization(lambda copy: bound, net, x, 0)
    np.testing.assert_array_equal(result.spearman.asnumpy(), 1.0)
    with pytest.warns(RuntimeWarning, match=r"sample\(s\) \[0, 1\] is constant"):
        calls = []

        def flat(inputs, targets):                # a constant map, another constant at each call
            calls.append(1)
            return ops.ones((2, 1, 4, 4)) * len(calls)
        metrics.model_randomization(lambda copy: flat, net, x, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.model_randomization(lambda copy: functools.partial(xaifn.gradient, copy), net, x, 0)
