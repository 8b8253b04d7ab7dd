"""Randomisation sanity checks (Adebayo et al., NeurIPS 2018): model parameters, and data labels.

Model-parameter randomisation (`model_randomization`).

On a copy of the network with private Parameters for the layers to randomise (it shares the
others, only reading them: the user's Parameters are never written), layers are re-initialised one
at a time from the top (the output side) down and the explanation is recomputed:

* cascading: layer l and every layer above it are randomised;
* independent: only layer l is randomised, the others keep their trained values.

A layer is a cell that owns trainable Parameters; "from the top" is the reverse of the order in
which `cells_and_names()` lists them (the order of definition), unless `layers` names them. Each
Parameter of layer l is redrawn from a uniform distribution with the mean and standard deviation
of its own trained values, i.e. on mean +- sqrt(3) std (a constant Parameter, e.g. an all-zero
bias, stays as it is), from `np.random.default_rng([seed, l])` (in float32, or float64 for
float64 Parameters), so both modes draw the same values for a layer. A uniform draw, as
MindSpore's and PyTorch's default initialisers of convolutions and dense layers are, costs a
quarter of a normal one (float32, 2.4 M values: ~6 against ~24 ms, measured).

Similarity of each randomised map to the original one, per sample, as the paper measures it:
Spearman rank correlation of the maps and of their absolute values (ties get their average rank),
and SSIM of the maps min-max scaled to [0, 1] (uniform window of min(7, H, W) pixels, odd; sample
covariances; K1 = 0.01, K2 = 0.03; mean over the window positions). Maps are averaged over their
channels first. A method whose maps depend on the model gives similarities that fall as layers
are randomised; Guided Backpropagation famously stays similar.

Data randomisation (`data_randomization`): the user's training function trains the network once
on the true labels and once on labels randomly permuted (`permuted_labels`, seeded); a model that
has memorised random labels has learnt nothing about the images, so the maps of a method that
depends on what the model learnt differ between the two. Same similarities, one column.
"""
import collections
import copy
import warnings

import numpy as np
import mindspore as ms
from mindspore import ops
from scipy import ndimage

from xaifn import _cache, _checks
from xaifn.metrics._common import HOST_THREADS, as_tensor, host_map

#: Prefix of the names of the private copy's Parameters.
COPY_PREFIX = "randomization_copy."
#: The per-layer similarities (N, number of layers), one column per entry of `layers`.
Randomization = collections.namedtuple("Randomization", "layers spearman spearman_abs ssim")


def _private_copy(net, randomised):
    """(clone, update, private, units): a deep copy of `net` that shares its Parameters except those
    of `randomised` (ids: the trainable ones of the layers randomised, and every one that a forward
    pass may write, such as BatchNorm's moving statistics, which are not trainable), which are new
    ones holding copies of the values (named ``COPY_PREFIX + name``: one graph holds both sets); a
    compiled update() that assigns to them the current values of `net`'s (one call, not two eager
    operations per Parameter: 77 ms of launches for resnet18's 102, measured); `private`, the
    copy's Parameter for each of the user's in `randomised` (by id); and `units`, the memo of
    `_unit_draws`.

    The shared Parameters are only read: the user's current values, with no copy (copying all of
    resnet18's 11.7 M values cost ~15 ms per call, measured). One copy is kept per network and set
    of layers (`xaifn._cache`, renewed when the network's Parameter storage moves), and its own
    Parameters are overwritten in place at every call, so that the explainer's kernels compiled for
    the copy serve every call."""
    memo = {id(p): ms.Parameter(ms.Tensor(p.asnumpy()), name=f"{COPY_PREFIX}{p.name}", requires_grad=p.requires_grad)
            if id(p) in randomised else p for p in net.get_parameters()}
    clone = copy.deepcopy(net, memo)
    for _, cell in clone.cells_and_names():
        object.__setattr__(cell, "_compile_cache", None)
    pairs = [(target, value) for target, value in zip(clone.get_parameters(), net.get_parameters())
             if target is not value]

    def update():
        for target, value in pairs:
            ops.assign(target, value)
        return pairs[0][0]
    return clone, _cache.compiled(update, checked=False), {id(value): target for target, value in pairs}, {}


