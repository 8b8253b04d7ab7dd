"""ROAD, remove and debias (Rong et al., ICML 2022): removal with noisy linear imputation.

For each fraction f, the round(f * H * W) (at least 1, at most H * W - 1) most salient pixels
(MoRF) or least salient ones (LeRF) are removed (ranks by the channel-averaged map, ties by
pixel index) and imputed, in every channel, by the linear system that makes each removed pixel
the weighted mean of its 8 neighbours inside the image (weight 1/6 for the 4 direct neighbours,
1/12 for the diagonal ones), the kept pixels being fixed; Gaussian noise of standard deviation
`noise` is then added to the imputed pixels. This avoids the out-of-distribution edges that
constant removal creates. The noise for sample n at fraction j is drawn (float32 normals) from
`np.random.default_rng([seed, n, j])`, so results do not depend on the chunk.

The curve is p_j = sigma(f(x~_j))[t]; the score is its mean over the fractions: for MoRF lower is
better (the prediction collapses fast), for LeRF higher is better.
"""
import functools

import numpy as np
from scipy import sparse
from scipy.sparse import linalg

from xaifn import _cache, _checks
from xaifn._chunked import DEFAULT_CHUNK
from xaifn.metrics._common import (HOST_THREADS, as_tensor, check_metric_call, host_map, pixel_ranks,
                                   probabilities_after_removal)

#: (row offset, column offset, weight) of the neighbours in the imputation.
NEIGHBOURS = tuple((dr, dc, 1 / 6 if dr == 0 or dc == 0 else 1 / 12)
                   for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))


@functools.lru_cache(maxsize=8)
def dissection_order(height, width):
    """The pixels of an (height, width) grid (row-major indices) in nested-dissection order.

    A region is split across its longer side by a one-pixel line, the two halves ordered first
    (recursively), the line last. Eliminating the unknowns of the imputation in this order keeps
    the fill-in of the factorisation that of a nested dissection of the grid (about n log n for n
    pixels), which SciPy's general orderings miss on these grid systems (2-3x slower at 90 %
    removed, measured)."""
    parts = []

    def split(r0, r1, c0, c1):
        if (r1 - r0) * (c1 - c0) <= 16:
            rows, cols = np.mgrid[r0:r1, c0:c1]
            parts.append((rows * width + cols).reshape(-1))
        elif r1 - r0 >= c1 - c0:
            mid = (r0 + r1) // 2
            split(r0, mid, c0, c1)
            split(mid + 1, r1, c0, c1)
            parts.append(mid * width + np.arange(c0, c1))
        else:
            mid = (c0 + c1) // 2
            split(r0, r1, c0, mid)
            split(r0, r1, mid + 1, c1)
            parts.append(np.arange(r0, r1) * width + mid)
    split(0, height, 0, width)
    return np.concatenate(parts)


#: Most unknowns per factorisation: bounds its memory (its L and U factors hold 35-70 entries per
#: unknown at 32-224 px, measured: about 55 MB at this size) while amortising the per-call cost.
UNKNOWNS_PER_SOLVE = 1 << 16
#: The fewest unknowns worth a factorisation of their own, on a thread of its own.
MIN_GROUP_UNKNOWNS = 4096


