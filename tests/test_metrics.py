"""xaifn.metrics: analytic cases, float64 numpy references, batching, chunking, seeds.

The oracle network is linear (Flatten -> Dense): its probabilities are evaluated in float64 numpy
directly, and with sigma = identity removing pixel p changes logit t by exactly W_t,p (x_p - ref),
so the "true importance" of every pixel is known.
"""
import functools
import importlib
import threading
import warnings

import numpy as np
import mindspore as ms
import pytest
from hypothesis import given, settings, strategies as st
from mindspore import nn

import xaifn
from xaifn import metrics
from _numerics import assert_close, softmax_np

SOFTMAX = nn.Softmax()
SHAPE = (2, 6, 6)


def uniform(seed, shape):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def tied_saliency(seed, shape):
    """Random maps with many ties (values on a coarse grid)."""
    return np.round(uniform(seed, shape) * 4).astype(np.float32) / 4


@pytest.fixture(scope="module")
def linear(pzoo):
    net, weights, bias = pzoo.linear_net(SHAPE, num_class=3, seed=11)
    return net, weights, bias


def probs(weights, bias, images, identity=False):
    logits = images.reshape(len(images), -1).astype(np.float64) @ weights.T + bias
    return logits if identity else softmax_np(logits)


# ---- float64 reference of the faithfulness family (independent of the implementation) --------

def ref_order(saliency):
    """Pixel indices, most salient first, ties by index (Python's stable sort on a key)."""
    flat = saliency.astype(np.float64).mean(axis=0).ravel()
    return sorted(range(flat.size), key=lambda i: (-flat[i], i))


