"""Saliency pictures: normalise maps, colour them, overlay them on the inputs, save a grid.

Pure numpy + Pillow (no matplotlib). Every function accepts mindspore Tensors or numpy arrays and
works on the (N, 1, H, W) / (N, l, H, W) results of the explanation methods::

    normalize(maps)          float32 in [0, 1], per (sample, target) min-max over H x W
    colorize(maps01)         uint8 (..., H, W, 3) through a package colour map
    to_uint8_image(images)   uint8 (N, H, W, 3) from float (N, C, H, W) inputs
    overlay(images, maps)    uint8 (N, l, H, W, 3) alpha blend of heat map over image
    to_pil(array)            PIL images
    save_grid(path, rows)    one PNG of a titled grid of pictures
    plot_curves(path, curves)  a line chart (e.g. deletion / insertion curves of xaifn.metrics)
    resize_map(map, size)    one (h, w) map resampled (bilinear) to an image's own (H, W)
    captioned(picture, text) a picture with a line of text above it

Colour maps (`COLORMAPS`, 256 x 3 uint8 tables, linear interpolation between anchor colours):

* ``"inferno"`` (default): perceptually uniform black-purple-orange-yellow, the 10 evenly spaced
  anchors of matplotlib's *inferno*; 0 -> (0, 0, 4) (near black), 1 -> (252, 255, 164) (pale
  yellow).
* ``"jet"``: the classic rainbow, 0 -> (0, 0, 128) (dark blue), 1 -> (128, 0, 0) (dark red).
* ``"gray"``: 0 -> (0, 0, 0), 1 -> (255, 255, 255).
"""
import numbers

import numpy as np
import mindspore as ms
from PIL import Image, ImageDraw, ImageFont

__all__ = ["COLORMAPS", "make_colormap", "normalize", "colorize", "to_uint8_image", "overlay",
           "to_pil", "save_grid", "plot_curves", "CURVE_COLORS", "resize_map", "captioned"]

# (position in [0, 1], (R, G, B)) anchors; positions increase from exactly 0 to exactly 1.
_INFERNO_ANCHORS = tuple(zip(np.linspace(0.0, 1.0, 10), (
    (0, 0, 4), (27, 12, 65), (74, 12, 107), (120, 28, 109), (165, 44, 96),
    (207, 68, 70), (237, 105, 37), (251, 155, 6), (247, 209, 61), (252, 255, 164))))
_JET_ANCHORS = ((0.0, (0, 0, 128)), (0.125, (0, 0, 255)), (0.375, (0, 255, 255)),
                (0.625, (255, 255, 0)), (0.875, (255, 0, 0)), (1.0, (128, 0, 0)))
_GRAY_ANCHORS = ((0.0, (0, 0, 0)), (1.0, (255, 255, 255)))

# save_grid layout constants (pixels); see `save_grid` for the size formula.
GRID_PADDING = 4
GRID_TITLE_HEIGHT = 16
GRID_LABEL_WIDTH = 72


def make_colormap(anchors, size=256):
    """A (size, 3) uint8 colour table interpolated linearly between (position, (R, G, B)) anchors.

    Positions must increase strictly from 0 to 1; entry 0 is the first anchor colour and entry
    size-1 the last one, exactly.

    Example:
        >>> from xaifn import visual
        >>> lut = visual.make_colormap([(0.0, (0, 0, 0)), (1.0, (255, 0, 10))])
        >>> lut.shape, lut.dtype, lut[0].tolist(), lut[-1].tolist(), lut[51].tolist()
        ((256, 3), dtype('uint8'), [0, 0, 0], [255, 0, 10], [51, 0, 2])
    """
    positions = np.asarray([float(p) for p, _ in anchors], np.float64)
    colours = np.asarray([c for _, c in anchors], np.float64)
    if (len(positions) < 2 or colours.shape != (len(positions), 3) or positions[0] != 0
            or positions[-1] != 1 or np.any(np.diff(positions) <= 0)):
        raise ValueError("`anchors` must be at least two (position, (R, G, B)) pairs with positions "
                         "increasing strictly from 0 to 1.")
    if np.any(colours < 0) or np.any(colours > 255):
        raise ValueError("`anchors` colours must have components in [0, 255].")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 2:
        raise ValueError(f"`size` must be an int >= 2, got {size!r}.")
    grid = np.linspace(0.0, 1.0, int(size))
    table = np.stack([np.interp(grid, positions, colours[:, k]) for k in range(3)], axis=-1)
    return np.rint(table).astype(np.uint8)