def linear_imputation(images, removed):
    """images (..., C, H, W) with the pixels where `removed` (..., H, W; bools, or integers with
    non-zero for removed) is True replaced, in each image, by the solution of its neighbour-mean
    system (module docstring); each image needs at least one kept pixel (ValueError otherwise).

    The systems of many images are assembled at once (numpy, no per-pixel loop) into one
    block-diagonal sparse matrix, symmetric positive definite, with one right-hand side per
    channel; its unknowns are numbered image by image in nested-dissection order
    (`dissection_order`), and one LU factorisation without pivoting (SuperLU, natural order,
    symmetric mode) and one triangular solve serve them all, in float64. Images are grouped, in
    order, so that a factorisation holds at most `UNKNOWNS_PER_SOLVE` unknowns (or one image) and
    the groups, solved on up to `HOST_THREADS` threads (`host_map`), share the unknowns about evenly.
    """
    images, removed = _checked_imputation(images, removed)
    channels, height, width = images.shape[-3:]
    out = images.reshape(-1, channels, height * width).astype(np.float64)          # (B, C, H*W)
    removed = removed.reshape(-1, height * width)
    counts = removed.sum(axis=1)
    ends = np.cumsum(counts)
    share = min(UNKNOWNS_PER_SOLVE, max(MIN_GROUP_UNKNOWNS, -(-int(counts.sum()) // HOST_THREADS)))
    groups, start = [], 0
    while start < len(out):
        stop = max(start + 1, int(np.searchsorted(ends, ends[start] - counts[start] + share, side="right")))
        groups.append(slice(start, stop))
        start = stop
    host_map(lambda group: _impute(out[group], removed[group], height, width), groups)
    return out.reshape(images.shape)


def _checked_imputation(images, removed):
    """(images, removed as bool) after checking `linear_imputation`'s arguments."""
    images, removed = np.asarray(images), np.asarray(removed)
    if not _checks.is_real(images.dtype):
        raise TypeError(f"`images` must hold real numbers, got dtype {images.dtype}.")
    if images.ndim < 3 or removed.shape != images.shape[:-3] + images.shape[-2:]:
        raise ValueError(f"`images` (..., C, H, W) and `removed` (..., H, W) must match, got shapes "
                         f"{images.shape} and {removed.shape}.")
    if removed.dtype != np.bool_ and not np.issubdtype(removed.dtype, np.integer):
        raise TypeError(f"`removed` must hold bools (or integers, non-zero: removed), got dtype {removed.dtype}.")
    removed = removed.astype(bool, copy=False)
    full = np.flatnonzero(removed.reshape(-1, removed.shape[-2] * removed.shape[-1]).all(axis=1))
    if len(full):
        raise ValueError(f"each image needs a kept pixel to impute from; image(s) {full[:10].tolist()} "
                         "(flattened over the leading axes) have every pixel removed.")
    return images, removed


@functools.lru_cache(maxsize=8)
def _grid(height, width):
    """(inside, diagonal): whether each pixel of the grid padded by one pixel is in the image (flat
    (H + 2) * (W + 2) bool), and the sum of the weights of each pixel's neighbours inside the image
    (flat H * W: its diagonal entry)."""
    inside = np.pad(np.ones((height, width), bool), 1)
    diagonal = sum(weight * inside[1 + dr:height + 1 + dr, 1 + dc:width + 1 + dc] for dr, dc, weight in NEIGHBOURS)
    return inside.reshape(-1), diagonal.reshape(-1)


def _impute(flat, removed, height, width):
    """Solve, in place in flat (B, C, H * W), for the pixels where `removed` (B, H * W, bool) is
    True: the block-diagonal system of `linear_imputation`, unknowns numbered image by image in
    dissection order.

    Through a grid of unknown numbers padded by one pixel (-1: kept, or outside the image), each
    unknown's 8 neighbours are read at fixed offsets: a neighbouring unknown gives its matrix entry
    (-weight), a kept pixel inside the image adds weight x its value to the right-hand side. The
    work on floats grows with the unknowns, not with the images (at 1 % removed, 3x faster than
    shifted adds over whole images; 5-9 % slower at ROAD's fractions, measured)."""
    images, channels = flat.shape[:2]
    order = dissection_order(height, width)
    batch, position = np.nonzero(removed[:, order])
    count = len(batch)
    if not count:
        return
    pixel = order[position]
    rows, cols = np.divmod(pixel, width)
    numbers = np.full((images, height + 2, width + 2), -1)
    numbers[batch, rows + 1, cols + 1] = np.arange(count)
    inside, diagonal = _grid(height, width)
    at = (rows + 1) * (width + 2) + cols + 1                      # in the padded grid
    image_at = batch * inside.size + at
    columns, right = [], np.zeros((count, channels))
    for dr, dc, weight in NEIGHBOURS:
        offset = dr * (width + 2) + dc
        neighbour = numbers.reshape(-1)[image_at + offset]
        columns.append(neighbour)
        kept = np.flatnonzero((neighbour < 0) & inside[at + offset])
        right[kept] += weight * flat[batch[kept], :, pixel[kept] + dr * width + dc]
    entries = np.stack(columns + [np.arange(count)], axis=1)                         # (count, 9)
    values = np.empty(entries.shape)
    values[:, :-1] = [-weight for _, _, weight in NEIGHBOURS]
    values[:, -1] = diagonal[pixel]
    linked = entries >= 0
    starts = np.concatenate([[0], np.cumsum(linked.sum(axis=1))])
    matrix = sparse.csc_matrix((values[linked], entries[linked], starts), shape=(count, count))
    factor = linalg.splu(matrix, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    flat[batch, :, pixel] = factor.solve(right)


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
    inputs, labels, maps, chunk = check_metric_call(net_fn, activation_fn, inputs, targets, saliency, chunk,
                                                    return_curve)
    fractions = _checks.check_fractions(fractions)
    order = _checks.check_choice(order, "order", ("morf", "lerf"))
    noise = _checks.check_nonnegative(noise, "noise")
    seed = _checks.check_seed(seed)
    area = maps.shape[1] * maps.shape[2]
    if area < 2:
        raise ValueError(f"ROAD removes part of each image and keeps the rest: it needs images of at least 2 "
                         f"pixels, got {maps.shape[1]} x {maps.shape[2]}.")
    counts = np.clip(np.round(fractions * area).astype(np.int64), 1, area - 1)
    intervals = np.stack([np.zeros_like(counts), counts], 1) if order == "morf" else \
        np.stack([area - counts, np.full_like(counts, area)], 1)
    ranks = pixel_ranks(maps)
    images = inputs.asnumpy()

    def imputed(n0, n1, s0, s1):
        removed = (ranks[n0:n1, None] >= intervals[s0:s1, 0, None, None]) & \
            (ranks[n0:n1, None] < intervals[s0:s1, 1, None, None])                 # (n, s, H, W)
        filled = linear_imputation(np.broadcast_to(images[n0:n1, None], removed.shape[:2] + images.shape[1:]),
                                   removed).astype(np.float32)
        if noise:
            draws = np.stack([np.stack([np.random.default_rng([seed, n, s]).standard_normal(images.shape[1:],
                                                                                           dtype=np.float32)
                                        for s in range(s0, s1)]) for n in range(n0, n1)])
            filled += np.float32(noise) * draws * removed[:, :, None]
        return filled
    curve = probabilities_after_removal(net_fn, activation_fn, inputs, labels, ranks, intervals, chunk,
                                        fill=imputed)
    scores = as_tensor(curve.mean(axis=1))
    return (scores, as_tensor(curve)) if return_curve else scores
