"""Sphinx configuration for fcgikit's documentation.

Built in CI with ``sphinx-build -W -n --keep-going -b html docs OUT`` (warnings are errors,
every reference resolves), and
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
# Every reference must resolve (sphinx-build -n in tests/test_docs.py), except to what this
# offline build has no inventory for (the standard library, werkzeug: no intersphinx) and to
# the types that appear in signatures but are not themselves public API.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:(class|obj|data)", r"(collections\.abc|socket|typing|types|io|os)\..*"),
    (r"py:(class|obj)", r"(WSGIApplication|WSGIEnvironment|StartResponse|Address|EncodedSlash)"),
    (r"py:(class|obj)", r"Network"),
    (r"py:class", r"SystemdNotifier"),
    # open_listener's annotations name socket, which fcgikit/server/listeners.py imports only
    # for type checking (it binds before socket loads): autodoc shows them as written
    (r"py:class", r"SocketOwner"),
    # ServerSettings.tracker's type is a worker's, imported for type checking only (a server
    # without --workers never loads it), so autodoc shows that class's annotations as written
    (r"py:class", r"(Role|ProcessCounters|RequestTracker)"),
    (r"py:class", r"'?(tuple|Mapping|dict|list)\[.*"),
    (r"py:class", r"fcgikit\.(addresses|protocol\.constants)\..*"),
    (
        r"py:class",
        r"fcgikit\.(server\.listeners\.SocketOwner|server\.metrics\.ProcessCounters"
        r"|client\.body\.ReadableBody"
        r"|quirks\.paths\.RequestPath)",
    ),
    (r"py:mod", r"fcgikit\.protocol"),
]
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