COLORMAPS = {
    "inferno": make_colormap(_INFERNO_ANCHORS),
    "jet": make_colormap(_JET_ANCHORS),
    "gray": make_colormap(_GRAY_ANCHORS),
}
for _table in COLORMAPS.values():
    _table.setflags(write=False)


# ------------------------------------------------------------------------------------------------
# checks
# ------------------------------------------------------------------------------------------------

def _as_array(value, name):
    """numpy view of a mindspore Tensor or numpy array of real numbers (bool refused)."""
    if isinstance(value, ms.Tensor):
        if value.dtype in (ms.float16, ms.bfloat16):
            value = value.astype(ms.float32)
        value = value.asnumpy()
    elif not isinstance(value, np.ndarray):
        raise TypeError(f"`{name}` must be a mindspore.Tensor or a numpy.ndarray, "
                        f"got {type(value).__name__}.")
    if value.dtype == np.bool_ or not (np.issubdtype(value.dtype, np.integer)
                                       or np.issubdtype(value.dtype, np.floating)):
        raise TypeError(f"`{name}` must hold real numbers (an integer or float dtype), got {value.dtype}.")
    if value.size == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {value.shape}.")
    return value


def _finite(array, name):
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must hold finite values only (no NaN or inf).")
    return array


def _check_percentile(clip_percentile):
    if clip_percentile is None:
        return None
    if isinstance(clip_percentile, bool) or not isinstance(clip_percentile, numbers.Real):
        raise TypeError("`clip_percentile` must be None or a real number in (0, 100], "
                        f"got {type(clip_percentile).__name__}.")
    if not 0 < clip_percentile <= 100:
        raise ValueError(f"`clip_percentile` must lie in (0, 100], got {clip_percentile}.")
    return float(clip_percentile)


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"`alpha` must be a real number in [0, 1], got {type(alpha).__name__}.")
    if not 0 <= alpha <= 1:
        raise ValueError(f"`alpha` must lie in [0, 1], got {alpha}.")
    return float(alpha)


def _colormap(cmap):
    if isinstance(cmap, str):
        if cmap not in COLORMAPS:
            raise ValueError(f"`cmap` must be one of {sorted(COLORMAPS)} or a (K, 3) uint8 table, "
                             f"got {cmap!r}.")
        return COLORMAPS[cmap]
    if isinstance(cmap, np.ndarray):
        if cmap.dtype != np.uint8 or cmap.ndim != 2 or cmap.shape[1] != 3 or cmap.shape[0] < 2:
            raise ValueError("`cmap` given as an array must be a (K, 3) uint8 table with K >= 2, "
                             f"got {cmap.dtype} {cmap.shape}.")
        return cmap
    raise TypeError(f"`cmap` must be a colour-map name or a (K, 3) uint8 numpy table, "
                    f"got {type(cmap).__name__}.")


def _check_cell_size(cell_size):
    pair = (cell_size, cell_size) if isinstance(cell_size, numbers.Integral) else cell_size
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in pair)):
        raise TypeError("`cell_size` must be None, a positive int or a pair (height, width) of them, "
                        f"got {cell_size!r}.")
    if min(pair) < 1:
        raise ValueError(f"`cell_size` must be positive, got {cell_size!r}.")
    return int(pair[0]), int(pair[1])


