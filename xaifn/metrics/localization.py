"""Localization against a ground-truth region (N, 1, H, W) per sample (non-zero = inside).

    pointing game   (r, c) = argmax S (first in row-major order on ties); 1 if the disc
                    (dr^2 + dc^2) < radius^2 around (r, c), in (row, col) coordinates, meets the region
    IoSR            salient = S > threshold * max S;  count(region AND salient) / max(count(salient), 1e-10)

S is the saliency map averaged over its channels. The original built the pointing-game disc with
`np.meshgrid` in 'xy' indexing, transposed against the (H, W) mask; xaifn uses (row, col).
"""
import numpy as np

from xaifn import _checks
from xaifn.metrics._common import as_tensor


def _check_maps_and_masks(saliency, masks):
    maps = _checks.check_saliency(saliency)
    return maps, _checks.check_region_masks(masks, maps.shape[0], maps.shape[1:])


def pointing_game(saliency, masks, radius=15):
    """1.0 where the saliency peak (or the disc of `radius` around it) meets the region, else 0.0 (N,).

    Args:
        saliency: (N, c, H, W) Tensor or array.
        masks: (N, 1, H, W) Tensor or array, the ground-truth regions (non-zero = inside).
        radius: disc radius in pixels, strict (default 15, as the original); radius 1 is the classic
            pointing game (the peak pixel itself).

    Example:
        >>> import numpy as np
        >>> from xaifn.metrics import pointing_game
        >>> s = np.zeros((2, 1, 8, 8)); s[:, 0, 1, 6] = 1          # peak at row 1, column 6
        >>> m = np.zeros((2, 1, 8, 8)); m[0, 0, :3, 5:] = 1        # sample 0: region around it
        >>> pointing_game(s, m, radius=1)
        Tensor(shape=[2], dtype=Float32, value= [ 1.00000000e+00,  0.00000000e+00])
    """
    maps, regions = _check_maps_and_masks(saliency, masks)
    radius = _checks.check_real(radius, "radius")
    if radius <= 0:
        raise ValueError(f"`radius` must be > 0, got {radius}.")
    n, height, width = maps.shape
    peak = maps.reshape(n, -1).argmax(axis=1)
    rows, cols = np.divmod(peak, width)
    dr = (np.arange(height)[None, :] - rows[:, None]) ** 2                     # (N, H)
    dc = (np.arange(width)[None, :] - cols[:, None]) ** 2                      # (N, W)
    disc = dr[:, :, None] + dc[:, None, :] < radius ** 2
    return as_tensor((disc & regions).any(axis=(1, 2)))


def iosr(saliency, masks, threshold=0.5):
    """Intersection over salient region (N,): count(region AND salient) / count(salient), where
    salient = S > threshold * max S (strict; count(salient) floored at 1e-10), threshold in [0, 1).

    Example:
        >>> import numpy as np
        >>> from xaifn.metrics import iosr
        >>> s = np.zeros((1, 1, 4, 4)); s[0, 0, 0, :] = 1          # salient: the top row
        >>> m = np.zeros((1, 1, 4, 4)); m[0, 0, :, :2] = 1         # region: the left half
        >>> float(iosr(s, m)[0])
        0.5
    """
    maps, regions = _check_maps_and_masks(saliency, masks)
    threshold = _checks.check_real(threshold, "threshold")
    if not 0 <= threshold < 1:
        raise ValueError(f"`threshold` must lie in [0, 1) (a fraction of each map's maximum; at 1 or above "
                         f"no pixel is salient), got {threshold}.")
    salient = maps > threshold * maps.max(axis=(1, 2), keepdims=True)
    overlap = (salient & regions).sum(axis=(1, 2))
    return as_tensor(overlap / np.maximum(salient.sum(axis=(1, 2)), 1e-10))
