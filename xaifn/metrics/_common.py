"""What the metric families share: the ranking of pixels, row correlations, the forward score,
host work on several threads."""
from concurrent import futures
import os
import warnings

import numpy as np
import mindspore as ms

from xaifn import _cache, _checks
from xaifn._chunked import bytes_per_image, images_per_step, removal_scores
from xaifn.rise import probability_fn


#: Threads for the metrics' host work (sparse factorisations, sorts: NumPy and SciPy release the
#: GIL in them).
HOST_THREADS = min(4, os.cpu_count() or 1)


def host_map(fn, items):
    """[fn(item) for item in items], on up to `HOST_THREADS` threads when there are several items."""
    items = list(items)
    if len(items) < 2 or HOST_THREADS < 2:
        return [fn(item) for item in items]
    with futures.ThreadPoolExecutor(min(HOST_THREADS, len(items))) as pool:
        return list(pool.map(fn, items))


def pixel_ranks(saliency):
    """(N, H, W) int64 rank of every pixel, 0 for the most salient.

    Ties are broken by pixel index (row-major): of two equally salient pixels the one that comes
    first in the image ranks first, so the order, and every metric built on it, is deterministic.
    """
    n = saliency.shape[0]
    order = np.argsort(-saliency.reshape(n, -1), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None], axis=1)
    return ranks.reshape(saliency.shape)


def row_pearson(a, b, what):
    """Pearson correlation of each row of a with the same row of b (float64 (N,)).

    A row in which either side is constant has no correlation: 0 is returned there, with a warning
    naming `what`.
    """
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    flat = norm == 0
    if flat.any():
        warnings.warn(f"{what} is constant for sample(s) {np.flatnonzero(flat).tolist()}: "
                      "their correlation is set to 0.", RuntimeWarning, stacklevel=3)
    return np.where(flat, 0.0, (a * b).sum(axis=1) / np.where(flat, 1.0, norm))


def check_metric_call(net_fn, activation_fn, inputs, targets, saliency, chunk, return_curve):
    """Validate a perturbation metric's arguments; return the inputs (cast to the network's dtype),
    (N, 1) labels, the (N, H, W) saliency and the perturbed images per step (from `chunk`)."""
    _checks.check_bool(return_curve, "return_curve")
    inputs, labels, chunk = _checks.check_perturbation_call(net_fn, activation_fn, inputs, targets, chunk)
    if labels.shape[1] != 1:
        raise ValueError(f"`targets` must hold one label per sample, got shape {tuple(labels.shape)}.")
    maps = _checks.check_saliency(saliency, inputs.shape[0], inputs.shape[2:])
    return inputs, labels, maps, images_per_step(chunk, bytes_per_image(net_fn, inputs))


def probabilities_after_removal(net_fn, activation_fn, inputs, labels, ranks, intervals, chunk, **fill):
    """sigma(f(x~_nj))[t_n] as a float64 array (N, S) (see `xaifn._chunked.removal_scores`)."""
    build = lambda: probability_fn(_cache.evaluable(net_fn), activation_fn)  # noqa: E731
    scores = removal_scores(build, inputs, labels, ranks, intervals, chunk,
                            (net_fn, ("metric", _cache.callable_key(activation_fn))), **fill)
    return scores.asnumpy().astype(np.float64)


def as_tensor(values):
    """A float32 Tensor of float64 results."""
    return ms.Tensor(np.asarray(values, np.float32))