# ------------------------------------------------------------------------------------------------
# maps -> colours
# ------------------------------------------------------------------------------------------------

def normalize(maps, clip_percentile=None):
    """Scale each H x W map to [0, 1] by min-max: float32, same shape as `maps`.

    `maps` is (H, W), (l, H, W) or (N, l, H, W); every trailing H x W map is scaled on its own, so
    each non-constant map has minimum exactly 0 and maximum exactly 1, and a constant map becomes
    all zeros (never NaN). With `clip_percentile=p` in (0, 100], the values of each map above its
    p-th percentile (`np.percentile`, linear interpolation) are first set to it: only the upper
    tail is clipped, since saliency outliers are a few very bright pixels while the low end is the
    background that should stay the zero of the scale. p = 100 clips nothing.

    Example:
        >>> import numpy as np
        >>> from xaifn import visual
        >>> visual.normalize(np.array([[1.0, 3.0], [2.0, 5.0]])).tolist()
        [[0.0, 0.5], [0.25, 1.0]]
        >>> visual.normalize(np.array([[0.0, 1.0], [3.0, 100.0]]), clip_percentile=50).tolist()
        [[0.0, 0.5], [1.0, 1.0]]
    """
    array = _finite(_as_array(maps, "maps"), "maps")
    if not 2 <= array.ndim <= 4:
        raise ValueError(f"`maps` must have shape (H, W), (l, H, W) or (N, l, H, W), got shape {array.shape}.")
    p = _check_percentile(clip_percentile)
    values = array.astype(np.float64)
    if p is not None and p < 100:
        values = np.minimum(values, np.percentile(values, p, axis=(-2, -1), keepdims=True))
    low = values.min(axis=(-2, -1), keepdims=True)
    span = values.max(axis=(-2, -1), keepdims=True) - low
    scaled = np.divide(values - low, span, out=np.zeros_like(values), where=span > 0)
    return scaled.astype(np.float32)


def colorize(maps01, cmap="inferno"):
    """Colour maps with values in [0, 1]: uint8 array of shape maps01.shape + (3,).

    Value v takes entry round(v * (K - 1)) of the K-entry colour table, so 0 maps exactly to the
    colour map's first anchor and 1 to its last; values outside [0, 1] are clipped to it. `cmap` is
    a name from `COLORMAPS` ("inferno", "jet", "gray") or a (K, 3) uint8 table.

    Example:
        >>> import numpy as np
        >>> from xaifn import visual
        >>> visual.colorize(np.array([[0.0, 1.0]])).tolist()
        [[[0, 0, 4], [252, 255, 164]]]
        >>> visual.colorize(np.zeros((2, 1, 5, 7)), cmap="jet").shape
        (2, 1, 5, 7, 3)
    """
    table = _colormap(cmap)
    array = _finite(_as_array(maps01, "maps01"), "maps01")
    if array.ndim < 2:
        raise ValueError(f"`maps01` must have shape (..., H, W), got shape {array.shape}.")
    index = np.rint(np.clip(array.astype(np.float64), 0.0, 1.0) * (len(table) - 1)).astype(np.intp)
    return table[index]


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------

def _channel_vector(value, channels, name):
    """None, or a (1, C, 1, 1) float64 array from a number or one number per channel."""
    if value is None:
        return None
    if isinstance(value, (ms.Tensor, np.ndarray)):
        vector = _as_array(value, name).astype(np.float64)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        vector = np.array([value], np.float64)
    elif isinstance(value, (list, tuple)) and value and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        vector = np.array(value, np.float64)
    else:
        raise TypeError(f"`{name}` must be None, a number or a sequence of numbers (one per channel), "
                        f"got {value!r}.")
    vector = vector.reshape(-1)
    if vector.size not in (1, channels) or not np.all(np.isfinite(vector)):
        raise ValueError(f"`{name}` must be one finite number or {channels} of them (one per channel), "
                         f"got {value!r}.")
    return vector.reshape(1, -1, 1, 1)


