"""Sphinx configuration of the payprotocol docs.

Build (warnings are errors, as in .ci/run)::

    pip install -e '.[docs]'
    sphinx-build -W --keep-going -b html docs docs/_build/html

Pages are MyST Markdown or reST. The user guide is the README, one page per
``##`` section, and the API reference covers every exported name: both are
generated under ``docs/_generated`` by ``_ext/p3docs.py`` at each build, so
they follow the README and ``__all__``. Drop a page into ``docs/guides/`` and
the index picks it up (its toctree globs ``guides/*``).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # the package from this checkout

import p3docs  # noqa: E402

import payprotocol  # noqa: E402

p3docs.generate(DOCS)

project = "payprotocol"
author = "The payprotocol developers"
copyright = "2026, The payprotocol developers"
release = payprotocol.__version__
version = release

extensions = ["sphinx.ext.autodoc", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "_generated/*-table.md"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
autodoc_default_options = {"show-inheritance": True}
# The docs build offline: no intersphinx inventories are fetched.

html_theme = "alabaster"
html_title = f"payprotocol {release}"
html_static_path: list[str] = []