def removed_image(image, pixels, value):
    out = image.astype(np.float64).copy()
    width = image.shape[2]
    for index in pixels:
        out[:, index // width, index % width] = value
    return out


def ref_faithfulness(weights, bias, x, targets, saliency, steps, per, ref, kind, identity=False):
    scores, curves = [], []
    for image, t, smap in zip(x, targets, saliency):
        order = ref_order(smap)
        p = lambda img: probs(weights, bias, img[None], identity)[0, t]  # noqa: E731
        if kind == "deletion":
            curve = [p(removed_image(image, order[:j * per], ref)) for j in range(steps + 1)]
            d = [curve[0] - c for c in curve[1:]]
            scores.append(1 - (sum(d) - d[0] - d[-1]) / steps / 2)
        elif kind == "insertion":
            blank = removed_image(image, range(image[0].size), ref)
            curve = [p(removed_image(image, order[j * per:], ref)) for j in range(steps + 1)]
            assert curve[0] == pytest.approx(p(blank))
            d = [c - curve[0] for c in curve[1:]]
            scores.append((1 + (sum(d) - d[0] - d[-1]) / steps) / 2)
        else:
            curve = [p(removed_image(image, order[j * per:(j + 1) * per], ref)) for j in range(steps)]
            flat = sorted(smap.astype(np.float64).mean(axis=0).ravel(), reverse=True)
            importance = [np.mean(flat[j * per:(j + 1) * per]) for j in range(steps)]
            scores.append((1 - np.corrcoef(importance, curve)[0, 1]) / 2)
        curves.append(curve)
    return np.array(scores), np.array(curves)


FAITHFULNESS = {"deletion": metrics.deletion_auc, "insertion": metrics.insertion_auc,
                "naive": metrics.naive_faithfulness}


@pytest.mark.parametrize("kind", ["deletion", "insertion", "naive"])
@pytest.mark.parametrize("steps,per,ref", [(None, None, 0.0), (4, 5, 0.3)])
def test_faithfulness_matches_float64_reference(linear, kind, steps, per, ref):
    net, weights, bias = linear
    x = uniform(1, (3,) + SHAPE)
    saliency = tied_saliency(2, (3, 2, 6, 6))          # two channels: averaged, with ties
    targets = [0, 2, 1]
    got, curve = FAITHFULNESS[kind](net, SOFTMAX, ms.Tensor(x), targets, saliency, num_steps=steps,
                                    pixels_per_step=per, reference=ref, return_curve=True)
    want, want_curve = ref_faithfulness(weights, bias, x, targets, saliency, steps or 6, per or 3, ref, kind)
    assert got.shape == (3,) and got.dtype == ms.float32
    assert_close(curve, want_curve, rtol=1e-5)
    assert_close(got, want, rtol=1e-5)


def test_true_importance_is_the_extreme_ordering(pzoo):
    """Linear model, sigma = identity: ordering by the true importance W_t,p (x_p - ref) maximises
    every partial drop, so it gives the largest deletion auc (the lowest 1 - auc / 2), the best
    insertion score, and a naive faithfulness of exactly 1; any other map does no better."""
    shape = (1, 6, 6)
    net, weights, _ = pzoo.linear_net(shape, num_class=3, seed=3)
    x = uniform(4, (1,) + shape)
    t, ref = 1, 0.2
    importance = (weights[t] * (x.reshape(-1) - ref)).reshape((1,) + shape)

    def score(metric, saliency):
        return float(metric(net, pzoo.identity, ms.Tensor(x), t, saliency, reference=ref)[0])
    best_deletion = score(metrics.deletion_auc, importance)
    best_insertion = score(metrics.insertion_auc, importance)
    assert score(metrics.naive_faithfulness, importance) == pytest.approx(1.0, abs=1e-5)
    rng = np.random.default_rng(5)
    for _ in range(10):
        other = rng.permutation(importance.ravel()).reshape(importance.shape)
        assert best_deletion <= score(metrics.deletion_auc, other) + 1e-6
        assert best_insertion >= score(metrics.insertion_auc, other) - 1e-6
    # removing the pixels that hold the prediction down first raises p: auc < 0, result > 1 (not clipped)
    assert score(metrics.deletion_auc, -importance) > 1


def test_uniform_map_gives_naive_faithfulness_one_half(linear):
    net, _, _ = linear
    x = ms.Tensor(uniform(6, (2,) + SHAPE))
    with pytest.warns(RuntimeWarning, match="constant"):
        got = metrics.naive_faithfulness(net, SOFTMAX, x, [0, 1], np.ones((2, 1, 6, 6), np.float32))
    np.testing.assert_array_equal(got.asnumpy(), [0.5, 0.5])


def test_batched_equals_per_sample_and_chunk_invariance(linear):
    net, _, _ = linear
    x = uniform(7, (5,) + SHAPE)
    saliency = tied_saliency(8, (5, 1, 6, 6))
    targets = [0, 1, 2, 0, 1]
    full, curve = metrics.deletion_auc(net, SOFTMAX, ms.Tensor(x), targets, saliency, return_curve=True)
    for chunk in (1, 4, 7, 35, "20KiB", "128MiB"):                # images per step, or bytes
        other, other_curve = metrics.deletion_auc(net, SOFTMAX, ms.Tensor(x), targets, saliency, chunk=chunk,
                                                  return_curve=True)
        assert_close(other_curve, curve.asnumpy(), rtol=1e-6)
        assert_close(other, full.asnumpy(), rtol=1e-6)
    for n in range(5):
        one = metrics.insertion_auc(net, SOFTMAX, ms.Tensor(x[n:n + 1]), targets[n], saliency[n:n + 1])
        batch = metrics.insertion_auc(net, SOFTMAX, ms.Tensor(x), targets, saliency)
        assert_close(one, batch.asnumpy()[n:n + 1], rtol=1e-6)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(0.1, 10), shift=st.floats(-5, 5))
def test_deletion_and_insertion_depend_only_on_the_ranking(linear, seed, scale, shift):
    """A strictly increasing transform of the map (ties kept) changes nothing."""
    net, _, _ = linear
    x = ms.Tensor(uniform(seed % 1000, (2,) + SHAPE))
    saliency = tied_saliency(seed, (2, 1, 6, 6))
    moved = np.exp(saliency.astype(np.float64)) * scale + shift
    for metric in (metrics.deletion_auc, metrics.insertion_auc):
        np.testing.assert_array_equal(metric(net, SOFTMAX, x, [0, 1], saliency).asnumpy(),
                                      metric(net, SOFTMAX, x, [0, 1], moved).asnumpy())


def test_ties_are_broken_by_pixel_index(linear):
    """A constant map removes pixels in row-major order: the curve equals that of the map
    -index, whose order is row-major without ties."""
    net, _, _ = linear
    x = ms.Tensor(uniform(9, (1,) + SHAPE))
    _, flat = metrics.deletion_auc(net, SOFTMAX, x, 0, np.zeros((1, 1, 6, 6)), return_curve=True)
    _, ramp = metrics.deletion_auc(net, SOFTMAX, x, 0, -np.arange(36.0).reshape(1, 1, 6, 6), return_curve=True)
    np.testing.assert_array_equal(flat.asnumpy(), ramp.asnumpy())


