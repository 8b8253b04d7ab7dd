"""xaifn.visual: normalisation, colour maps, overlays, PIL conversion and saved grids (numpy only)."""
import io

import numpy as np
import mindspore as ms
import pytest
from PIL import Image

from xaifn import visual

RNG = np.random.default_rng(0)


def _maps(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# normalize
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 1, 5, 7), (2, 4, 6, 9), (4, 6, 9), (6, 9)])
def test_normalize_shape_dtype_and_exact_range(shape):
    out = visual.normalize(_maps(*shape) * 7 + 3)
    assert out.shape == shape and out.dtype == np.float32
    flat = out.reshape(-1, shape[-2] * shape[-1])
    np.testing.assert_array_equal(flat.min(axis=1), 0.0)
    np.testing.assert_array_equal(flat.max(axis=1), 1.0)


def test_normalize_is_per_sample_and_target_min_max():
    maps = _maps(2, 3, 4, 5).astype(np.float64)
    out = visual.normalize(maps)
    low = maps.min(axis=(2, 3), keepdims=True)
    high = maps.max(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(out, (maps - low) / (high - low), rtol=1e-6, atol=1e-7)


def test_normalize_constant_maps_become_zero_without_nan():
    maps = _maps(2, 2, 4, 4)
    maps[0, 1] = 5.0
    maps[1, 0] = 0.0
    out = visual.normalize(maps)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[0, 1], 0.0)
    np.testing.assert_array_equal(out[1, 0], 0.0)
    assert out[0, 0].max() == 1.0 and out[1, 1].max() == 1.0


def test_normalize_accepts_tensors_and_integers():
    maps = _maps(2, 1, 4, 6)
    np.testing.assert_array_equal(visual.normalize(ms.Tensor(maps)), visual.normalize(maps))
    half = visual.normalize(ms.Tensor(maps, ms.float16))
    assert half.dtype == np.float32 and half.min() == 0 and half.max() == 1
    ints = visual.normalize(np.array([[0, 2], [4, 8]], np.int64))
    np.testing.assert_array_equal(ints, [[0, 0.25], [0.5, 1]])


def test_percentile_clipping_rescues_a_map_with_one_outlier():
    maps = RNG.uniform(0, 1, (1, 1, 20, 20))
    maps[0, 0, 3, 4] = 1000.0
    plain = visual.normalize(maps)
    clipped = visual.normalize(maps, clip_percentile=99)
    assert plain[0, 0, 3, 4] == 1.0 and np.median(plain) < 1e-3  # everything else crushed to black
    assert clipped[0, 0, 3, 4] == 1.0 and clipped.min() == 0.0
    assert np.median(clipped) > 0.4                               # the bulk keeps its contrast
    assert np.count_nonzero(clipped == 1.0) >= 4                  # >= 1 % of 400 pixels saturate
    # only the upper tail is clipped: below the percentile the map is a plain affine rescale
    below = maps < np.percentile(maps, 99)
    threshold = np.percentile(maps, 99)
    np.testing.assert_allclose(clipped[below], ((maps - maps.min()) / (threshold - maps.min()))[below],
                               rtol=1e-6)


def test_percentile_100_is_plain_min_max():
    maps = _maps(2, 3, 5, 5)
    np.testing.assert_array_equal(visual.normalize(maps, clip_percentile=100), visual.normalize(maps))


