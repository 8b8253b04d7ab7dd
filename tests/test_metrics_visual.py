"""xaifn.visual.plot_curves: the chart of xaifn.metrics' curves (Pillow only)."""
import io

import numpy as np
import mindspore as ms
import pytest
from PIL import Image

from xaifn import visual


def test_curves_are_drawn_where_the_data_says():
    curves = np.array([[0.0, 1.0], [1.0, 1.0]])            # a rising diagonal and a top line
    image = visual.plot_curves(None, curves, y_range=(0, 1), size=(200, 150))
    pixels = np.asarray(image)
    m = visual.CURVE_MARGINS
    left, top, right, bottom = m["left"], m["top"], 200 - m["right"], 150 - m["bottom"]
    first, second = (np.array(c) for c in visual.CURVE_COLORS[:2])
    middle = ((left + right) // 2, (top + bottom) // 2)     # the diagonal passes the centre
    near = pixels[middle[1] - 2:middle[1] + 3, middle[0] - 2:middle[0] + 3].reshape(-1, 3)
    assert (near == first).all(axis=1).any()
    assert (pixels[top - 1:top + 2, left + 5:right - 5] == second).all(axis=-1).any(axis=0).all()
    assert not (pixels == second).all(axis=-1)[bottom - 5:bottom].any()


def test_legend_title_file_and_tensor_input(tmp_path):
    path = tmp_path / "curves.png"
    image = visual.plot_curves(path, ms.Tensor(np.random.rand(3, 5), ms.float32), labels=["a", "b", "c"],
                               title="deletion", xs=np.linspace(0, 0.5, 5), y_range=None)
    assert image.size == (360, 240) and Image.open(path).size == (360, 240)
    colours = {tuple(c) for c in np.asarray(image).reshape(-1, 3)}
    assert set(visual.CURVE_COLORS[:3]) <= colours
    visual.plot_curves(io.BytesIO(), np.ones(4))            # a flat single curve, auto range


def test_bad_arguments():
    with pytest.raises(ValueError, match="curves"):
        visual.plot_curves(None, np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="finite"):
        visual.plot_curves(None, np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="labels"):
        visual.plot_curves(None, np.ones((2, 3)), labels=["one"])
    with pytest.raises(ValueError, match="xs"):
        visual.plot_curves(None, np.ones((2, 3)), xs=[0, 1])
    with pytest.raises(ValueError, match="y_range"):
        visual.plot_curves(None, np.ones(3), y_range=(1, 0))
    with pytest.raises(TypeError, match="y_range"):
        visual.plot_curves(None, np.ones(3), y_range="auto")
    with pytest.raises(TypeError, match="title"):
        visual.plot_curves(None, np.ones(3), title=3)
    with pytest.raises(ValueError, match="size"):
        visual.plot_curves(None, np.ones(3), size=(50, 30))