def _layers(net, names):
    """[(name, [trainable Parameters it owns directly])], top layer first."""
    owners = [(name, [p for p in cell.get_parameters(expand=False) if p.requires_grad])
              for name, cell in net.cells_and_names()]
    owners = [(name, params) for name, params in owners if params]
    if names is None:
        return owners[::-1]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"`layers` must be None or a list of cell names, got {names!r}.")
    if not names:
        raise ValueError("`layers` must name at least one cell, got an empty list.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"`layers` names {repeated} more than once: each layer is randomised once.")
    table = dict(owners)
    missing = [n for n in names if n not in table]
    if missing:
        raise ValueError(f"`layers` {missing} are not cells owning trainable Parameters; "
                         f"those are {[n for n, _ in owners]}.")
    return [(n, table[n]) for n in names]


def spearman(a, b):
    """Spearman rank correlation of a (..., D) with b (..., D) along the last axis, broadcast over
    the others (float64): rows of (N, D) -> (N,); (N, 1, D) against (N, L, D) -> (N, L), ranking a once.

    Tied values get their average rank; a constant row gives NaN.
    """
    ra, rb = (r - r.mean(axis=-1, keepdims=True) for r in (_ranks(a), _ranks(b)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ra * rb).sum(axis=-1) / np.sqrt((ra * ra).sum(axis=-1) * (rb * rb).sum(axis=-1))


def _ranks(values):
    """Average ranks (1-based, ties sharing the mean of their positions) along the last axis, as
    `scipy.stats.rankdata` gives them; float64 (..., D). Values that float32 holds exactly (maps of
    float32 explainers, even as float64) are sorted by `_radix_order`, others by `np.argsort`."""
    values = np.asarray(values)
    narrow = values.astype(np.float32)
    if values.dtype in (np.float16, np.float32) or np.array_equal(narrow, values):   # float32 values
        order = _radix_order(narrow + np.float32(0))                         # -0.0 ties with 0.0
    else:
        order = np.argsort(values, axis=-1)
    ordered = np.take_along_axis(values, order, -1)
    size = values.shape[-1]
    new = np.ones(values.shape, bool)                       # a value differing from the one before
    np.not_equal(ordered[..., 1:], ordered[..., :-1], out=new[..., 1:])
    position = np.arange(size)
    ranks = np.empty(values.shape)
    if new.all():                                           # no ties
        np.put_along_axis(ranks, order, np.broadcast_to(position + 1.0, values.shape), -1)
        return ranks
    first = np.maximum.accumulate(np.where(new, position, 0), axis=-1)
    ends = np.concatenate([new[..., 1:], np.ones(new.shape[:-1] + (1,), bool)], -1)
    last = np.minimum.accumulate(np.where(ends, position, size)[..., ::-1], axis=-1)[..., ::-1]
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, -1)
    return ranks


def _radix_order(values):
    """np.argsort(values, axis=-1, kind="stable") of float32 values: two stable passes over 16-bit
    halves of order-preserving integer keys (NumPy sorts 16-bit integers by radix): 2.4 ms for six
    112 x 112 maps, against 6.4 ms for `np.argsort` (measured)."""
    bits = values.view(np.uint32)
    keys = np.where(bits >> 31, ~bits, bits | np.uint32(1 << 31))          # sign flipped, negatives reversed
    low = np.argsort((keys & 0xFFFF).astype(np.uint16), axis=-1, kind="stable")
    high = np.take_along_axis((keys >> 16).astype(np.uint16), low, -1)
    return np.take_along_axis(low, np.argsort(high, axis=-1, kind="stable"), -1)


def _window_means(maps, win):
    """Mean of every win x win window (win odd) of maps (..., H, W) -> (..., H - win + 1, W - win + 1):
    SciPy's running sums along each axis (2.4x faster than summed-area tables, measured)."""
    half = win // 2
    rows = ndimage.uniform_filter1d(maps, win, axis=-1, mode="constant")[..., half:maps.shape[-1] - half]
    return ndimage.uniform_filter1d(rows, win, axis=-2, mode="constant")[..., half:maps.shape[-2] - half, :]


def ssim(a, b):
    """SSIM of maps a (..., H, W) and b (..., H, W), broadcast over the leading axes (e.g. (N,) for
    (N, H, W) pairs; (N, L) for (N, 1, H, W) against (N, L, H, W)), each map min-max scaled to
    [0, 1] (see the module docstring)."""
    def scaled(m):
        low = m.min(axis=(-2, -1), keepdims=True)
        span = m.max(axis=(-2, -1), keepdims=True) - low
        return (m - low) / np.where(span == 0, 1, span)
    a, b = scaled(np.asarray(a, np.float64)), scaled(np.asarray(b, np.float64))
    win = min(7, *a.shape[-2:])
    win -= 1 - win % 2
    mean_a, mean_b = _window_means(a, win), _window_means(b, win)
    sample = win * win / max(win * win - 1, 1)              # population -> sample (co)variances
    var_a = (_window_means(a * a, win) - mean_a ** 2) * sample
    var_b = (_window_means(b * b, win) - mean_b ** 2) * sample
    cov = (_window_means(a * b, win) - mean_a * mean_b) * sample
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = ((2 * mean_a * mean_b + c1) * (2 * cov + c2)) / \
        ((mean_a ** 2 + mean_b ** 2 + c1) * (var_a + var_b + c2))
    return index.mean(axis=(-2, -1))


@_cache.serialised
def model_randomization(explain_fn_of_net, net, inputs, targets, *, mode="cascading", seed=0, layers=None):
    """Per-layer similarity of the maps before and after randomising the weights.

    Args:
        explain_fn_of_net: net -> ((inputs, targets) -> maps (N, c, H, W)), e.g.
            ``lambda net: functools.partial(xaifn.gradient, net)``. It is called once, on the copy.
        net: the trained `nn.Cell` (left untouched: the work happens on a copy).
        inputs: float Tensor (N, C, H, W); targets: as `explain_fn` accepts them.
        mode: "cascading" or "independent".
        seed: int, the seed of the re-initialisation.
        layers: optional list of cell names, in the order to randomise (default: every cell owning
            trainable Parameters, top first).

    Returns:
        `Randomization(layers, spearman, spearman_abs, ssim)`: the layer names (in order) and three
        float32 Tensors (N, len(layers)); column l compares the map after step l with the original.

    Example:
        >>> import functools, numpy as np, mindspore as ms, xaifn
        >>> from xaifn.metrics import model_randomization
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> result = model_randomization(lambda n: functools.partial(xaifn.gradient, n), LeNet5(), x, 1)
        >>> result.layers, result.spearman.shape
        (('fc3', 'fc2', 'fc1', 'conv2', 'conv1'), (2, 5))
    """
    _checks.check_callable(explain_fn_of_net, "explain_fn_of_net")
    _checks.check_cell(net, "net")
    _checks.check_inputs(inputs)
    mode = _checks.check_choice(mode, "mode", ("cascading", "independent"))
    seed = _checks.check_seed(seed)
    chosen = _layers(net, layers)                             # the names checked before any work
    randomised = {id(p) for _, params in chosen for p in params} | \
        {id(p) for p in net.get_parameters() if not p.requires_grad}    # a forward may write those
    clone, update, private, units = _cache.cached(net, ("randomization_copy", tuple(sorted(n for n, _ in chosen))),
                                                 lambda: _private_copy(net, randomised))
    update()                                                  # their current weights, one compiled call
    try:
        explain = explain_fn_of_net(clone)
    except TypeError as error:
        raise TypeError("`explain_fn_of_net` must be a function net -> explain_fn(inputs, targets), e.g. "
                        "`lambda net: functools.partial(xaifn.gradient, net)`; called with the network it "
                        f"raised: {error}") from error
    _checks.check_callable(explain, "explain_fn_of_net(net)")

    def maps():
        return _checks.check_saliency(explain(inputs, targets), inputs.shape[0], inputs.shape[2:],
                                      name="explain_fn(inputs, targets)")
    original = maps()
    columns = []
    for index, (_, params) in enumerate(chosen):             # the user's Parameters, only read
        if mode == "independent" and index:
            for p in chosen[index - 1][1]:
                private[id(p)].copy_(p)                       # its trained values, device to device
        values = [p.asnumpy() for p in params]
        draws = [_redrawn(unit, value, out) for (unit, out), value in zip(_unit_draws(units, seed, index, values),
                                                                         values)]
        for p, draw in zip(params, draws):
            private[id(p)].copy_(ms.from_numpy(draw))         # in place, from the kept buffer
        columns.append(maps())
    if all(np.array_equal(column, original) for column in columns):
        warnings.warn("every randomised map equals the original one: does `explain_fn_of_net` explain the "
                      "network it is given (the copy, whose layers are randomised) rather than another? "
                      "(Layers that cannot change the maps give this too.)", RuntimeWarning, stacklevel=3)
    return _similarities(tuple(name for name, _ in chosen), original, np.stack(columns, 1))


def _unit_draws(memo, seed, index, values):
    """[(unit, out)] for layer `index`, one per value: the uniform [0, 1) draws (its shape; float32,
    float64 for a float64 value), in order from `np.random.default_rng([seed, index])`, and an
    array of the value's shape and dtype for `_redrawn` to write.

    The draws depend on nothing else, so the network's `memo` keeps those of its latest seed, with
    their arrays (twice as much memory as the layers randomised; no new pages per call): resnet18's
    top 3 layers take ~6 ms to draw (2.4 M values)."""
    key = (index, tuple((v.shape, v.dtype) for v in values))
    if memo.get("seed") != seed:
        memo.clear()
        memo["seed"] = seed
    if key not in memo:
        rng = np.random.default_rng([seed, index])
        memo[key] = [(rng.random(v.shape, dtype=np.float64 if v.dtype == np.float64 else np.float32), np.empty_like(v))
                     for v in values]
    return memo[key]


def _redrawn(unit, value, out):
    """`out`, filled with the uniform draws `unit` on [0, 1) scaled to the mean and standard
    deviation of `value` (the user's trained values, never written), in its dtype.

    The mean is summed in float64, the squares by BLAS in the value's dtype (float32 for a narrower
    one, whose sum of squares would overflow), centred first where the mean is large enough for
    the difference of the raw moments to lose more than a bit (mean^2 > half the mean square) or
    the raw squares overflow. For resnet18's top 3 layers the moments and scaling cost ~4 ms
    (8 ms when always centred into new arrays, measured)."""
    wide = (value if value.dtype in (np.float32, np.float64) else value.astype(np.float32)).ravel()
    mean = wide.mean(dtype=np.float64)
    square = float(np.dot(wide, wide)) / max(wide.size, 1)
    if not mean * mean <= square / 2 < np.inf:                # would cancel, or overflowed
        centred = wide - wide.dtype.type(mean)
        square, mean_square = float(np.dot(centred, centred)) / max(wide.size, 1), 0.0
    else:
        mean_square = mean * mean
    std = np.sqrt(max(square - mean_square, 0.0))
    scale, low = 2 * np.sqrt(3) * std, mean - np.sqrt(3) * std
    if out.dtype == unit.dtype:
        np.multiply(unit, scale, out=out)
        out += low
    else:
        np.copyto(out, unit * scale + low, casting="same_kind")
    return out


def _similarities(names, original, randomised):
    """`Randomization` of maps randomised (N, L, H, W) against original (N, H, W): ranked and scaled
    once per map, all columns at once (maps with no negative value, e.g. Gradient's, are their own
    absolute values: ranked once), the samples split over `host_map`'s threads (at N = 8, L = 3,
    112 x 112: ~70 ms on one thread, measured)."""
    signed = not ((original >= 0).all() and (randomised >= 0).all())

    def measures(part):
        first, rest = original[part], randomised[part]
        flat, rows = first.reshape(len(first), 1, -1), rest.reshape(rest.shape[:2] + (-1,))
        plain = spearman(flat, rows)
        absolute = spearman(np.abs(flat), np.abs(rows)) if signed else plain
        return plain, absolute, ssim(first[:, None], rest)
    parts = np.array_split(np.arange(len(original)), min(HOST_THREADS, len(original)))
    plain, absolute, index = (np.concatenate(values) for values in zip(*host_map(measures, parts)))
    constant = np.flatnonzero(np.isnan(plain).any(axis=1) | np.isnan(absolute).any(axis=1))
    if len(constant):
        warnings.warn(f"a saliency map of sample(s) {constant.tolist()} is constant: its Spearman correlation is "
                      "NaN there.", RuntimeWarning, stacklevel=3)
    return Randomization(names, as_tensor(plain), as_tensor(absolute), as_tensor(index))


def permuted_labels(labels, seed):
    """The labels (a 1-D array or Tensor) randomly permuted with `np.random.default_rng(seed)`, as a
    new numpy array: the class counts stay, the link between an image and its label is lost.

    Example:
        >>> from xaifn.metrics import permuted_labels
        >>> permuted_labels([0, 0, 1, 1, 2, 2], seed=3).tolist()
        [1, 2, 2, 0, 1, 0]
    """
    seed = _checks.check_seed(seed)
    values = labels.asnumpy() if isinstance(labels, ms.Tensor) else np.asarray(labels)
    if values.ndim != 1 or not len(values):
        raise ValueError(f"`labels` must be a non-empty 1-D array of labels, got shape {values.shape}.")
    return values[np.random.default_rng(seed).permutation(len(values))]


def data_randomization(explain_fn_of_net, train_fn, inputs, targets, *, seed=0):
    """Similarity of the maps of a network trained on the true labels and of one trained on
    randomly permuted labels (module docstring).

    Args:
        explain_fn_of_net: net -> ((inputs, targets) -> maps (N, c, H, W)), as in `model_randomization`.
        train_fn: label_seed -> a trained `nn.Cell`: with None, trained on the true labels; with an
            int, on the labels permuted by ``permuted_labels(labels, label_seed)``. Both trainings
            should be alike in everything else (initialisation, schedule). It is called twice, first
            with None, then with `seed`; the networks it returns are only explained, never changed.
        inputs: float Tensor (N, C, H, W) to explain; targets: as `explain_fn` accepts them.
        seed: int, the seed of the label permutation handed to `train_fn`.

    Returns:
        `Randomization(("permuted labels",), spearman, spearman_abs, ssim)`: float32 Tensors (N, 1)
        comparing, per sample, the random-label network's map with the true-label network's.

    Example:
        >>> import functools, numpy as np, mindspore as ms, xaifn
        >>> from mindspore import nn
        >>> from xaifn.metrics import data_randomization
        >>> nets = {None: nn.Dense(4, 2), 7: nn.Dense(4, 2)}     # stand-ins for two trainings
        >>> x = ms.Tensor(np.random.rand(3, 1, 2, 2), ms.float32)
        >>> net_of = lambda seed: nn.SequentialCell([nn.Flatten(), nets[seed]])
        >>> result = data_randomization(lambda n: functools.partial(xaifn.gradient, n), net_of, x, 1, seed=7)
        >>> result.layers, result.spearman.shape
        (('permuted labels',), (3, 1))
    """
    _checks.check_callable(explain_fn_of_net, "explain_fn_of_net")
    _checks.check_callable(train_fn, "train_fn")
    _checks.check_inputs(inputs)
    seed = _checks.check_seed(seed)
    maps = []
    for label_seed in (None, seed):
        net = _checks.check_cell(train_fn(label_seed), f"train_fn({label_seed})")
        explain = _checks.check_callable(explain_fn_of_net(net), "explain_fn_of_net(net)")
        maps.append(_checks.check_saliency(explain(inputs, targets), inputs.shape[0], inputs.shape[2:],
                                           name="explain_fn(inputs, targets)"))
    return _similarities(("permuted labels",), maps[0], maps[1][:, None])
