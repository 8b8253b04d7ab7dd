"""Masks as data: RISE's random masks and Occlusion's sliding windows.

Both are lazy (K, 1, H, W) float32 mask sets: indexing with a slice renders just those masks, so
a perturbation method can stream thousands of them chunk by chunk. `np.asarray(masks)` renders
them all. Randomness comes only from `np.random.default_rng(seed)`.
"""
import abc
import math

import numpy as np

from xaifn import _checks

#: Masks upsampled at once when rendering: bounds the float64 temporaries (not the result).
_RENDER_BLOCK = 32


def _bilinear_matrix(size_in, size_out):
    """(size_out, size_in) matrix of float bilinear interpolation with half-pixel centres."""
    centres = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    centres = np.clip(centres, 0, size_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = centres - low
    matrix = np.zeros((size_out, size_in))
    np.add.at(matrix, (np.arange(size_out), low), 1 - frac)
    np.add.at(matrix, (np.arange(size_out), high), frac)
    return matrix


class _MaskSet(abc.ABC):
    """Base of the lazy mask sets: shape (K, 1, H, W), slicing renders float32 masks."""

    def __init__(self, count, size):
        self.shape = (count, 1) + tuple(size)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError("mask sets are indexed with slices, e.g. masks[0:32].")
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise ValueError("mask sets are indexed with contiguous slices.")
        return self._render(start, max(start, stop))

    def __array__(self, dtype=None):
        masks = self[:]
        return masks if dtype is None else masks.astype(dtype)

    @abc.abstractmethod
    def _render(self, start, stop):
        """Masks start..stop-1 as a float32 array."""


class RiseMasks(_MaskSet):
    """The RISE paper's random masks, rendered on demand (Petsiuk et al., 2018).

    A binary grid x grid pattern keeps each cell with probability `keep_prob`; it is upsampled by
    float bilinear interpolation to (grid + 1) * ceil(H / grid) x (grid + 1) * ceil(W / grid) and
    cropped to H x W at a random offset in [0, ceil(H / grid)) x [0, ceil(W / grid)). The grids and
    offsets of all masks are drawn up front from `np.random.default_rng(seed)` (a few bytes each);
    the masks themselves are rendered slice by slice.

    Example:
        >>> from xaifn import RiseMasks
        >>> masks = RiseMasks(seed=0, num_masks=6000, size=(32, 32))
        >>> masks.shape, masks[:4].shape, float(masks[:4].max()) <= 1.0
        ((6000, 1, 32, 32), (4, 1, 32, 32), True)
    """

    def __init__(self, seed, num_masks, size, grid=10, keep_prob=0.5):
        num_masks = _checks.check_positive_int(num_masks, "num_masks")
        height, width = _checks.check_size(size, "size")
        grid = _checks.check_positive_int(grid, "grid")
        keep_prob = _checks.check_probability(keep_prob, "keep_prob")
        _checks.check_seed(seed)
        super().__init__(num_masks, (height, width))
        cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
        rng = np.random.default_rng(seed)
        self._grids = rng.random((num_masks, grid, grid)) < keep_prob
        self._offsets = np.stack([rng.integers(0, cell_h, num_masks),
                                  rng.integers(0, cell_w, num_masks)], axis=1)
        self._up_h = _bilinear_matrix(grid, (grid + 1) * cell_h)
        self._up_w = _bilinear_matrix(grid, (grid + 1) * cell_w)

    def _render(self, start, stop):
        height, width = self.shape[2:]
        masks = np.empty((stop - start, 1, height, width), np.float32)
        for first in range(start, stop, _RENDER_BLOCK):  # the float64 upsampled grids, a block at a time
            last = min(stop, first + _RENDER_BLOCK)
            up = self._up_h @ self._grids[first:last].astype(np.float64) @ self._up_w.T  # (k, H', W')
            for i, (top, left) in enumerate(self._offsets[first:last]):
                masks[first - start + i, 0] = up[i, top:top + height, left:left + width]
        return masks


def rise_masks(seed, num_masks, size, grid=10, keep_prob=0.5):
    """All `num_masks` RISE masks as a float32 array (K, 1, H, W) in [0, 1]; see `RiseMasks`.

    Example:
        >>> import numpy as np
        >>> from xaifn import rise_masks
        >>> a = rise_masks(seed=7, num_masks=100, size=(32, 32))
        >>> a.shape, bool(np.array_equal(a, rise_masks(7, 100, (32, 32))))
        ((100, 1, 32, 32), True)
    """
    return np.asarray(RiseMasks(seed, num_masks, size, grid, keep_prob))


class OcclusionWindows(_MaskSet):
    """Occlusion's sliding windows as masks: 1 inside the window (occluded), 0 elsewhere.

    Windows of `window` (kh, kw) pixels step by `stride` (sh, sw) over an H x W image, spanning all
    channels, and only windows that fit inside the image are used.

    Example:
        >>> from xaifn import OcclusionWindows
        >>> w = OcclusionWindows((8, 8), window=(3, 3), stride=(1, 1))
        >>> len(w), int(w[0:1].sum())
        (36, 9)
    """

    def __init__(self, size, window, stride):
        super().__init__(0, size)
        height, width = self.shape[2:]
        (kh, kw), (sh, sw) = window, stride
        tops, lefts = np.arange(0, height - kh + 1, sh), np.arange(0, width - kw + 1, sw)
        self._corners = [(t, l) for t in tops for l in lefts]
        self._window = (kh, kw)
        self.shape = (len(self._corners), 1, height, width)
        rows, cols = np.zeros(height, np.int64), np.zeros(width, np.int64)
        for top in tops:
            rows[top:top + kh] += 1
        for left in lefts:
            cols[left:left + kw] += 1
        #: (H, W) number of windows covering each pixel (the sum of all masks)
        self.coverage = np.outer(rows, cols)

    def _render(self, start, stop):
        kh, kw = self._window
        masks = np.zeros((stop - start,) + self.shape[1:], np.float32)
        for i, (top, left) in enumerate(self._corners[start:stop]):
            masks[i, 0, top:top + kh, left:left + kw] = 1
        return masks