def to_uint8_image(images, mean=None, std=None):
    """Displayable uint8 (N, H, W, 3) pictures from float input batches (N, C, H, W), C = 1 or 3.

    First de-normalised as x * std + mean when `mean` / `std` are given (a number or one per
    channel). Then, per image: if all its values lie in [0, 1] they are kept as intensities
    (round(255 x), no stretching); otherwise the image is min-max stretched to [0, 1] over all its
    channels together (keeping the colour balance; a constant image becomes black). One-channel
    images are repeated to grey RGB.

    Example:
        >>> import numpy as np
        >>> from xaifn import visual
        >>> x = np.full((2, 1, 3, 4), 0.5, np.float32)
        >>> out = visual.to_uint8_image(x)
        >>> out.shape, out.dtype, out[0, 0, 0].tolist()
        ((2, 3, 4, 3), dtype('uint8'), [128, 128, 128])
        >>> visual.to_uint8_image(np.zeros((1, 3, 2, 2)), mean=[0.485, 0.456, 0.406], std=0.2)[0, 0, 0].tolist()
        [124, 116, 104]
    """
    array = _finite(_as_array(images, "images"), "images")
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise ValueError(f"`images` must have shape (N, C, H, W) with C = 1 or 3, got shape {array.shape}.")
    channels = array.shape[1]
    # float64 images in float64, any other in float32 (3x less CPU than float64 for a batch of
    # pictures; a pixel may round to the next level); a copy: the steps below work in place
    precision = np.float64 if array.dtype == np.float64 else np.float32
    values = array.astype(precision)
    std_v, mean_v = _channel_vector(std, channels, "std"), _channel_vector(mean, channels, "mean")
    if std_v is not None:
        if np.any(std_v == 0):
            raise ValueError(f"`std` must be non-zero, got {std!r}.")
        values *= std_v.astype(precision)
    if mean_v is not None:
        values += mean_v.astype(precision)
    low = values.min(axis=(1, 2, 3), keepdims=True)
    high = values.max(axis=(1, 2, 3), keepdims=True)
    in_unit = (low >= 0) & (high <= 1)
    # kept images: 255 (x - 0); stretched ones: 255 (x - low) / span; constant ones: 255 (x - low) = 0
    values -= np.where(in_unit, 0, low).astype(precision)
    values *= np.where(in_unit | (high == low), 255, 255 / np.where(high == low, 1, high - low)).astype(precision)
    pixels = np.rint(values, out=values).astype(np.uint8).transpose(0, 2, 3, 1)
    return np.repeat(pixels, 3, axis=-1) if channels == 1 else pixels


