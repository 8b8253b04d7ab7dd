"""The documentation site builds with Sphinx, warnings as errors (as `sphinx-build -W -b html docs OUT`).

Skipped when Sphinx (the `docs` extra) is not installed.
"""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
STATIC = DOCS / "_static"
METHOD_PICTURES = ("gradient", "deconvolution", "guided_backprop", "gradcam", "occlusion", "rise",
                   "rise_plus", "input_x_gradient", "integrated_gradients", "smooth_grad", "guided_gradcam",
                   "gradcam_plus_plus", "xgradcam", "layercam", "hirescam", "eigencam", "scorecam")
METHOD_PAGES = METHOD_PICTURES
MAX_PICTURE_BYTES = 200 * 1024


def test_pictures_are_committed_and_small():
    for name in METHOD_PICTURES + ("gallery",):
        path = STATIC / f"{name}.png"
        assert path.is_file(), f"{path} is missing: see docs/make_pictures.py"
        assert path.stat().st_size < MAX_PICTURE_BYTES, f"{path} is over 200 KB"


def test_sphinx_build_has_no_warnings(tmp_path):
    pytest.importorskip("sphinx")
    out = tmp_path / "html"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    # cwd tmp_path: MindSpore, imported by autodoc, may leave working files in the current folder
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    assert (out / "index.html").is_file()
    for page in ("quickstart", "design", "api/functional", "api/classes", "api/ood", "api/visual"):
        assert (out / f"{page}.html").is_file(), page
    for page in METHOD_PAGES:
        html = (out / "methods" / f"{page}.html").read_text(encoding="utf-8")
        assert f"{page}.png" in html, f"methods/{page}.html shows no picture"
    # the API pages are generated from the docstrings
    functional = (out / "api" / "functional.html").read_text(encoding="utf-8")
    for name in ("xaifn.gradient", "xaifn.rise_plus", "xaifn.RiseMasks", "xaifn.network_view"):
        assert f'id="{name}"' in functional, name
    classes = (out / "api" / "classes.html").read_text(encoding="utf-8")
    for name in ("Gradient", "Deconvolution", "GuidedBackprop", "GradCAM", "Occlusion", "RISE",
                 "OoDNet", "RISEPlus"):
        assert f'id="xaifn.explanation.{name}"' in classes, name
    assert 'id="xaifn.ood.fit"' in (out / "api" / "ood.html").read_text(encoding="utf-8")
    assert 'id="xaifn.visual.overlay"' in (out / "api" / "visual.html").read_text(encoding="utf-8")
