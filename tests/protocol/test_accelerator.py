"""The compiled protocol (setup.py builds it with mypyc) and its pure-Python fallback.

The two must behave the same, so scripts/test runs tests/protocol and tests/server twice: as
installed, and with ``FCGIKIT_PURE_PYTHON=1``. These tests make sure each pass runs the code
it claims to, so neither can go green by quietly testing the other.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib.machinery import ExtensionFileLoader
from pathlib import Path

import pytest

import fcgikit.protocol
from tests.processes import SOURCE_TREE as CHECKOUT

SOURCE_TREE = Path(__file__).resolve().parents[2] / "fcgikit"


def compiled_modules() -> list[str]:
    """The modules setup.py compiles (its COMPILED list, read rather than copied)."""
    tree = ast.parse((SOURCE_TREE.parent / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMPILED":
            paths = ast.literal_eval(node.value)
            return [path.removesuffix(".py").replace("/", ".") for path in paths]
    raise AssertionError("setup.py has no COMPILED list")


COMPILED = compiled_modules()
PURE_PYTHON_PASS = os.environ.get("FCGIKIT_PURE_PYTHON", "") not in ("", "0")
#: What ``scripts/test --installed`` installed: "pure" (the py3-none-any wheel) or "compiled".
INSTALLED_BUILD = os.environ.get("FCGIKIT_TEST_INSTALLED_BUILD")


def origin(name: str) -> Path:
    spec = importlib.import_module(name).__spec__
    assert spec is not None and spec.origin is not None
    return Path(spec.origin)


def test_fcgikit_pure_python_loads_the_py_files() -> None:
    code = (
        "import importlib, json, fcgikit.protocol\n"
        f"origins = [importlib.import_module(name).__spec__.origin for name in {COMPILED!r}]\n"
        "print(json.dumps([fcgikit.protocol.ACCELERATED, origins]))\n"
    )
    env = {**os.environ, "FCGIKIT_PURE_PYTHON": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    accelerated, origins = json.loads(result.stdout)
    assert accelerated is False
    assert [Path(path).suffix for path in origins] == [".py"] * len(COMPILED), origins

    version = subprocess.run(
        [sys.executable, "-m", "fcgikit", "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.rstrip().endswith("(pure Python)")


def missing_build_tools() -> str | None:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}) to build the accelerator"
    if importlib.util.find_spec("mypyc") is None:
        return "no mypyc (pip install mypy) to build the accelerator"
    return None


def test_each_pass_runs_the_build_it_says() -> None:
    loaders = {name: type(importlib.import_module(name).__loader__) for name in COMPILED}
    if PURE_PYTHON_PASS or INSTALLED_BUILD == "pure":
        assert fcgikit.protocol.ACCELERATED is False
        assert all(loader is not ExtensionFileLoader for loader in loaders.values()), loaders
        return
    if INSTALLED_BUILD == "compiled":
        assert fcgikit.protocol.ACCELERATED, "the installed fcgikit is not the compiled build"
    if fcgikit.protocol.ACCELERATED:
        assert all(loader is ExtensionFileLoader for loader in loaders.values()), loaders
        return
    missing = missing_build_tools()
    message = (
        f"fcgikit runs its pure-Python protocol: {missing}"
        if missing
        else "fcgikit runs its pure-Python protocol although mypyc and a C compiler are here: "
        "run `pip install -v -e .` and look for the line that starts with 'fcgikit:'"
    )
    # Skip locally, fail on CI: a CI machine has gcc (Debian image) and mypy ([dev] extra).
    if missing and os.environ.get("CI", "").lower() != "true":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


def test_the_watcher_is_never_compiled() -> None:
    # It loops on the main thread, where Python runs signal handlers only between steps of
    # interpreted code (tests/server/test_watcher.py has the behaviour).
    loader = importlib.import_module("fcgikit.server.watcher").__loader__
    assert type(loader) is not ExtensionFileLoader


def test_the_compiled_modules_are_not_older_than_their_sources() -> None:
    # The import system prefers an extension module to the .py next to it, so after an
    # editable install an edit to a compiled module's .py changes nothing until it is rebuilt.
    stale = []
    for name in COMPILED:
        module_path = origin(name)
        source = module_path.with_name(name.rpartition(".")[2] + ".py")
        if (
            module_path.suffix != ".py"
            and module_path.is_relative_to(SOURCE_TREE)
            and source.stat().st_mtime > module_path.stat().st_mtime
        ):
            stale.append(str(source.relative_to(SOURCE_TREE.parent)))
    assert not stale, (
        f"{', '.join(stale)} changed after being compiled, and the old compiled code is what "
        "runs: run `pip install -e .` again (or set FCGIKIT_PURE_PYTHON=1)"
    )


@pytest.mark.parametrize(
    "source", sorted((CHECKOUT / "fcgikit").rglob("*.c")), ids=lambda p: p.parent.name
)
def test_each_c_module_says_whether_free_threaded_python_may_drop_the_gil(source: Path) -> None:
    """Py_mod_gil (multi-phase init) or PyUnstable_Module_SetGIL (single-phase), each guarded
    so that the module still builds on Pythons without free threading (3.11, 3.12)."""
    text = source.read_text()
    if "PyModuleDef_Init(" in text:
        declared = r"#ifdef Py_mod_gil\s+(/\*.*?\*/\s+)?\{Py_mod_gil, Py_MOD_GIL_(NOT_)?USED\},"
    else:
        declared = r"#ifdef Py_GIL_DISABLED\s.*?PyUnstable_Module_SetGIL\(\w+, Py_MOD_GIL_"
    assert re.search(declared, text, re.DOTALL), f"{source.name} does not declare its GIL use"


def test_each_listed_module_runs_from_its_own_file_in_the_build_this_run_uses() -> None:
    """Every module setup.py compiles is loaded from its own directory, and all of them from
    the same build: the compiled file where the compiled modules are loaded, the ``.py``
    in the pure-Python pass and wheel (never a mix, which would run some decisions in one
    build and some in the other)."""
    package = Path(fcgikit.protocol.__file__ or "").parent.parent
    compiled = fcgikit.protocol.ACCELERATED
    if os.environ.get("FCGIKIT_PURE_PYTHON") == "1":
        assert not compiled
    for name in COMPILED:
        module = importlib.import_module(name)
        expected = package.joinpath(*name.split(".")[1:]).parent
        assert module.__spec__ is not None
        assert isinstance(module.__loader__, ExtensionFileLoader) is compiled, name
        for where in (module.__file__, module.__spec__.origin):
            assert where is not None and Path(where).is_file(), (name, where)
            assert Path(where).parent == expected, (name, where)
            assert Path(where).suffix == (".so" if compiled else ".py"), (name, where)