def overlay(images, maps, alpha=0.5, clip_percentile=None, cmap="inferno"):
    """Heat maps blended over their images: uint8 (N, l, H, W, 3).

    pixel = round((1 - alpha) * image + alpha * colorize(normalize(maps, clip_percentile), cmap)),
    so alpha = 0 gives the image and alpha = 1 the coloured map, exactly.

    Args:
        images: float (N, C, H, W) input batch, C = 1 or 3 (converted by `to_uint8_image` without
            de-normalisation), or a uint8 (N, H, W, 3) array such as `to_uint8_image` returns
            (use this to de-normalise with mean / std first).
        maps: (N, l, H, W) explanation maps, e.g. (N, 1, H, W) for one target per sample; each
            of the l maps of a sample is overlaid on the same image.
        alpha: heat-map opacity in [0, 1].
        clip_percentile, cmap: as in `normalize` and `colorize`.

    Example:
        >>> import numpy as np
        >>> from xaifn import visual
        >>> images, maps = np.random.rand(2, 3, 6, 9), np.random.rand(2, 4, 6, 9)
        >>> out = visual.overlay(images, maps, alpha=0.4)
        >>> out.shape, out.dtype
        ((2, 4, 6, 9, 3), dtype('uint8'))
    """
    alpha = _check_alpha(alpha)
    image_array = _as_array(images, "images")
    if image_array.dtype == np.uint8:
        if image_array.ndim != 4 or image_array.shape[-1] != 3:
            raise ValueError("`images` given as uint8 must have shape (N, H, W, 3), "
                             f"got shape {image_array.shape}.")
        pictures = image_array
    else:
        pictures = to_uint8_image(image_array)
    map_array = _as_array(maps, "maps")
    if map_array.ndim != 4:
        raise ValueError(f"`maps` must have shape (N, l, H, W), got shape {map_array.shape}.")
    if map_array.shape[0] != pictures.shape[0]:
        raise ValueError(f"`maps` must hold one set of maps per image: {map_array.shape[0]} map sets "
                         f"for {pictures.shape[0]} images.")
    if map_array.shape[2:] != pictures.shape[1:3]:
        raise ValueError(f"`maps` and `images` must have the same height and width: maps "
                         f"{map_array.shape[2:]} vs images {pictures.shape[1:3]}.")
    heat = colorize(normalize(map_array, clip_percentile), cmap).astype(np.float64)
    base = pictures[:, None].astype(np.float64)
    return np.rint((1 - alpha) * base + alpha * heat).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# Pillow
# ------------------------------------------------------------------------------------------------

def to_pil(array):
    """PIL image(s) from uint8 pictures: (H, W, 3) -> RGB image, (H, W) -> 'L' image; leading axes
    give nested lists, e.g. (N, l, H, W, 3) -> N lists of l images.

    Example:
        >>> import numpy as np
        >>> from xaifn import visual
        >>> image = visual.to_pil(np.zeros((4, 6, 3), np.uint8))
        >>> image.size, image.mode
        ((6, 4), 'RGB')
        >>> [len(row) for row in visual.to_pil(np.zeros((2, 3, 4, 6, 3), np.uint8))]
        [3, 3]
    """
    pictures = _as_array(array, "array")
    if pictures.dtype != np.uint8:
        raise TypeError(f"`array` must be uint8 (see `colorize`, `overlay`, `to_uint8_image`), "
                        f"got {pictures.dtype}.")
    if pictures.ndim < 2:
        raise ValueError(f"`array` must have shape (..., H, W, 3) or (..., H, W), got shape {pictures.shape}.")
    return _pil_nested(pictures)


def _pil_nested(pictures):
    if pictures.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(pictures), mode="L")
    if pictures.ndim == 3 and pictures.shape[-1] == 3:
        return Image.fromarray(np.ascontiguousarray(pictures), mode="RGB")
    return [_pil_nested(item) for item in pictures]


def _cell_image(cell, where):
    if isinstance(cell, Image.Image):
        return cell.convert("RGB")
    if isinstance(cell, (np.ndarray, ms.Tensor)):
        pictures = _as_array(cell, "rows")
        if pictures.dtype == np.uint8 and (pictures.ndim == 2
                                           or (pictures.ndim == 3 and pictures.shape[-1] == 3)):
            return _pil_nested(pictures).convert("RGB")
        raise ValueError(f"`rows`{where} must be a uint8 (H, W, 3) or (H, W) array or a PIL image, "
                         f"got {pictures.dtype} {pictures.shape}.")
    raise TypeError(f"`rows`{where} must be a uint8 (H, W, 3) array or a PIL image, "
                    f"got {type(cell).__name__}.")


def _labels(labels, count, name):
    if labels is None:
        return None
    if not isinstance(labels, (list, tuple)) or not all(isinstance(t, str) for t in labels):
        raise TypeError(f"`{name}` must be None or a list of str, got {labels!r}.")
    if len(labels) != count:
        raise ValueError(f"`{name}` must have {count} entries, got {len(labels)}.")
    return list(labels)


