"""``FCGIKIT_PURE_PYTHON=1``: run fcgikit's ``.py`` modules even where compiled ones exist.

An install with the accelerator (see setup.py) puts mypyc-compiled extension modules next to
the ``.py`` files they were built from, and the import system always prefers an extension
module. To compare the two builds, or to rule the compiled code out when chasing a bug,
``fcgikit/__init__.py`` puts this finder ahead of the standard one when the variable is
set: for a ``fcgikit.*`` module that has a ``.py`` file it returns a spec that loads that file.
The hand-written C fast lanes (``fcgikit.*._speedups*``: each ``_speedups*.c`` that setup.py
builds; they have no ``.py``) are refused with ImportError, the same as when they were never
built, so the Python next to them does the work.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader
from importlib.util import spec_from_file_location
from types import ModuleType


def is_c_lane(name: str) -> bool:
    """Whether the module ``name`` is one of the hand-written C lanes (setup.py SPEEDUPS)."""
    return name.rpartition(".")[2].startswith("_speedups")


class PurePythonFinder:
    """A meta path finder that prefers ``fcgikit``'s ``.py`` files to extension modules."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not name.startswith("fcgikit.") or path is None:
            return None
        if is_c_lane(name):
            raise ModuleNotFoundError(f"{name} is C, and FCGIKIT_PURE_PYTHON is set", name=name)
        filename = name.rpartition(".")[2] + ".py"
        for directory in path:
            source = os.path.join(directory, filename)
            if os.path.isfile(source):
                return spec_from_file_location(name, source, loader=SourceFileLoader(name, source))
        return None  # a package (never compiled) or no such module: the usual finders decide


def install() -> None:
    if any(isinstance(finder, PurePythonFinder) for finder in sys.meta_path):
        return
    # Just before the standard path finder (the one that would pick the extension module), so
    # finders put earlier on purpose, such as pytest's assertion rewriter, still come first.
    position = sys.meta_path.index(PathFinder) if PathFinder in sys.meta_path else 0
    sys.meta_path.insert(position, PurePythonFinder())
