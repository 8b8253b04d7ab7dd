"""Make the pictures under docs/_static/ from a run of the demo (done once; the PNGs are committed).

    python -m xaifn demo --quick --output /tmp/demo
    python docs/make_pictures.py /tmp/demo

Copies gallery.png and curves.png (the metrics' mean deletion / insertion curves) and, for each method, stacks the demo's held-out images (the first column of
the gallery) above the method's row of overlays, so each method page shows image and map
together. PNGs are re-encoded with Pillow's optimiser (each stays well under 200 KB; the gallery
is reduced to a 256-colour palette).
"""
import pathlib
import sys

from PIL import Image

METHODS = ("gradient", "deconvolution", "guided_backprop", "gradcam", "occlusion", "rise", "rise_plus",
           "input_x_gradient", "integrated_gradients", "smooth_grad", "guided_gradcam", "gradcam_plus_plus",
           "xgradcam", "layercam", "hirescam", "eigencam", "scorecam")
CELL, PAD, TITLE = 96, 4, 16   # the demo's save_grid(cell_size=96) layout (xaifn.visual.GRID_*)
STATIC = pathlib.Path(__file__).resolve().parent / "_static"


def images_row(gallery, count):
    """The first gallery column (the input images), laid out as one row like the method rows."""
    row = Image.new("RGB", (PAD + count * (CELL + PAD), CELL + PAD), (255, 255, 255))
    for i in range(count):
        top = TITLE + PAD + i * (CELL + PAD)
        row.paste(gallery.crop((PAD, top, PAD + CELL, top + CELL)), (PAD + i * (CELL + PAD), PAD))
    return row


def main(demo_dir):
    demo = pathlib.Path(demo_dir)
    STATIC.mkdir(exist_ok=True)
    gallery = Image.open(demo / "gallery.png").convert("RGB")
    # the gallery has a column per method: a 256-colour palette keeps it under 200 KB
    gallery.quantize(256, method=Image.Quantize.MEDIANCUT).save(STATIC / "gallery.png", optimize=True)
    Image.open(demo / "curves.png").convert("RGB").save(STATIC / "curves.png", optimize=True)
    count = (gallery.height - TITLE - PAD) // (CELL + PAD)
    images = images_row(gallery, count)
    for name in METHODS:
        maps = Image.open(demo / f"{name}.png").convert("RGB")
        picture = Image.new("RGB", (maps.width, images.height + maps.height), (255, 255, 255))
        picture.paste(images, (0, 0))
        picture.paste(maps, (0, images.height))
        picture.save(STATIC / f"{name}.png", optimize=True)
    for path in sorted(STATIC.glob("*.png")):
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "xaifn-demo")