# ---- localization -----------------------------------------------------------------------------

def ref_pointing(smap, mask, radius):
    flat = smap.mean(axis=0)
    r, c = divmod(int(np.argmax(flat)), flat.shape[1])
    hit = any(mask[0, i, j] and (i - r) ** 2 + (j - c) ** 2 < radius ** 2
              for i in range(flat.shape[0]) for j in range(flat.shape[1]))
    return float(hit)


def ref_iosr(smap, mask, threshold):
    flat = smap.mean(axis=0)
    salient = flat > threshold * flat.max()
    return (salient & (mask[0] != 0)).sum() / max(salient.sum(), 1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), radius=st.sampled_from([1, 2, 3.5, 15]),
       threshold=st.sampled_from([0.0, 0.5, 0.9]))
def test_localization_matches_reference(seed, radius, threshold):
    rng = np.random.default_rng(seed)
    saliency = np.round(rng.random((4, 2, 7, 9)) * 3)
    masks = rng.random((4, 1, 7, 9)) < 0.1
    got = metrics.pointing_game(saliency, masks, radius=radius).asnumpy()
    np.testing.assert_array_equal(got, [ref_pointing(s, m, radius) for s, m in zip(saliency, masks)])
    got = metrics.iosr(ms.Tensor(saliency, ms.float32), ms.Tensor(masks), threshold=threshold).asnumpy()
    np.testing.assert_allclose(got, [ref_iosr(s, m, threshold) for s, m in zip(saliency, masks)], rtol=1e-6)


def test_pointing_game_analytic_and_not_transposed():
    saliency = np.zeros((3, 1, 8, 8))
    saliency[:, 0, 1, 6] = 1                     # peak at row 1, column 6
    masks = np.zeros((3, 1, 8, 8))
    masks[0, 0, 0:3, 5:8] = 1                    # the peak lies inside: 1
    masks[1, 0, 6, 1] = 1                        # the transposed position: 0 (the original said 1)
    masks[2, 0, 1, 4] = 1                        # two columns away: in the disc of radius 3, not of 1
    np.testing.assert_array_equal(metrics.pointing_game(saliency, masks, radius=1).asnumpy(), [1, 0, 0])
    np.testing.assert_array_equal(metrics.pointing_game(saliency, masks, radius=3).asnumpy(), [1, 0, 1])
    np.testing.assert_array_equal(metrics.pointing_game(saliency, masks).asnumpy(), [1, 1, 1])


# ---- robustness and class sensitivity ------------------------------------------------------------

def squares(x, targets):
    """A toy explainer whose maps numpy recomputes: (t + 1) * sum_c x^2."""
    t = np.asarray(targets.asnumpy() if isinstance(targets, ms.Tensor) else targets).reshape(-1, 1, 1, 1)
    return ms.Tensor(((x.asnumpy() ** 2).sum(axis=1, keepdims=True) * (t + 1)).astype(np.float32))


def ref_max_sensitivity(x, t, noise):
    base = (x.astype(np.float64) ** 2).sum(axis=1) * (np.asarray(t)[:, None, None] + 1)
    worst = np.zeros(len(x))
    for delta in noise:
        moved = ((x + delta).astype(np.float64) ** 2).sum(axis=1) * (np.asarray(t)[:, None, None] + 1)
        worst = np.maximum(worst, np.sqrt(((moved - base) ** 2).sum(axis=(1, 2))))
    return np.exp(-worst / np.sqrt((base ** 2).sum(axis=(1, 2))))


def test_max_sensitivity_matches_reference_shared_and_per_sample_noise():
    x = uniform(10, (3, 2, 5, 5))
    t = [0, 1, 2]
    shared = uniform(11, (4, 2, 5, 5)) * 0.4 - 0.2
    got = metrics.max_sensitivity(squares, ms.Tensor(x), t, shared)
    assert_close(got, ref_max_sensitivity(x, t, shared[:, None]), rtol=1e-5)
    per_sample = uniform(12, (4, 3, 2, 5, 5)) * 0.4 - 0.2
    got = metrics.max_sensitivity(squares, ms.Tensor(x), t, ms.Tensor(per_sample))
    assert_close(got, ref_max_sensitivity(x, t, per_sample), rtol=1e-5)
    for n in range(3):   # batched == per sample
        one = metrics.max_sensitivity(squares, ms.Tensor(x[n:n + 1]), [t[n]], per_sample[:, n])
        assert_close(one, got.asnumpy()[n:n + 1], rtol=1e-6)


