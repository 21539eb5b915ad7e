"""Sphinx configuration of the fastblur documentation.

Build: ``pip install ".[docs]"`` then ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
fastblur is imported as installed (with its compiled extension); a source tree is used
only where no fastblur is importable.
"""
import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
if importlib.util.find_spec("fastblur") is None:
    sys.path.insert(0, str(HERE.parent))

import fastblur  # noqa: E402

project = "fastblur"
author = "the fastblur authors"
copyright = "2026, the fastblur authors"
version = release = fastblur.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "sphinxarg.ext",
    "apigen",
]

exclude_patterns = ["_build", "examples", "sg_execution_times.rst"]
templates_path = []
default_role = "py:obj"
nitpicky = False
smartquotes = False  # option names such as --input stay as written (help texts are reST)

# API reference: pages written by apigen from __all__; numpydoc renders the docstrings.
autosummary_generate = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
if importlib.util.find_spec("torch") is None:  # fastblur.torch documented without PyTorch
    autodoc_mock_imports = ["torch"]

intersphinx_mapping = {}

# Gallery: examples run at build time on the embedded images.
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "min_reported_time": 0,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
}
os.environ.setdefault("MPLBACKEND", "Agg")

html_theme = "pydata_sphinx_theme"
html_title = "fastblur"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []
