"""Public names imported on first use (PEP 562), for a package whose parts cost more to
import than most users of it need: ``from fcgikit import WSGIServer`` in a ``.fcgi`` file
loads neither the middleware nor werkzeug, and ``fcgikit serve`` does not load the parts of
``fcgikit check`` whose command it only declares. Each start pays for what it imports."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, MutableMapping
from typing import Any


def export(
    package: str, exports: Mapping[str, str], namespace: MutableMapping[str, Any], name: str
) -> Any:
    """``package``'s public ``name``, imported from the module ``exports`` names for it and
    kept in ``namespace`` (the package's globals) so that this runs once a name."""
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value