def test_max_sensitivity_seed_determinism_and_zero_map(linear):
    net, _, _ = linear
    x = ms.Tensor(uniform(13, (2,) + SHAPE))
    run = lambda seed: metrics.max_sensitivity(squares, x, [0, 1], seed=seed, num_perturbations=3)  # noqa: E731
    np.testing.assert_array_equal(run(0).asnumpy(), run(0).asnumpy())
    assert not np.array_equal(run(0).asnumpy(), run(1).asnumpy())
    # the gradient of a linear network does not depend on the input: exactly 1
    explain = functools.partial(xaifn.gradient, net)
    np.testing.assert_allclose(metrics.max_sensitivity(explain, x, [0, 1], seed=3).asnumpy(), 1.0)
    zero = lambda inputs, targets: ms.Tensor(np.zeros((2, 1, 6, 6), np.float32))  # noqa: E731
    with pytest.warns(RuntimeWarning, match="zero"):
        assert np.isnan(metrics.max_sensitivity(zero, x, 0, seed=0).asnumpy()).all()


def test_class_sensitivity_matches_reference(linear):
    net, weights, bias = linear
    x = uniform(14, (3,) + SHAPE)
    got = metrics.class_sensitivity(functools.partial(xaifn.gradient, net), net, ms.Tensor(x))
    logits = probs(weights, bias, x, identity=True)
    want = []
    for row in logits:
        maps = [np.abs(weights[t].reshape(SHAPE)).max(axis=0).ravel() for t in (row.argmax(), row.argmin())]
        want.append((1 - np.corrcoef(*maps)[0, 1]) / 2)
    assert_close(got, want, rtol=1e-5)
    zero = lambda inputs, targets: ms.Tensor(np.zeros((3, 1, 6, 6), np.float32))  # noqa: E731
    with pytest.warns(RuntimeWarning):
        np.testing.assert_array_equal(metrics.class_sensitivity(zero, net, ms.Tensor(x)).asnumpy(), 0.5)


# ---- ROAD ----------------------------------------------------------------------------------------

def ref_imputation(image, removed):
    """Dense, loop-built version of the neighbour-mean system, per channel."""
    _, height, width = image.shape
    unknown = [(r, c) for r in range(height) for c in range(width) if removed[r, c]]
    where = {p: i for i, p in enumerate(unknown)}
    out = image.astype(np.float64).copy()
    for ch in range(image.shape[0]):
        a = np.zeros((len(unknown), len(unknown)))
        b = np.zeros(len(unknown))
        for i, (r, c) in enumerate(unknown):
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if (dr, dc) == (0, 0) or not (0 <= rr < height and 0 <= cc < width):
                        continue
                    w = 1 / 12 if dr and dc else 1 / 6
                    a[i, i] += w
                    if (rr, cc) in where:
                        a[i, where[(rr, cc)]] -= w
                    else:
                        b[i] += w * image[ch, rr, cc]
        for (r, c), v in zip(unknown, np.linalg.solve(a, b)):
            out[ch, r, c] = v
    return out


def test_linear_imputation_reference_and_ramp():
    rng = np.random.default_rng(15)
    image = rng.random((2, 6, 7))
    removed = rng.random((6, 7)) < 0.5
    assert_close(metrics.linear_imputation(image, removed), ref_imputation(image, removed), rtol=1e-10)
    rows, cols = np.meshgrid(np.arange(6.0), np.arange(7.0), indexing="ij")
    ramp = (0.3 * rows - 0.2 * cols + 1)[None]
    interior = np.zeros((6, 7), bool)
    interior[1:5, 1:6] = rng.random((4, 5)) < 0.7          # neighbours symmetric: exact
    assert_close(metrics.linear_imputation(ramp, interior), ramp, rtol=1e-10)


