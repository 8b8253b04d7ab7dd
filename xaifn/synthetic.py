"""A seeded synthetic image-classification set whose evidence sits at a known place.

Each 3 x S x S image shows one coloured shape on a textured background; the class is the shape
(with its colour), and the shape's bounding box is recorded, so an explanation can be scored by
whether its most salient pixel falls inside the box (the pointing game).
"""
import numpy as np

from xaifn import _checks

#: class index -> (name, RGB colour)
CLASSES = (("red square", (0.9, 0.15, 0.1)), ("green disc", (0.1, 0.8, 0.2)),
           ("blue triangle", (0.15, 0.3, 0.95)), ("yellow cross", (0.95, 0.85, 0.1)))


def _shape_mask(kind, extent):
    """Boolean (extent, extent) footprint of shape `kind` (a class index)."""
    r = (np.arange(extent) + 0.5) / extent * 2 - 1
    yy, xx = np.meshgrid(r, r, indexing="ij")
    if kind == 0:
        return np.ones((extent, extent), bool)
    if kind == 1:
        return yy ** 2 + xx ** 2 <= 1
    if kind == 2:
        return np.abs(xx) <= (yy + 1) / 2
    return (np.abs(xx) <= 0.3) | (np.abs(yy) <= 0.3)


def _background(rng, size):
    """Low-contrast texture: stripes of random frequency and angle plus grain, around grey."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle, freq = rng.uniform(0, np.pi), rng.uniform(2, 6)
    stripes = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    base = 0.45 + 0.08 * stripes + 0.05 * rng.standard_normal((size, size))
    tint = rng.uniform(-0.05, 0.05, 3)
    return np.clip(base[None] + tint[:, None, None], 0, 1)


def make_shapes(seed, num_images, size=32, min_extent=8, max_extent=14):
    """(images (N, 3, S, S) float32 in [0, 1], labels (N,) int32, boxes (N, 4) int: top, left,
    bottom, right, exclusive) drawn from `np.random.default_rng(seed)`.

    Example:
        >>> from xaifn.synthetic import make_shapes
        >>> images, labels, boxes = make_shapes(seed=0, num_images=5)
        >>> images.shape, labels.shape, boxes.shape
        ((5, 3, 32, 32), (5,), (5, 4))
    """
    _checks.check_seed(seed)
    num_images = _checks.check_positive_int(num_images, "num_images")
    size = _checks.check_positive_int(size, "size")
    rng = np.random.default_rng(seed)
    images = np.empty((num_images, 3, size, size), np.float32)
    labels = rng.integers(0, len(CLASSES), num_images).astype(np.int32)
    boxes = np.empty((num_images, 4), np.int64)
    for i, label in enumerate(labels):
        image = _background(rng, size)
        extent = int(rng.integers(min_extent, max_extent + 1))
        top, left = rng.integers(0, size - extent + 1, 2)
        footprint = _shape_mask(label, extent)
        colour = np.clip(np.array(CLASSES[label][1]) + rng.uniform(-0.08, 0.08, 3), 0, 1)
        window = image[:, top:top + extent, left:left + extent]
        window[:, footprint] = colour[:, None]
        images[i] = image
        boxes[i] = (top, left, top + extent, left + extent)
    return images, labels, boxes


def make_noise(seed, num_images, size=32):
    """Out-of-distribution images: uniform noise and grey-level blobs, (N, 3, S, S) float32."""
    rng = np.random.default_rng(seed)
    noise = rng.random((num_images, 3, size, size)).astype(np.float32)
    half = num_images // 2
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(half):  # smooth grey blobs: no colour, no class shape
        cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(4, 10)]
        noise[i] = 0.3 + 0.5 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return noise
