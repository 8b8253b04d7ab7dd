"""RISE masks and Occlusion windows as data: the paper's recipe, seeds, laziness, ranges.

No network is involved: these tests are pure numpy and fast.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import xaifn

SETTINGS = settings(max_examples=8, deadline=None)
SEEDS = st.integers(0, 2**63)


def bilinear_matrix(size_in, size_out):
    """(size_out, size_in) float bilinear interpolation, half-pixel centres, clamped at the borders
    (align_corners=False), written independently of xaifn.masks."""
    matrix = np.zeros((size_out, size_in))
    for o in range(size_out):
        centre = min(max((o + 0.5) * size_in / size_out - 0.5, 0.0), size_in - 1.0)
        low = int(math.floor(centre))
        high = min(low + 1, size_in - 1)
        matrix[o, low] += 1 - (centre - low)
        matrix[o, high] += centre - low
    return matrix


def recover_grid(mask, grid, size):
    """Find a binary grid x grid pattern and a crop offset that reproduce `mask` (H, W) by the RISE
    recipe: bilinear upsampling to (grid + 1) * ceil(H / grid) x (grid + 1) * ceil(W / grid), then an
    H x W crop at an offset in [0, ceil(H / grid)) x [0, ceil(W / grid)).

    Returns (max reconstruction error, grid, top, left) for the best offset.
    """
    height, width = size
    cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
    up_h = bilinear_matrix(grid, (grid + 1) * cell_h)
    up_w = bilinear_matrix(grid, (grid + 1) * cell_w)
    best = None
    for top in range(cell_h):
        for left in range(cell_w):
            rows, cols = up_h[top:top + height], up_w[left:left + width]
            pattern = np.round(np.linalg.pinv(rows) @ mask @ np.linalg.pinv(cols).T)
            error = np.abs(rows @ pattern @ cols.T - mask).max()
            if best is None or error < best[0]:
                best = (error, pattern, top, left)
    return best


# --------------------------------------------------------------------------------------------
# rise_masks / RiseMasks
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, grid", [((20, 20), 10), ((13, 29), 4), ((32, 32), 10), ((7, 5), 3),
                                        ((29, 13), 5)])
def test_masks_follow_the_rise_recipe(size, grid):
    """Each mask is an H x W crop of a bilinearly upsampled binary grid (non-square included)."""
    masks = xaifn.rise_masks(seed=3, num_masks=40, size=size, grid=grid)
    assert masks.shape == (40, 1) + size
    assert masks.dtype == np.float32
    cell = (math.ceil(size[0] / grid), math.ceil(size[1] / grid))
    offsets, patterns = set(), []
    for mask in masks:
        error, pattern, top, left = recover_grid(mask[0].astype(np.float64), grid, size)
        assert error < 1e-6, error
        assert set(np.unique(pattern)) <= {0.0, 1.0}
        offsets.add((top, left))
        patterns.append(pattern)
    # random crop offsets: more than one is used when there is room for more
    assert len(offsets) > 1 or cell == (1, 1)
    assert 0.3 < np.mean(patterns) < 0.7


def test_masks_are_not_binarised():
    """Float bilinear interpolation: values strictly between 0 and 1 occur (not nearest/8-bit)."""
    masks = xaifn.rise_masks(seed=0, num_masks=20, size=(32, 32))
    inner = (masks > 0) & (masks < 1)
    assert inner.mean() > 0.3
    # not quantised to 1/255 either
    assert not np.allclose(masks * 255, np.round(masks * 255), atol=1e-3)


@settings(max_examples=6, deadline=None)
@given(seed=SEEDS, keep_prob=st.sampled_from([0.1, 0.3, 0.5, 0.8]), grid=st.sampled_from([3, 7, 10]))
def test_masks_lie_in_unit_interval_with_mean_keep_prob(seed, keep_prob, grid):
    masks = xaifn.rise_masks(seed, 2000, (16, 12), grid=grid, keep_prob=keep_prob)
    assert masks.shape == (2000, 1, 16, 12)
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    assert abs(float(masks.mean(dtype=np.float64)) - keep_prob) < 0.03


def test_keep_prob_one_gives_all_ones():
    masks = xaifn.rise_masks(seed=5, num_masks=30, size=(11, 17), grid=4, keep_prob=1.0)
    np.testing.assert_array_equal(masks, np.ones_like(masks))


def test_defaults_are_grid_10_and_keep_prob_half():
    np.testing.assert_array_equal(xaifn.rise_masks(9, 20, (24, 24)),
                                  xaifn.rise_masks(9, 20, (24, 24), grid=10, keep_prob=0.5))
    assert not np.array_equal(xaifn.rise_masks(9, 20, (24, 24)),
                              xaifn.rise_masks(9, 20, (24, 24), grid=8))


def test_int_size_means_square():
    np.testing.assert_array_equal(xaifn.rise_masks(2, 10, 12), xaifn.rise_masks(2, 10, (12, 12)))


@SETTINGS
@given(seed=SEEDS)
def test_same_seed_gives_bit_identical_masks(seed):
    a = xaifn.rise_masks(seed, 25, (9, 14))
    b = xaifn.rise_masks(seed, 25, (9, 14))
    assert a.tobytes() == b.tobytes()


@SETTINGS
@given(seeds=st.lists(SEEDS, min_size=2, max_size=2, unique=True))
def test_different_seeds_give_different_masks(seeds):
    a = xaifn.rise_masks(seeds[0], 25, (9, 14))
    b = xaifn.rise_masks(seeds[1], 25, (9, 14))
    assert not np.array_equal(a, b)
    # and the masks within one set differ from each other
    assert len({m.tobytes() for m in a}) == len(a)


def test_masks_do_not_touch_the_global_rng():
    state = np.random.get_state()
    xaifn.rise_masks(1, 10, (8, 8))
    xaifn.RiseMasks(2, 10, (8, 8))[:5]
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    np.random.seed(0)
    a = xaifn.rise_masks(1, 10, (8, 8))
    np.random.seed(1)
    np.testing.assert_array_equal(xaifn.rise_masks(1, 10, (8, 8)), a)


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, start=st.integers(-70, 70), stop=st.one_of(st.none(), st.integers(-70, 70)))
def test_lazy_slices_equal_eager_slices(seed, start, stop):
    lazy = xaifn.RiseMasks(seed, 60, (10, 13), grid=4, keep_prob=0.4)
    eager = xaifn.rise_masks(seed, 60, (10, 13), grid=4, keep_prob=0.4)
    got = lazy[start:stop]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, eager[start:stop])
    assert got.shape == eager[start:stop].shape


def test_lazy_masks_shape_len_and_array():
    lazy = xaifn.RiseMasks(seed=4, num_masks=33, size=(6, 10))
    assert lazy.shape == (33, 1, 6, 10)
    assert len(lazy) == 33
    full = np.asarray(lazy)
    np.testing.assert_array_equal(full, xaifn.rise_masks(4, 33, (6, 10)))
    assert np.asarray(lazy, dtype=np.float64).dtype == np.float64
    # rendering a slice twice gives the same masks (nothing is consumed)
    np.testing.assert_array_equal(lazy[3:9], lazy[3:9])
    np.testing.assert_array_equal(np.concatenate([lazy[:10], lazy[10:]]), full)


def test_lazy_masks_reject_non_slice_indexing():
    lazy = xaifn.RiseMasks(seed=4, num_masks=10, size=(6, 6))
    with pytest.raises(TypeError, match="slice"):
        lazy[3]  # pylint: disable=pointless-statement
    with pytest.raises(ValueError, match="contiguous"):
        lazy[::2]  # pylint: disable=pointless-statement


# --------------------------------------------------------------------------------------------
# OcclusionWindows
# --------------------------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), data=st.data())
def test_occlusion_windows(h, w, data):
    kh, kw = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
    sh, sw = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
    windows = xaifn.OcclusionWindows((h, w), window=(kh, kw), stride=(sh, sw))
    corners = [(t, l) for t in range(0, h - kh + 1, sh) for l in range(0, w - kw + 1, sw)]
    assert len(windows) == len(corners) == ((h - kh) // sh + 1) * ((w - kw) // sw + 1)
    masks = np.asarray(windows)
    assert masks.shape == (len(corners), 1, h, w)
    assert masks.dtype == np.float32
    expected = np.zeros_like(masks)
    for i, (t, l) in enumerate(corners):
        expected[i, 0, t:t + kh, l:l + kw] = 1
    np.testing.assert_array_equal(masks, expected)
    np.testing.assert_array_equal(windows.coverage, expected.sum(axis=(0, 1)))
    np.testing.assert_array_equal(windows[1:3], expected[1:3])