def _fit(draw, text, font, width):
    """`text`, cut and ended by '..' when wider than `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".." if text else ""


def _draw_centred(draw, text, font, centre):
    """Draw black `text` with its bounding box centred on `centre` (works with bitmap fonts too)."""
    if not text:
        return
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    draw.text((centre[0] - (x1 - x0) / 2 - x0, centre[1] - (y1 - y0) / 2 - y0), text,
              fill=(0, 0, 0), font=font)


def save_grid(path, rows, titles=None, row_labels=None, cell_size=None):
    """Write a grid of pictures with column titles and row labels as one PNG; return the image.

    Args:
        path: file name (or writable binary file object); written in PNG format.
        rows: list of rows, each a list of uint8 (H, W, 3) / (H, W) arrays or PIL images (e.g.
            `overlay(...)[n]` for one sample's l targets). Rows may have different lengths; the
            missing cells stay blank.
        titles: None or one str per column, drawn above the columns.
        row_labels: None or one str per row, drawn left of the rows.
        cell_size: None (the largest picture height and width), an int, or (height, width):
            every picture is resized (nearest neighbour) to it.

    The RGB image on a white background has, with P = GRID_PADDING = 4, T = GRID_TITLE_HEIGHT = 16
    (0 without titles), L = GRID_LABEL_WIDTH = 72 (0 without row labels) and R rows, C columns of
    h x w cells: width = L + C * w + (C + 1) * P, height = T + R * h + (R + 1) * P. Text uses
    ImageFont.load_default() and is cut to fit its cell width.

    Example:
        >>> import io, numpy as np
        >>> from xaifn import visual
        >>> cells = visual.overlay(np.random.rand(2, 3, 8, 10), np.random.rand(2, 3, 8, 10))
        >>> image = visual.save_grid(io.BytesIO(), [list(row) for row in cells], titles=["a", "b", "c"])
        >>> image.size, image.mode
        ((46, 44), 'RGB')
    """
    if not isinstance(rows, (list, tuple)) or not rows or not all(isinstance(r, (list, tuple)) for r in rows):
        raise TypeError("`rows` must be a non-empty list of lists of pictures.")
    cells = [[_cell_image(cell, f"[{i}][{j}]") for j, cell in enumerate(row)] for i, row in enumerate(rows)]
    n_rows, n_cols = len(cells), max(len(row) for row in cells)
    if n_cols == 0:
        raise ValueError("`rows` must hold at least one picture.")
    titles = _labels(titles, n_cols, "titles")
    row_labels = _labels(row_labels, n_rows, "row_labels")
    if cell_size is None:
        height = max(image.height for row in cells for image in row)
        width = max(image.width for row in cells for image in row)
    else:
        height, width = _check_cell_size(cell_size)
    pad = GRID_PADDING
    top = GRID_TITLE_HEIGHT if titles is not None else 0
    left = GRID_LABEL_WIDTH if row_labels is not None else 0
    canvas = Image.new("RGB", (left + n_cols * width + (n_cols + 1) * pad,
                               top + n_rows * height + (n_rows + 1) * pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, row in enumerate(cells):
        y = top + pad + i * (height + pad)
        for j, image in enumerate(row):
            if image.size != (width, height):
                image = image.resize((width, height), Image.NEAREST)
            canvas.paste(image, (left + pad + j * (width + pad), y))
        if row_labels is not None:
            label = _fit(draw, row_labels[i], font, left - pad)
            _draw_centred(draw, label, font, (pad + draw.textlength(label, font=font) / 2,
                                              y + height / 2))
    for j, title in enumerate(titles or []):
        x = left + pad + j * (width + pad)
        _draw_centred(draw, _fit(draw, title, font, width + pad), font, (x + width / 2, (top + pad) / 2))
    canvas.save(path, format="PNG")
    return canvas


# ------------------------------------------------------------------------------------------------
# curves (xaifn.metrics' deletion / insertion / ROAD curves)
# ------------------------------------------------------------------------------------------------

#: Line colours of `plot_curves`, in order (the ten "tableau" colours).
CURVE_COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
#: plot_curves layout (pixels): margins left of / below the axes, above them, legend width.
CURVE_MARGINS = dict(left=52, bottom=28, top=20, right=8, legend=120)


def _check_xs(xs, count):
    if xs is None:
        return np.linspace(0.0, 1.0, count) if count > 1 else np.zeros(1)
    xs = np.asarray(xs, np.float64) if isinstance(xs, (list, tuple)) else xs
    xs = _finite(_as_array(xs, "xs"), "xs").astype(np.float64).reshape(-1)
    if xs.size != count:
        raise ValueError(f"`xs` must hold one value per curve point ({count}), got {xs.size}.")
    return xs


def tick_labels(values):
    """Labels of increasing tick values with the fewest significant digits (2 to 8) that tell
    them apart: a narrow range (0.11020 .. 0.11034) is not labelled 0.11 three times.

    Example:
        >>> tick_labels([0.0, 0.5, 1.0]), tick_labels([0.1102, 0.11027, 0.11034])
        (['0', '0.5', '1'], ['0.1102', '0.11027', '0.11034'])
    """
    for digits in range(2, 9):
        texts = [f"{v:.{digits}g}" for v in values]
        if len(set(texts)) == len(texts):
            return texts
    return texts


def plot_curves(path, curves, labels=None, title=None, xs=None, y_range=(0.0, 1.0), size=(360, 240)):
    """Draw K curves as a line chart with axes, ticks and a legend; save it as PNG; return the image.

    Args:
        path: file name or writable binary file object, or None (not saved).
        curves: (S,) or (K, S) Tensor or array, e.g. the mean over samples of the curves returned by
            ``xaifn.metrics.deletion_auc(..., return_curve=True)``.
        labels: None or one str per curve (drawn in a legend on the right).
        title: None or a str drawn above the axes.
        xs: the S x positions, a list, array or Tensor (default: evenly spaced in [0, 1], e.g. the
            fraction of pixels removed).
        y_range: (low, high) of the y axis, or None for the data's range.
        size: (width, height) of the whole picture in pixels.

    Colours follow `CURVE_COLORS` in order (cycling). Pure Pillow: no plotting library needed.

    Example:
        >>> import io, numpy as np
        >>> from xaifn import visual
        >>> curves = np.array([[1.0, 0.5, 0.2, 0.1], [1.0, 0.9, 0.8, 0.6]])
        >>> visual.plot_curves(io.BytesIO(), curves, labels=["good", "poor"], title="deletion").size
        (360, 240)
    """
    values = _finite(_as_array(curves, "curves"), "curves").astype(np.float64)
    values = values[None] if values.ndim == 1 else values
    if values.ndim != 2:
        raise ValueError(f"`curves` must be (S,) or (K, S), got shape {values.shape}.")
    labels = _labels(labels, len(values), "labels")
    xs = _check_xs(xs, values.shape[1])
    if y_range is None:
        low, high = float(values.min()), float(values.max())
        high = high if high > low else low + 1.0
    elif (isinstance(y_range, (tuple, list)) and len(y_range) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in y_range)):
        low, high = float(y_range[0]), float(y_range[1])
        if not low < high:
            raise ValueError(f"`y_range` must have low < high, got {y_range!r}.")
    else:
        raise TypeError(f"`y_range` must be None or a pair (low, high) of numbers, got {y_range!r}.")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"`title` must be None or a str, got {type(title).__name__}.")
    width, height = _check_cell_size(size)
    m = CURVE_MARGINS
    legend = m["legend"] if labels is not None else 0
    box = (m["left"], m["top"], width - m["right"] - legend, height - m["bottom"])
    if box[2] - box[0] < 10 or box[3] - box[1] < 10:
        raise ValueError(f"`size` {size!r} leaves no room for the axes.")
    x_low, x_high = float(xs.min()), float(xs.max())
    x_span = x_high - x_low or 1.0

    def point(x, y):
        return (box[0] + (x - x_low) / x_span * (box[2] - box[0]),
                box[3] - (min(max(y, low), high) - low) / (high - low) * (box[3] - box[1]))
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    fractions = (0.0, 0.5, 1.0)                                        # grid and tick labels
    y_ticks = [low + f * (high - low) for f in fractions]
    x_ticks = [x_low + f * x_span for f in fractions]
    for y, x, y_text, x_text in zip(y_ticks, x_ticks, tick_labels(y_ticks), tick_labels(x_ticks)):
        _, py = point(x_low, y)
        draw.line([(box[0], py), (box[2], py)], fill=(225, 225, 225))
        draw.text((box[0] - 4 - draw.textlength(y_text, font=font), py - 5), y_text, fill=(0, 0, 0), font=font)
        px, _ = point(x, low)
        draw.text((px - draw.textlength(x_text, font=font) / 2, box[3] + 4), x_text, fill=(0, 0, 0), font=font)
    draw.rectangle(box, outline=(0, 0, 0))
    for k, row in enumerate(values):
        colour = CURVE_COLORS[k % len(CURVE_COLORS)]
        points = [point(x, y) for x, y in zip(xs, row)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        else:
            draw.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2], fill=colour)
        if labels is not None:
            y = box[1] + 6 + 14 * k
            draw.line([(box[2] + 8, y), (box[2] + 24, y)], fill=colour, width=2)
            draw.text((box[2] + 28, y - 6), _fit(draw, labels[k], font, legend - 32), fill=(0, 0, 0), font=font)
    if title is not None:
        _draw_centred(draw, _fit(draw, title, font, width), font, ((box[0] + box[2]) / 2, m["top"] / 2))
    if path is not None:
        canvas.save(path, format="PNG")
    return canvas


def resize_map(saliency, size):
    """One (h, w) map resampled bilinearly to `size` (H, W): float32 (H, W).

    Used to lay a map computed at the network's input size over the original picture, at the
    picture's own resolution and aspect ratio.

    Example:
        >>> import numpy as np
        >>> from xaifn import visual
        >>> visual.resize_map(np.ones((4, 4)), (6, 9)).shape
        (6, 9)
    """
    array = _finite(_as_array(saliency, "saliency"), "saliency")
    if array.ndim != 2:
        raise ValueError(f"`saliency` must have shape (h, w), got shape {array.shape}.")
    height, width = _check_cell_size(size)
    image = Image.fromarray(np.ascontiguousarray(array, np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.BILINEAR), np.float32)


def captioned(picture, text):
    """An RGB PIL image: `picture` (uint8 (H, W, 3) or PIL image) under a white strip with `text`.

    The picture keeps its size; the canvas is widened when the text is wider than the picture.
    The strip is GRID_TITLE_HEIGHT + GRID_PADDING pixels high.

    Example:
        >>> import numpy as np
        >>> from xaifn import visual
        >>> visual.captioned(np.zeros((10, 200, 3), np.uint8), "gradient").size
        (200, 30)
    """
    if isinstance(picture, Image.Image):
        image = picture.convert("RGB")
    else:
        array = _as_array(picture, "picture")
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(f"`picture` must be a uint8 (H, W, 3) array or a PIL image, "
                             f"got {array.dtype} {array.shape}.")
        image = _pil_nested(array)
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str, got {type(text).__name__}.")
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    strip = GRID_TITLE_HEIGHT + GRID_PADDING
    width = max(image.width, int(np.ceil(probe.textlength(text, font=font))) + 2 * GRID_PADDING)
    canvas = Image.new("RGB", (width, strip + image.height), (255, 255, 255))
    canvas.paste(image, (0, strip))
    draw = ImageDraw.Draw(canvas)
    _draw_centred(draw, text, font, (GRID_PADDING + draw.textlength(text, font=font) / 2, strip / 2))
    return canvas
