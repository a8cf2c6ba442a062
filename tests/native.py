"""The C fast lanes (``fcgikit/*/_speedups*.c``) for the tests that hold them to their Python.

scripts/test runs tests/protocol and tests/server twice. As installed, fcgikit imports each
lane; with ``FCGIKIT_PURE_PYTHON=1`` it refuses them (fcgikit/_pure_python.py) and runs the
Python alone. The tests comparing a lane with its Python run in both passes all the same:
here the pure-Python pass loads the lane straight from the file ``pip install`` built, and
holds it to the *interpreted* Python, while the installed pass holds it to the compiled one.
A lane that was not built fails the test on CI (whose machine has gcc and Python's headers)
and skips it elsewhere only when no compiler is there to build it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader
from pathlib import Path
from types import ModuleType
from typing import Any

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
        return fresh_lane(name)


def fresh_lane(name: str) -> ModuleType:
    """A new instance of the C module ``name``, loaded from the file ``pip install`` built,
    apart from the one fcgikit imported (if it did): its state is its own."""
    path = built_file(name)
    if path is not None:
        loader = ExtensionFileLoader(name, str(path))
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
        assert spec is not None
        imported = sys.modules.get(name)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        # Loading a single-phase C module files it in sys.modules; fcgikit must still find
        # the lane it imported, or none in the pure-Python pass.
        if imported is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = imported
        if hasattr(module, "configure"):  # given its numbers as fcgikit gives them
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


Call = tuple[Callable[..., Any], tuple[Any, ...]]


def parts(value: Any) -> list[Any]:
    """``value`` and everything it holds: the objects a call must leave as it found them."""
    if isinstance(value, dict):
        inner = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple):
        inner = list(value)
    else:
        return [value]
    return [value, *[part for item in inner for part in parts(item)]]


def assert_calls_leave_nothing_behind(calls: Iterable[Call]) -> None:
    """Each call, 100,000 times over, leaves the references to its arguments and the memory
    blocks allocated as they were (a TypeError it raises counts as a call)."""
    for function, args in calls:

        def call(function: Callable[..., Any] = function, args: tuple[Any, ...] = args) -> None:
            with contextlib.suppress(TypeError):
                function(*args)

        call()  # fills the caches (a lane's name cache)
        gc.collect()  # what earlier calls left for the collector is freed before counting
        # Not the interpreter's shared singletons (None, 5, b"x", "3"...): they start at a
        # billion references in 3.11, and any code anywhere moves their count.
        objects = [part for arg in args for part in parts(arg) if sys.getrefcount(part) < 10**8]
        before = [sys.getrefcount(obj) for obj in objects]
        blocks = sys.getallocatedblocks()
        for _ in range(100_000):
            call()
        gc.collect()
        assert sys.getallocatedblocks() - blocks < 100, function.__name__
        after = [sys.getrefcount(obj) for obj in objects]
        changed = [
            repr(obj)[:40] for obj, b, a in zip(objects, before, after, strict=True) if b != a
        ]
        assert not changed, f"{function.__name__} changed the references to {changed}"
