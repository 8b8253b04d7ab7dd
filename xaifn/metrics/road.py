"""ROAD, remove and debias (Rong et al., ICML 2022): removal with noisy linear imputation.

For each fraction f, the round(f * H * W) (at least 1, at most H * W - 1) most salient pixels
(MoRF) or least salient ones (LeRF) are removed (ranks by the channel-averaged map, ties by
pixel index) and imputed, in every channel, by the linear system that makes each removed pixel
the weighted mean of its 8 neighbours inside the image (weight 1/6 for the 4 direct neighbours,
1/12 for the diagonal ones), the kept pixels being fixed; Gaussian noise of standard deviation
`noise` is then added to the imputed pixels. This avoids the out-of-distribution edges that
constant removal creates. The noise for sample n at fraction j comes from
`np.random.default_rng([seed, n, j])`, so results do not depend on the chunk.

The curve is p_j = sigma(f(x~_j))[t]; the score is its mean over the fractions: for MoRF lower is
better (the prediction collapses fast), for LeRF higher is better.
"""
import numpy as np
from scipy import sparse
from scipy.sparse import linalg

from xaifn import _cache, _checks
from xaifn._chunked import DEFAULT_CHUNK
from xaifn.metrics._common import as_tensor, check_metric_call, pixel_ranks, probabilities_after_removal

#: (row offset, column offset, weight) of the neighbours in the imputation.
NEIGHBOURS = tuple((dr, dc, 1 / 6 if dr == 0 or dc == 0 else 1 / 12)
                   for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))


def linear_imputation(image, removed):
    """image (C, H, W) with the pixels where `removed` (H, W) is True replaced by the solution of
    the neighbour-mean system (module docstring); needs at least one kept pixel."""
    channels, height, width = image.shape
    unknown = np.flatnonzero(removed.reshape(-1))
    position = np.full(height * width, -1)
    position[unknown] = np.arange(len(unknown))
    rows, cols = np.divmod(unknown, width)
    flat = image.reshape(channels, -1).astype(np.float64)
    index = np.arange(len(unknown))
    rows_at, cols_at, weights_at = [index], [index], [np.zeros(len(unknown))]   # the diagonal first
    right = np.zeros((len(unknown), channels))
    for dr, dc, weight in NEIGHBOURS:
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        weights_at[0] += weight * inside
        neighbour = np.where(inside, r * width + c, 0)
        other = np.where(inside, position[neighbour], -1)
        known = inside & (other < 0)
        right[known] += weight * flat[:, neighbour[known]].T
        link = other >= 0
        rows_at.append(index[link])
        cols_at.append(other[link])
        weights_at.append(np.full(link.sum(), -weight))
    matrix = sparse.csc_matrix((np.concatenate(weights_at), (np.concatenate(rows_at), np.concatenate(cols_at))),
                               shape=(len(unknown),) * 2)
    solved = linalg.spsolve(matrix, right).reshape(len(unknown), channels)
    out = flat.copy()
    out[:, unknown] = solved.T
    return out.reshape(image.shape)


@_cache.one_call
def road(net_fn, activation_fn, inputs, targets, saliency, *, fractions=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
         order="morf", noise=0.01, seed=0, chunk=DEFAULT_CHUNK, return_curve=False):
    """ROAD score (N,): the mean over `fractions` of p after removal and imputation (module docstring).

    Args:
        net_fn, activation_fn, inputs, targets, saliency, chunk: as in `deletion_auc`.
        fractions: fractions of the pixels removed, each in (0, 1).
        order: "morf" (most relevant first) or "lerf" (least relevant first).
        noise: standard deviation of the Gaussian noise added to the imputed pixels (0: none).
        seed: int seed of that noise.
        return_curve: also return the curve (N, len(fractions)).

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from mindspore import nn
        >>> from xaifn.metrics import road
        >>> net = nn.SequentialCell([nn.Flatten(), nn.Dense(48, 2)])
        >>> x = ms.Tensor(np.random.rand(2, 3, 4, 4), ms.float32)
        >>> score, curve = road(net, nn.Softmax(), x, 1, np.random.rand(2, 1, 4, 4), return_curve=True)
        >>> score.shape, curve.shape
        ((2,), (2, 9))
    """
    inputs, labels, maps, chunk = check_metric_call(net_fn, activation_fn, inputs, targets, saliency, chunk)
    fractions = _checks.check_fractions(fractions)
    order = _checks.check_choice(order, "order", ("morf", "lerf"))
    noise = _checks.check_nonnegative(noise, "noise")
    seed = _checks.check_seed(seed)
    area = maps.shape[1] * maps.shape[2]
    counts = np.clip(np.round(fractions * area).astype(np.int64), 1, area - 1)
    intervals = np.stack([np.zeros_like(counts), counts], 1) if order == "morf" else \
        np.stack([area - counts, np.full_like(counts, area)], 1)
    ranks = pixel_ranks(maps)
    images = inputs.asnumpy()

    def imputed(n0, n1, s0, s1):
        out = np.empty((n1 - n0, s1 - s0) + images.shape[1:], np.float32)
        for n in range(n0, n1):
            for s in range(s0, s1):
                removed = (ranks[n] >= intervals[s, 0]) & (ranks[n] < intervals[s, 1])
                rng = np.random.default_rng([seed, n, s])
                out[n - n0, s - s0] = linear_imputation(images[n], removed) + \
                    noise * rng.standard_normal(images.shape[1:]) * removed
        return out
    curve = probabilities_after_removal(net_fn, activation_fn, inputs, labels, ranks, intervals, chunk,
                                        fill=imputed)
    scores = as_tensor(curve.mean(axis=1))
    return (scores, as_tensor(curve)) if return_curve else scores