def test_linear_imputation_batched_and_grouped(monkeypatch):
    rng = np.random.default_rng(35)
    images = rng.random((2, 3, 2, 7, 6))
    removed = rng.random((2, 3, 7, 6)) < np.array([0.1, 0.5, 0.9])[:, None, None]
    removed[1, 1] = False                                   # nothing to impute: the image as it is
    want = np.stack([[ref_imputation(i, r) for i, r in zip(*pair)] for pair in zip(images, removed)])
    assert_close(metrics.linear_imputation(images, removed), want, rtol=1e-10)
    # one or two images per factorisation
    road = importlib.import_module("xaifn.metrics.road")
    monkeypatch.setattr(road, "UNKNOWNS_PER_SOLVE", 20)
    assert_close(metrics.linear_imputation(images, removed), want, rtol=1e-10)
    # groups of about a third of the unknowns each, factorised on three threads at once
    monkeypatch.setattr(road, "UNKNOWNS_PER_SOLVE", 1 << 16)
    monkeypatch.setattr(road, "MIN_GROUP_UNKNOWNS", 1)
    monkeypatch.setattr(road, "HOST_THREADS", 3)
    monkeypatch.setattr(importlib.import_module("xaifn.metrics._common"), "HOST_THREADS", 3)
    solve, lock, threads, both = road._impute, threading.Lock(), [], threading.Event()

    def solve_beside_another(*args):         # the first two groups wait for each other: concurrent
        with lock:
            threads.append(threading.get_ident())
            arrival = len(threads)
        if arrival == 2:
            both.set()
        assert arrival > 2 or both.wait(30), "the first two groups were not factorised at the same time"
        return solve(*args)
    monkeypatch.setattr(road, "_impute", solve_beside_another)
    assert_close(metrics.linear_imputation(images, removed), want, rtol=1e-10)
    assert len(threads) >= 3 and threads[0] != threads[1]
    assert metrics.linear_imputation(images[:0], removed[:0]).shape == (0,) + images.shape[1:]
    # any true value marks a removed pixel (e.g. a 0/255 mask)
    assert_close(metrics.linear_imputation(images, removed.astype(np.uint8) * 255), want, rtol=1e-10)


def test_road_matches_reference_without_noise(linear):
    net, weights, bias = linear
    x = uniform(16, (2,) + SHAPE)
    saliency = tied_saliency(17, (2, 1, 6, 6))
    fractions = (0.25, 0.5)
    for order in ("morf", "lerf"):
        score, curve = metrics.road(net, SOFTMAX, ms.Tensor(x), [1, 2], saliency, fractions=fractions,
                                    order=order, noise=0.0, return_curve=True)
        want = []
        for image, t, smap in zip(x, [1, 2], saliency):
            ranking = ref_order(smap)
            row = []
            for f in fractions:
                k = round(f * 36)
                chosen = ranking[:k] if order == "morf" else ranking[36 - k:]
                removed = np.zeros(36, bool)
                removed[chosen] = True
                row.append(probs(weights, bias, ref_imputation(image, removed.reshape(6, 6))[None])[0, t])
            want.append(row)
        assert_close(curve, want, rtol=1e-5)
        assert_close(score, np.mean(want, axis=1), rtol=1e-5)


def test_road_seed_chunk_and_batch(linear, pzoo):
    net, weights, _ = linear
    x = uniform(18, (3,) + SHAPE)
    saliency = uniform(19, (3, 1, 6, 6))
    run = functools.partial(metrics.road, net, SOFTMAX, ms.Tensor(x), [0, 1, 2], saliency,
                            fractions=(0.2, 0.6), return_curve=True)
    base = run(seed=4)[1].asnumpy()
    np.testing.assert_array_equal(run(seed=4)[1].asnumpy(), base)
    assert not np.array_equal(run(seed=5)[1].asnumpy(), base)
    assert_close(run(seed=4, chunk=1)[1], base, rtol=1e-6)
    clean = run(noise=0.0)[1].asnumpy()          # without noise, batched == per sample
    for n in range(3):
        one = metrics.road(net, SOFTMAX, ms.Tensor(x[n:n + 1]), n, saliency[n:n + 1], fractions=(0.2, 0.6),
                           noise=0.0, return_curve=True)[1]
        assert_close(one, clean[n:n + 1], rtol=1e-6)
    # MoRF with the true importance of a linear identity model falls below LeRF
    t = 0
    importance = (weights[t] * x[0].reshape(-1)).reshape(1, *SHAPE)
    morf, lerf = (float(metrics.road(net, pzoo.identity, ms.Tensor(x[:1]), t, importance, order=o, noise=0.0)[0])
                  for o in ("morf", "lerf"))
    assert morf < lerf


# ---- purity and errors ----------------------------------------------------------------------------

