"""Sphinx configuration of the overparam documentation site.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors; the gallery's
examples in ``examples/`` run during the build). Needs the ``[docs]`` extra.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the source tree, even without an install

import overparam  # noqa: E402

# Generated pages are rebuilt from scratch: a stale stub of a renamed object (or an example
# since deleted) would otherwise linger and fail the build with warnings as errors.
for _generated in ("generated", "auto_examples"):
    shutil.rmtree(Path(__file__).parent / _generated, ignore_errors=True)

project = "overparam"
author = "overparam developers"
copyright = "overparam developers, BSD-3-Clause"
release = version = overparam.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "auto_examples/*.codeobj.json"]
root_doc = "index"

# Markdown pages (MyST): they were written for GitHub, where `docs/x.md` links resolve too.
myst_enable_extensions = ["dollarmath", "amsmath", "deflist"]
myst_heading_anchors = 3

# API reference: one page per public object (autosummary), docstrings in numpydoc format.
autosummary_generate = True
templates_path = ["_templates"]  # class pages: own members only, not scikit-learn's or str's
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Gallery: every example runs at each build; its figures are embedded in the page.
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "reset_modules": ("matplotlib",),
    "write_computation_times": False,  # the page would load scripts from CDNs
}

html_theme = "pydata_sphinx_theme"
html_title = f"overparam {version}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_show_sourcelink = False
# Let the test build skip the (slow) source highlighting of every module.
if os.environ.get("OVERPARAM_DOCS_FAST"):
    extensions.remove("sphinx.ext.viewcode")
