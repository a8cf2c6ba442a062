"""fcgikit: put any WSGI app behind a real web server over FastCGI.

The public names are imported on first use (PEP 562), so a ``.fcgi`` file that only needs
``WSGIServer`` does not load the middleware and werkzeug too: every spawned process and
prefork worker pays for what it imports.
"""

from __future__ import annotations

import importlib
import os

#: typing's, without importing typing: ``python -m fcgikit`` imports this package before the
#: command's first line (fcgikit/__main__.py), and what is imported here asks ``sys.path``
#: before the command drops its repeated entries
TYPE_CHECKING = False

__version__ = "0.1.0"


def _load_compiled_library() -> None:
    """Load the library of the compiled modules (setup.py), if there is one, and point its
    ``__file__`` one directory up.

    mypyc gives each compiled module a ``__file__`` (and ``__spec__.origin``) made from that
    attribute, as if the library sat above the package tree, where it puts it by default.
    fcgikit keeps it inside the package, so that installing adds no top-level module; without
    this, every compiled module would name a file that does not exist.
    """
    try:
        library = importlib.import_module("fcgikit._compiled__mypyc")
    except ImportError:
        return  # pure Python: nothing was compiled
    where = library.__file__ or ""
    above = os.path.dirname(os.path.dirname(where))
    library.__file__ = os.path.join(above, os.path.basename(where))


if os.environ.get("FCGIKIT_PURE_PYTHON", "") not in ("", "0"):
    # Import the .py modules even where the compiled accelerator sits next to them (setup.py).
    from fcgikit import _pure_python

    _pure_python.install()
else:
    _load_compiled_library()

_EXPORTS = {
    "WSGIServer": "fcgikit.compat",
    "FCGI_RESPONDER": "fcgikit.protocol.constants",
    "FCGI_AUTHORIZER": "fcgikit.protocol.constants",
    "FCGI_FILTER": "fcgikit.protocol.constants",
    "HeaderFix": "fcgikit.middleware",
    "LighttpdRootFix": "fcgikit.middleware",
    "MountFix": "fcgikit.middleware",
    "Normalize": "fcgikit.middleware",
    "ProxyFix": "fcgikit.middleware",
    "ScriptNameStripper": "fcgikit.middleware",
    "StdoutGuard": "fcgikit.middleware",
    "guard_stdout": "fcgikit.middleware",
    "unguard_stdout": "fcgikit.middleware",
    "wrap": "fcgikit.middleware",
}

__all__ = [
    "FCGI_AUTHORIZER",
    "FCGI_FILTER",
    "FCGI_RESPONDER",
    "HeaderFix",
    "LighttpdRootFix",
    "MountFix",
    "Normalize",
    "ProxyFix",
    "ScriptNameStripper",
    "StdoutGuard",
    "WSGIServer",
    "__version__",
    "guard_stdout",
    "unguard_stdout",
    "wrap",
]

if TYPE_CHECKING:
    from typing import Any

    from fcgikit.compat import WSGIServer
    from fcgikit.middleware import (
        HeaderFix,
        LighttpdRootFix,
        MountFix,
        Normalize,
        ProxyFix,
        ScriptNameStripper,
        StdoutGuard,
        guard_stdout,
        unguard_stdout,
        wrap,
    )
    from fcgikit.protocol.constants import FCGI_AUTHORIZER, FCGI_FILTER, FCGI_RESPONDER


def __getattr__(name: str) -> Any:
    from fcgikit._exports import export  # here: fcgikit serve asks for none of these names

    return export(__name__, _EXPORTS, globals(), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