def snapshot(net):
    return ({p.name: p.asnumpy().copy() for p in net.get_parameters()},
            [(name, cell.training) for name, cell in net.cells_and_names()])


def test_network_untouched(zoo):
    net = zoo.SeqBNNet(channels=2, num_class=3)
    zoo.set_params(net, zoo.random_params(net, seed=20))
    net.set_train(True)
    before = snapshot(net)
    x = ms.Tensor(uniform(21, (2, 2, 6, 6)))
    saliency = uniform(22, (2, 1, 6, 6))
    for metric in (metrics.deletion_auc, metrics.insertion_auc, metrics.naive_faithfulness):
        metric(net, SOFTMAX, x, [0, 1], saliency)
    metrics.road(net, SOFTMAX, x, [0, 1], saliency, fractions=(0.5,))
    metrics.class_sensitivity(functools.partial(xaifn.gradient, net), net, x)
    after = snapshot(net)
    assert after[1] == before[1] and net.training
    for name, value in before[0].items():
        np.testing.assert_array_equal(after[0][name], value, err_msg=name)


def test_errors_before_any_work(linear):
    net, _, _ = linear
    x = ms.Tensor(uniform(23, (2,) + SHAPE))
    good = np.ones((2, 1, 6, 6))
    with pytest.raises(ValueError, match="saliency"):
        metrics.deletion_auc(net, SOFTMAX, x, 0, np.ones((2, 1, 5, 6)))
    with pytest.raises(ValueError, match="finite"):
        metrics.insertion_auc(net, SOFTMAX, x, 0, np.full((2, 1, 6, 6), np.nan))
    with pytest.raises(TypeError, match="saliency"):
        metrics.naive_faithfulness(net, SOFTMAX, x, 0, [[1.0]])
    with pytest.raises(ValueError, match="num_steps"):
        metrics.deletion_auc(net, SOFTMAX, x, 0, good, num_steps=10, pixels_per_step=4)
    with pytest.raises(ValueError, match="targets"):
        metrics.deletion_auc(net, SOFTMAX, x, 3, good)
    with pytest.raises(ValueError, match="one label"):
        metrics.deletion_auc(net, SOFTMAX, x, ms.Tensor([[0, 1], [1, 0]]), good)
    with pytest.raises(ValueError, match="chunk"):
        metrics.road(net, SOFTMAX, x, 0, good, chunk="lots")
    with pytest.raises(TypeError, match="reference"):
        metrics.deletion_auc(net, SOFTMAX, x, 0, good, reference="zero")
    with pytest.raises(ValueError, match="masks"):
        metrics.pointing_game(good, None)
    with pytest.raises(ValueError, match="masks"):
        metrics.iosr(good, np.ones((2, 1, 6, 5)))
    with pytest.raises(ValueError, match="radius"):
        metrics.pointing_game(good, good, radius=0)
    with pytest.raises(ValueError, match="exactly one"):
        metrics.max_sensitivity(squares, x, 0)
    with pytest.raises(ValueError, match="noise"):
        metrics.max_sensitivity(squares, x, 0, np.zeros((3, 2, 6, 5), np.float32))
    with pytest.raises(ValueError, match="order"):
        metrics.road(net, SOFTMAX, x, 0, good, order="random")
    with pytest.raises(ValueError, match="fractions"):
        metrics.road(net, SOFTMAX, x, 0, good, fractions=(0.5, 1.0))
    with pytest.raises(ValueError, match="mode"):
        metrics.model_randomization(lambda n: functools.partial(xaifn.gradient, n), net, x, 0, mode="all")
    with pytest.raises(ValueError, match="layers"):
        metrics.model_randomization(lambda n: functools.partial(xaifn.gradient, n), net, x, 0, layers=["fc9"])
    with pytest.raises(ValueError, match="`layers` names \\['fc'\\] more than once"):
        metrics.model_randomization(lambda n: functools.partial(xaifn.gradient, n), net, x, 0, layers=["fc", "fc"])
    with pytest.raises(ValueError, match="at least one"):
        metrics.model_randomization(lambda n: functools.partial(xaifn.gradient, n), net, x, 0, layers=[])
    with pytest.raises(TypeError, match="`explain_fn_of_net` must be a function net -> explain_fn"):
        metrics.model_randomization(functools.partial(xaifn.gradient, net), net, x, 0)
    for metric in (metrics.deletion_auc, metrics.insertion_auc, metrics.naive_faithfulness, metrics.road):
        with pytest.raises(TypeError, match="`return_curve` must be a bool"):
            metric(net, SOFTMAX, x, 0, good, return_curve="no")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.pointing_game(good, good)


