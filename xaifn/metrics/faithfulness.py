"""Faithfulness: does removing the pixels a map calls important change the prediction? (original's arithmetic)

With P steps of q pixels (defaults: P = floor(sqrt(H*W)), q = floor(H*W / (2P)), half the image),
pixels ranked by saliency (channel mean, highest first, ties by pixel index), p = sigma(f(.))[t]
and a removed pixel set to `reference` in every channel:

    deletion   d_j = p(x) - p(x without ranks [0, (j+1)q))              result 1 - auc / 2
    insertion  d_j = p(ref with ranks [0, (j+1)q) put back) - p(ref)    result (1 + auc) / 2
               auc = (sum_j d_j - d_0 - d_{P-1}) / P        (the original's formula: both ends dropped)
    naive      FI_j = mean saliency of ranks [jq, (j+1)q), p_j = p(x without only those)
               result (1 - corr(FI, p)) / 2                 (Pearson; 0 correlation if FI or p is flat)

The formulas are the original's, kept exactly so that the numbers agree. Two consequences:
the auc is not clipped (a deletion that raises p gives a deletion result above 1), and, because the
original integrates the drops d_j rather than p itself, a map that finds the evidence faster gets
a LARGER deletion auc and so a LOWER deletion result 1 - auc / 2 (the original documents "higher is
better" for all three; that holds for insertion and naive faithfulness, not for its deletion
formula). The curves are returned whole (`return_curve=True`) for any other summary. The
original's naive-faithfulness blocks skipped one rank between consecutive blocks (an off-by-one);
xaifn's blocks are contiguous. Ties in the ranking are broken by pixel index (the original's sort
was unstable).
"""
import math

import numpy as np

from xaifn import _cache, _checks
from xaifn._chunked import DEFAULT_CHUNK
from xaifn.metrics._common import (as_tensor, check_metric_call, pixel_ranks,
                                   probabilities_after_removal, row_pearson)


def steps(height, width, num_steps=None, pixels_per_step=None):
    """(P, q): the step count and pixels per step, defaults as the original (half the image)."""
    area = height * width
    given = []
    for name, value in (("num_steps", num_steps), ("pixels_per_step", pixels_per_step)):
        if value is not None:
            _checks.check_positive_int(value, name)
            given.append(name)
    if num_steps is None:
        num_steps = math.isqrt(area) if pixels_per_step is None else area // (2 * pixels_per_step)
    if pixels_per_step is None:
        pixels_per_step = area // (2 * num_steps) if num_steps else 0
    if num_steps < 2 or pixels_per_step < 1 or num_steps * pixels_per_step > area:
        derived = " (given: " + (", ".join(given) or "neither") + "; the other from H * W)" if len(given) < 2 else ""
        raise ValueError(f"need num_steps >= 2, pixels_per_step >= 1 and num_steps * pixels_per_step <= "
                         f"H * W = {area} ({height} x {width} images), got num_steps {num_steps}, "
                         f"pixels_per_step {pixels_per_step}{derived}.")
    return num_steps, pixels_per_step


def _auc(drops):
    """The original's area: (sum_j d_j - d_first - d_last) / P, per row."""
    return (drops.sum(axis=1) - drops[:, 0] - drops[:, -1]) / drops.shape[1]


def _curve(net_fn, activation_fn, inputs, targets, saliency, num_steps, pixels_per_step, reference,
           chunk, return_curve, insertion):
    inputs, labels, maps, chunk = check_metric_call(net_fn, activation_fn, inputs, targets, saliency, chunk,
                                                    return_curve)
    height, width = maps.shape[1:]
    count, per = steps(height, width, num_steps, pixels_per_step)
    reference = _checks.check_real(reference, "reference")
    ends = per * np.arange(count + 1)           # ranks removed (deletion) / put back (insertion)
    area = height * width
    intervals = np.stack([ends, np.full_like(ends, area)], 1) if insertion else \
        np.stack([np.zeros_like(ends), ends], 1)
    return probabilities_after_removal(net_fn, activation_fn, inputs, labels, pixel_ranks(maps),
                                       intervals, chunk, reference=reference)


