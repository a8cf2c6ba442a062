"""Sphinx configuration for fcgikit's documentation.

Built in CI with ``sphinx-build -W --keep-going -b html docs OUT`` (warnings are errors), and
by ``tests/test_docs.py``. Nothing here touches the network: no intersphinx, a built-in theme.
The directives in ``_ext/`` run fcgikit's own code while the docs build, so the web server
configs, the CLI reference and the compatibility table are never pasted by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

from fcgikit import __version__  # noqa: E402

project = "fcgikit"
author = "the fcgikit authors"
copyright = "fcgikit authors"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "fcgikit_cli",
    "fcgikit_compat",
    "fcgikit_config",
    "fcgikit_settings",
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

root_doc = "index"
exclude_patterns = ["_build", "examples", "middleware/examples"]
templates_path: list[str] = []
nitpicky = False
highlight_language = "python"
pygments_style = "sphinx"

html_theme = "alabaster"
html_title = f"fcgikit {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "WSGI apps behind real web servers, over FastCGI",
    "fixed_sidebar": True,
    "page_width": "1100px",
}
