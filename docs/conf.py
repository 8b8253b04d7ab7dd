"""Sphinx configuration of the xaifn documentation.

Build (warnings are errors, as in tests/test_docs.py):

    sphinx-build -W -b html docs docs/_build/html

Pages are reStructuredText; the plain-Markdown note docs/methods.md stays as the specification the
method pages are written from (it is not a Sphinx source). The pictures under
docs/_static/ were made once by ``python -m xaifn demo --quick`` and are committed: the build runs
no network and needs no internet.
"""
import os
import sys

# Build from a source checkout even when xaifn is not installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import xaifn  # noqa: E402  (after the path set-up)

project = "xaifn"
author = "the xaifn authors"
copyright = "the xaifn authors"  # pylint: disable=redefined-builtin
release = xaifn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",   # the Google-style "Args:", "Returns:", "Example:" sections
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "**/_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path = []

# `name` in docstrings: a cross-reference when it names a documented object, plain code otherwise.
default_role = "py:obj"

autodoc_default_options = {
    "members": True,
    "member-order": "bysource",   # in the order of the module (or of its __all__)
}
autodoc_typehints = "none"
autodoc_preserve_defaults = True
autoclass_content = "both"         # class docstring followed by __init__'s, where it has one
add_module_names = False

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "alabaster"
html_static_path = ["_static"]
html_title = f"xaifn {release}"
html_theme_options = {
    "description": "Explanation methods for MindSpore networks, as pure composable functions",
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_show_sourcelink = False
