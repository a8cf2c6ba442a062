"""The C fast lanes (``fcgikit/*/_speedups.c``) for the tests that hold them to their Python.

scripts/test runs tests/protocol and tests/server twice. As installed, fcgikit imports each
lane; with ``FCGIKIT_PURE_PYTHON=1`` it refuses them (fcgikit/_pure_python.py) and runs the
Python alone. The tests comparing a lane with its Python run in both passes all the same:
here the pure-Python pass loads the lane straight from the file ``pip install`` built, and
holds it to the *interpreted* Python, while the installed pass holds it to the compiled one.
A lane that was not built fails the test on CI (whose machine has gcc and Python's headers)
and skips it elsewhere only when no compiler is there to build it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader
from pathlib import Path
from types import ModuleType

import pytest

from tests.protocol.test_accelerator import missing_build_tools

PURE_PYTHON_PASS = os.environ.get("FCGIKIT_PURE_PYTHON", "") not in ("", "0")


def built_file(name: str) -> Path | None:
    """Where the extension module ``name`` was built, if it was."""
    package, _, module = name.rpartition(".")
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations is not None
    for directory in spec.submodule_search_locations:
        for suffix in EXTENSION_SUFFIXES:
            path = Path(directory) / f"{module}{suffix}"
            if path.is_file():
                return path
    return None


def load_lane(name: str) -> ModuleType:
    """The C module ``name`` (``fcgikit.protocol._speedups``...), in either pass, given its
    numbers as fcgikit gives them (a package's ``lanes.configure``, where it has one)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        pass
    path = built_file(name)
    if path is not None:
        loader = ExtensionFileLoader(name, str(path))
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        # Loading a single-phase C module files it in sys.modules; fcgikit must still find
        # no lane when it imports one in this pass.
        sys.modules.pop(name, None)
        if hasattr(module, "configure"):
            lanes = importlib.import_module(name.rpartition(".")[0] + ".lanes")
            lanes.configure(module)
        return module
    source = name.replace(".", "/") + ".c"
    if os.environ.get("FCGIKIT_TEST_INSTALLED_BUILD") == "pure":  # scripts/test --installed
        pytest.skip(f"{source}: the pure wheel has none; the compiled wheel's runs compare it")
    missing = missing_build_tools()
    if missing and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"{source} was not built: {missing}")
    pytest.fail(
        f"{source} was not built although it could be: run `pip install -v -e .` and look "
        "for the line that starts with 'fcgikit:'",
        pytrace=False,
    )