def summed(logits):
    return logits.sum(axis=1)


def test_more_bad_input_is_refused_clearly(linear, pzoo):
    """From a stranger's trial: each of these once ran on into a MindSpore error, or gave a
    plausible number (zeros, NaN, a score per wrong sample)."""
    net, _, _ = linear
    x = ms.Tensor(uniform(24, (2,) + SHAPE))
    good = np.ones((2, 1, 6, 6))
    # an activation that does not keep (N, L): before any compiled work
    with pytest.raises(ValueError, match="`activation_fn` must map logits \\(N, 3\\) to scores"):
        metrics.deletion_auc(net, summed, x, 0, good)
    with pytest.raises(ValueError, match="`activation_fn` must map logits"):
        xaifn.occlusion(net, summed, x, 0)
    # step counts derived from the other argument say so
    with pytest.raises(ValueError, match="given: pixels_per_step; the other from H \\* W"):
        metrics.deletion_auc(net, SOFTMAX, x, 0, good, pixels_per_step=100)
    # max-sensitivity: the given map and the explainer's maps
    gradient = functools.partial(xaifn.gradient, net)
    with pytest.raises(ValueError, match="`saliency` must be finite"):
        metrics.max_sensitivity(gradient, x, 0, seed=0, saliency=np.full((2, 1, 6, 6), np.nan))
    with pytest.raises(ValueError, match="`saliency` must have shape \\(2, ...\\)"):
        metrics.max_sensitivity(gradient, x, 0, seed=0, saliency=np.ones((3, 1, 6, 6)))
    with pytest.raises(ValueError, match="`explain_fn\\(inputs, targets\\)` must have shape \\(2, ...\\)"):
        metrics.max_sensitivity(lambda a, t: gradient(a, t)[:1], x, 0, seed=0)
    with pytest.raises(ValueError, match=r"maps of shape \(2, 1, 6, 6\) for perturbed inputs, against \(2, 2, 6, 6\)"):
        metrics.max_sensitivity(gradient, x, 0, seed=0, saliency=np.ones((2, 2, 6, 6)))

    def blows_up(inputs, targets):
        maps = gradient(inputs, targets)
        return maps if inputs is x else maps / 0
    with pytest.raises(ValueError, match="non-finite maps \\(NaN or inf\\) for perturbed inputs"):
        metrics.max_sensitivity(blows_up, x, 0, seed=0, num_perturbations=2)
    # ROAD needs a pixel to keep; the imputation needs one per image and a boolean (or integer) mask
    one_pixel = pzoo.linear_net((2, 1, 1), num_class=3, seed=1)[0]
    with pytest.raises(ValueError, match="at least 2 pixels"):
        metrics.road(one_pixel, SOFTMAX, ms.Tensor(uniform(2, (2, 2, 1, 1))), 0, np.ones((2, 1, 1, 1)))
    image = uniform(3, (1, 3, 8, 8)) + 5
    with pytest.raises(ValueError, match="every pixel removed"):
        metrics.linear_imputation(image, np.ones((1, 8, 8), bool))
    with pytest.raises(TypeError, match="`removed` must hold bools"):
        metrics.linear_imputation(image, np.full((1, 8, 8), 0.3))
    with pytest.raises(ValueError, match="must match"):
        metrics.linear_imputation(image, np.zeros((1, 8, 7), bool))
    # localization: masks with NaN, thresholds outside [0, 1), complex maps
    with pytest.raises(ValueError, match="`masks` must be finite"):
        metrics.pointing_game(good, np.where(good > 0, np.nan, 0.0))
    for threshold in (1.0, 2.0, -1.0):
        with pytest.raises(ValueError, match="`threshold` must lie in \\[0, 1\\)"):
            metrics.iosr(good, good, threshold=threshold)
    with pytest.raises(TypeError, match="real numbers"):
        metrics.iosr(good + 1j, good)
    # class sensitivity of a one-output network compares a map with itself
    single = pzoo.linear_net(SHAPE, num_class=1, seed=2)[0]
    with pytest.raises(ValueError, match="at least 2 outputs"):
        metrics.class_sensitivity(functools.partial(xaifn.gradient, single), single, x)