# ------------------------------------------------------------------------------------------------
# colour maps
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, first, last", [
    ("inferno", (0, 0, 4), (252, 255, 164)),
    ("jet", (0, 0, 128), (128, 0, 0)),
    ("gray", (0, 0, 0), (255, 255, 255)),
])
def test_colormap_tables_and_exact_endpoints(name, first, last):
    table = visual.COLORMAPS[name]
    assert table.shape == (256, 3) and table.dtype == np.uint8
    assert tuple(table[0]) == first and tuple(table[-1]) == last
    out = visual.colorize(np.array([[0.0, 1.0, -0.5, 2.0]]), cmap=name)
    assert out.shape == (1, 4, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == first and tuple(out[0, 2]) == first     # clipped below 0
    assert tuple(out[0, 1]) == last and tuple(out[0, 3]) == last       # clipped above 1


def test_inferno_gets_brighter_monotonically():
    luminance = visual.COLORMAPS["inferno"].astype(float) @ [0.299, 0.587, 0.114]
    assert np.all(np.diff(luminance) > -1.0)  # rounding jitter at most
    assert luminance[-1] - luminance[0] > 200


def test_colorize_shapes_and_custom_table():
    assert visual.colorize(np.zeros((2, 3, 5, 7))).shape == (2, 3, 5, 7, 3)
    assert visual.colorize(ms.Tensor(np.ones((4, 6), np.float32))).shape == (4, 6, 3)
    table = visual.make_colormap([(0.0, (10, 20, 30)), (0.5, (0, 0, 0)), (1.0, (200, 100, 50))], size=3)
    np.testing.assert_array_equal(table, [[10, 20, 30], [0, 0, 0], [200, 100, 50]])
    np.testing.assert_array_equal(visual.colorize(np.array([[0.0, 0.5, 1.0]]), cmap=table)[0], table)


# ------------------------------------------------------------------------------------------------
# images and overlays
# ------------------------------------------------------------------------------------------------

def test_to_uint8_image_unit_range_is_kept_and_grey_is_repeated():
    images = RNG.uniform(0, 1, (2, 1, 5, 8)).astype(np.float32)
    out = visual.to_uint8_image(images)
    assert out.shape == (2, 5, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], np.rint(images[:, 0] * 255))
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_to_uint8_image_stretches_out_of_range_images_and_denormalises():
    images = RNG.standard_normal((2, 3, 4, 6)).astype(np.float32)
    out = visual.to_uint8_image(ms.Tensor(images))
    assert out.shape == (2, 4, 6, 3)
    assert [int(out[n].min()) for n in range(2)] == [0, 0]
    assert [int(out[n].max()) for n in range(2)] == [255, 255]
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    original = RNG.uniform(0, 1, (1, 3, 4, 6))
    normalised = (original - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    np.testing.assert_array_equal(visual.to_uint8_image(normalised, mean=mean, std=std),
                                  np.rint(original * 255).transpose(0, 2, 3, 1))


@pytest.mark.parametrize("targets", [1, 3])
def test_overlay_shape_and_alpha_endpoints(targets):
    images = RNG.uniform(0, 1, (2, 3, 6, 11)).astype(np.float32)
    maps = _maps(2, targets, 6, 11)
    out = visual.overlay(images, maps)
    assert out.shape == (2, targets, 6, 11, 3) and out.dtype == np.uint8
    pictures = visual.to_uint8_image(images)
    for l in range(targets):
        np.testing.assert_array_equal(visual.overlay(images, maps, alpha=0)[:, l], pictures)
    np.testing.assert_array_equal(visual.overlay(images, maps, alpha=1.0),
                                  visual.colorize(visual.normalize(maps)))
    np.testing.assert_array_equal(visual.overlay(images, maps, alpha=1, clip_percentile=90, cmap="jet"),
                                  visual.colorize(visual.normalize(maps, 90), cmap="jet"))


def test_overlay_is_the_rounded_blend_and_accepts_uint8_images_and_tensors():
    pictures = RNG.integers(0, 256, (1, 5, 4, 3), dtype=np.uint8)
    maps = _maps(1, 2, 5, 4)
    out = visual.overlay(pictures, ms.Tensor(maps), alpha=0.25)
    heat = visual.colorize(visual.normalize(maps)).astype(float)
    np.testing.assert_array_equal(out, np.rint(0.75 * pictures[:, None] + 0.25 * heat))


def test_non_square_images_keep_height_and_width():
    out = visual.overlay(np.zeros((1, 1, 3, 17)), _maps(1, 2, 3, 17))
    assert out.shape == (1, 2, 3, 17, 3)
    pil = visual.to_pil(out)
    assert len(pil) == 1 and len(pil[0]) == 2 and pil[0][1].size == (17, 3)


# ------------------------------------------------------------------------------------------------
# Pillow
# ------------------------------------------------------------------------------------------------

def test_to_pil_modes_and_nesting():
    rgb = RNG.integers(0, 256, (4, 7, 3), dtype=np.uint8)
    image = visual.to_pil(rgb)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (7, 4)
    np.testing.assert_array_equal(np.asarray(image), rgb)
    assert visual.to_pil(np.zeros((4, 7), np.uint8)).mode == "L"
    batch = visual.to_pil(np.zeros((3, 4, 7, 3), np.uint8))
    assert isinstance(batch, list) and len(batch) == 3 and batch[2].size == (7, 4)


@pytest.mark.parametrize("titles, row_labels", [(None, None), (["a", "b", "c"], None),
                                                (["a", "a title far too long for a cell", "c"],
                                                 ["sample 0", "sample 1"])])
def test_save_grid_writes_png_of_documented_size(tmp_path, titles, row_labels):
    cells = visual.overlay(RNG.uniform(0, 1, (2, 3, 9, 13)), _maps(2, 3, 9, 13))
    path = tmp_path / "grid.png"
    returned = visual.save_grid(str(path), [list(row) for row in cells], titles=titles,
                                row_labels=row_labels)
    pad = visual.GRID_PADDING
    top = visual.GRID_TITLE_HEIGHT if titles else 0
    left = visual.GRID_LABEL_WIDTH if row_labels else 0
    size = (left + 3 * 13 + 4 * pad, top + 2 * 9 + 3 * pad)
    with Image.open(path) as reopened:
        assert reopened.format == "PNG" and reopened.mode == "RGB" and reopened.size == size
        np.testing.assert_array_equal(np.asarray(reopened), np.asarray(returned))
        np.testing.assert_array_equal(  # cell (1, 2) pasted unchanged
            np.asarray(reopened)[top + 2 * pad + 9: top + 2 * pad + 18,
                                 left + 3 * pad + 26: left + 3 * pad + 39], cells[1, 2])
    if titles:  # some dark title pixels in the title band
        assert np.asarray(returned)[:top].min() < 128


def test_save_grid_cell_size_ragged_rows_and_pil_cells():
    buffer = io.BytesIO()
    rows = [[np.zeros((4, 4, 3), np.uint8), Image.new("RGB", (10, 2))], [np.full((3, 5), 200, np.uint8)]]
    image = visual.save_grid(buffer, rows, cell_size=(6, 8))
    assert image.size == (2 * 8 + 3 * 4, 2 * 6 + 3 * 4)
    assert Image.open(io.BytesIO(buffer.getvalue())).size == image.size
    # missing cell (1, 1) is blank white; grey cell (1, 0) was resized to 6 x 8
    array = np.asarray(image)
    assert np.all(array[2 * 4 + 6: 2 * 4 + 12, 2 * 4 + 8: 2 * 4 + 16] == 255)
    assert np.all(array[2 * 4 + 6: 2 * 4 + 12, 4: 12] == 200)
    assert visual.save_grid(io.BytesIO(), rows).size == (2 * 10 + 3 * 4, 2 * 4 + 3 * 4)


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda: visual.normalize([[1.0, 2.0]]), TypeError, "`maps`"),
    (lambda: visual.normalize(np.zeros((2, 2), bool)), TypeError, "`maps`"),
    (lambda: visual.normalize(np.zeros(5)), ValueError, "`maps`"),
    (lambda: visual.normalize(np.zeros((1, 1, 1, 2, 2))), ValueError, "`maps`"),
    (lambda: visual.normalize(np.array([[np.nan, 1.0]])), ValueError, "`maps`"),
    (lambda: visual.normalize(np.zeros((2, 2)), clip_percentile=0), ValueError, "`clip_percentile`"),
    (lambda: visual.normalize(np.zeros((2, 2)), clip_percentile=101), ValueError, "`clip_percentile`"),
    (lambda: visual.normalize(np.zeros((2, 2)), clip_percentile="99"), TypeError, "`clip_percentile`"),
    (lambda: visual.normalize(np.zeros((2, 2)), clip_percentile=True), TypeError, "`clip_percentile`"),
    (lambda: visual.colorize(np.zeros(3)), ValueError, "`maps01`"),
    (lambda: visual.colorize(np.zeros((2, 2)), cmap="viridis"), ValueError, "`cmap`"),
    (lambda: visual.colorize(np.zeros((2, 2)), cmap=np.zeros((4, 3))), ValueError, "`cmap`"),
    (lambda: visual.colorize(np.zeros((2, 2)), cmap=3), TypeError, "`cmap`"),
    (lambda: visual.make_colormap([(0.0, (0, 0, 0)), (0.9, (1, 1, 1))]), ValueError, "`anchors`"),
    (lambda: visual.to_uint8_image(np.zeros((2, 2, 4, 4))), ValueError, "`images`"),
    (lambda: visual.to_uint8_image(np.zeros((3, 4, 4))), ValueError, "`images`"),
    (lambda: visual.to_uint8_image(np.zeros((1, 3, 4, 4)), mean=[0.1, 0.2]), ValueError, "`mean`"),
    (lambda: visual.to_uint8_image(np.zeros((1, 3, 4, 4)), std=0), ValueError, "`std`"),
    (lambda: visual.to_uint8_image(np.zeros((1, 3, 4, 4)), std="a"), TypeError, "`std`"),
    (lambda: visual.overlay(np.zeros((2, 3, 4, 4)), np.zeros((2, 1, 4, 5))), ValueError, "height and width"),
    (lambda: visual.overlay(np.zeros((2, 3, 4, 4)), np.zeros((3, 1, 4, 4))), ValueError, "`maps`"),
    (lambda: visual.overlay(np.zeros((2, 3, 4, 4)), np.zeros((2, 4, 4))), ValueError, "`maps`"),
    (lambda: visual.overlay(np.zeros((2, 4, 4, 4), np.uint8), np.zeros((2, 1, 4, 4))), ValueError, "`images`"),
    (lambda: visual.overlay(np.zeros((1, 3, 4, 4)), np.zeros((1, 1, 4, 4)), alpha=1.5), ValueError, "`alpha`"),
    (lambda: visual.overlay(np.zeros((1, 3, 4, 4)), np.zeros((1, 1, 4, 4)), alpha=-0.1), ValueError, "`alpha`"),
    (lambda: visual.overlay(np.zeros((1, 3, 4, 4)), np.zeros((1, 1, 4, 4)), alpha=None), TypeError, "`alpha`"),
    (lambda: visual.to_pil(np.zeros((4, 4, 3))), TypeError, "`array`"),
    (lambda: visual.to_pil(np.zeros(4, np.uint8)), ValueError, "`array`"),
    (lambda: visual.save_grid(io.BytesIO(), []), TypeError, "`rows`"),
    (lambda: visual.save_grid(io.BytesIO(), [[]]), ValueError, "`rows`"),
    (lambda: visual.save_grid(io.BytesIO(), [[np.zeros((2, 2, 3))]]), ValueError, r"`rows`\[0\]\[0\]"),
    (lambda: visual.save_grid(io.BytesIO(), [["x"]]), TypeError, "`rows`"),
    (lambda: visual.save_grid(io.BytesIO(), [[np.zeros((2, 2, 3), np.uint8)]], titles=["a", "b"]),
     ValueError, "`titles`"),
    (lambda: visual.save_grid(io.BytesIO(), [[np.zeros((2, 2, 3), np.uint8)]], row_labels="a"),
     TypeError, "`row_labels`"),
    (lambda: visual.save_grid(io.BytesIO(), [[np.zeros((2, 2, 3), np.uint8)]], cell_size=(0, 3)),
     ValueError, "`cell_size`"),
    (lambda: visual.save_grid(io.BytesIO(), [[np.zeros((2, 2, 3), np.uint8)]], cell_size=2.5),
     TypeError, "`cell_size`"),
])
def test_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