@_cache.one_call
def deletion_auc(net_fn, activation_fn, inputs, targets, saliency, *, num_steps=None,
                 pixels_per_step=None, reference=0.0, chunk=DEFAULT_CHUNK, return_curve=False):
    """Deletion score 1 - auc / 2 per sample (N,), as the original's "DeletionAUC" (module docstring:
    the faster the target probability drops, the larger the auc and the LOWER this score).

    Args:
        net_fn: an `nn.Cell` (evaluated through an eval-mode view) or a callable to (N, L) logits.
        activation_fn: logits -> probabilities, e.g. `nn.Softmax()`.
        inputs: float Tensor (N, C, H, W).
        targets: int, list of N ints, 0-D/1-D integer Tensor (one label per sample).
        saliency: (N, c, H, W) Tensor or array (averaged over its c channels).
        num_steps, pixels_per_step: P and q (defaults as the original: half the image is removed).
        reference: the value a removed pixel takes, in every channel (default 0.0).
        chunk: the memory of one compiled step: a byte size such as "128MiB" (the default) or an
            int, the number of perturbed images per step (as in `xaifn.rise`).
        return_curve: also return the curve (N, P + 1): p after j steps, j = 0..P (column 0 is p(x)).

    Returns:
        float32 Tensor (N,), or (scores, curve) with `return_curve`.

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from mindspore import nn
        >>> from xaifn.metrics import deletion_auc
        >>> net = nn.SequentialCell([nn.Flatten(), nn.Dense(16, 2)])
        >>> x = ms.Tensor(np.ones((1, 1, 4, 4)), ms.float32)
        >>> w = (net[1].weight[1] - net[1].weight[0]).reshape(1, 1, 4, 4)
        >>> score, curve = deletion_auc(net, nn.Softmax(), x, 1, w, return_curve=True)
        >>> score.shape, curve.shape
        ((1,), (1, 5))
    """
    curve = _curve(net_fn, activation_fn, inputs, targets, saliency, num_steps, pixels_per_step,
                   reference, chunk, return_curve, insertion=False)
    scores = as_tensor(1 - _auc(curve[:, :1] - curve[:, 1:]) / 2)
    return (scores, as_tensor(curve)) if return_curve else scores


@_cache.one_call
def insertion_auc(net_fn, activation_fn, inputs, targets, saliency, *, num_steps=None,
                  pixels_per_step=None, reference=0.0, chunk=DEFAULT_CHUNK, return_curve=False):
    """Insertion score (1 + auc) / 2 per sample (N,), as the original's "InsertionAUC".

    Arguments as `deletion_auc`; the curve (N, P + 1) holds p after j steps of putting pixels back
    into the reference image (column 0 is p of the reference image itself).

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from mindspore import nn
        >>> from xaifn.metrics import insertion_auc
        >>> net = nn.SequentialCell([nn.Flatten(), nn.Dense(16, 2)])
        >>> x = ms.Tensor(np.random.rand(3, 1, 4, 4), ms.float32)
        >>> insertion_auc(net, nn.Softmax(), x, [0, 1, 0], np.random.rand(3, 1, 4, 4)).shape
        (3,)
    """
    curve = _curve(net_fn, activation_fn, inputs, targets, saliency, num_steps, pixels_per_step,
                   reference, chunk, return_curve, insertion=True)
    scores = as_tensor((1 + _auc(curve[:, 1:] - curve[:, :1])) / 2)
    return (scores, as_tensor(curve)) if return_curve else scores


@_cache.one_call
def naive_faithfulness(net_fn, activation_fn, inputs, targets, saliency, *, num_steps=None,
                       pixels_per_step=None, reference=0.0, chunk=DEFAULT_CHUNK, return_curve=False):
    """Naive faithfulness (1 - corr(FI, p)) / 2 per sample (N,), as the original's "NaiveFaithfulness".

    Arguments as `deletion_auc`. Step j removes only the rank block [jq, (j+1)q); a flat map or an
    unchanged prediction gives correlation 0 (result 0.5) with a RuntimeWarning. The curve (N, P)
    holds p after each step.

    Example: a uniform map says nothing (0.5).
        >>> import warnings
        >>> import numpy as np, mindspore as ms
        >>> from mindspore import nn
        >>> from xaifn.metrics import naive_faithfulness
        >>> net = nn.SequentialCell([nn.Flatten(), nn.Dense(16, 2)])
        >>> x = ms.Tensor(np.random.rand(1, 1, 4, 4), ms.float32)
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     float(naive_faithfulness(net, nn.Softmax(), x, 0, np.ones((1, 1, 4, 4)))[0])
        0.5
    """
    inputs, labels, maps, chunk = check_metric_call(net_fn, activation_fn, inputs, targets, saliency, chunk,
                                                    return_curve)
    height, width = maps.shape[1:]
    count, per = steps(height, width, num_steps, pixels_per_step)
    reference = _checks.check_real(reference, "reference")
    starts = per * np.arange(count)
    curve = probabilities_after_removal(net_fn, activation_fn, inputs, labels, pixel_ranks(maps),
                                        np.stack([starts, starts + per], 1), chunk, reference=reference)
    ordered = -np.sort(-maps.reshape(len(maps), -1), axis=1)                 # saliency by rank
    importance = ordered[:, :count * per].reshape(len(maps), count, per).mean(axis=2)
    correlation = row_pearson(importance, curve, "the saliency of the removed blocks or the prediction")
    scores = as_tensor((1 - correlation) / 2)
    return (scores, as_tensor(curve)) if return_curve else scores
