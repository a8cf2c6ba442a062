"""The import directions of STYLE.md: protocol imports nothing of ours, middleware nothing of
the server or the protocol, the server never the middleware."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fcgikit

#: The package under test: the checkout's, or the installed one (scripts/test --installed).
PACKAGE = Path(fcgikit.__file__).parent

# (subpackage, the fcgikit modules it may import)
RULES = [
    ("protocol", ("fcgikit.protocol", "fcgikit.errors")),
    ("middleware", ("fcgikit.middleware", "fcgikit.errors", "fcgikit.networks")),
    (
        "server",
        (
            "fcgikit.server",
            "fcgikit.protocol",
            "fcgikit.errors",
            "fcgikit.addresses",
            "fcgikit.networks",
        ),
    ),
]


def fcgikit_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "fcgikit" or name.startswith("fcgikit.")}


@pytest.mark.parametrize(("subpackage", "allowed"), RULES, ids=[r[0] for r in RULES])
def test_import_directions(subpackage: str, allowed: tuple[str, ...]) -> None:
    files = sorted((PACKAGE / subpackage).rglob("*.py"))
    assert files, f"fcgikit/{subpackage} has no modules"
    wrong = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in files
        for name in fcgikit_imports(path)
        if not any(name == ok or name.startswith(ok + ".") for ok in allowed)
    }
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("package", ["fcgikit", "fcgikit.protocol", "fcgikit.server"])
def test_public_names_resolve_and_match_all(package: str) -> None:
    # The packages load their public names on first use (PEP 562): a name in __all__ that
    # the lazy table lacks, or the other way round, would only fail for whoever imports it.
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    lazy = getattr(module, "_EXPORTS", {})
    assert set(lazy) <= set(module.__all__), sorted(set(lazy) - set(module.__all__))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        module.nope  # noqa: B018


def test_a_fcgi_file_does_not_load_the_middleware_or_werkzeug() -> None:
    # every spawned process and prefork worker pays for what `from fcgikit import
    # WSGIServer` imports
    import subprocess
    import sys

    code = (
        "import sys; from fcgikit import WSGIServer; "
        "print(sorted(m for m in sys.modules if m.startswith(('werkzeug', 'fcgikit.middleware',"
        " 'fcgikit.server.arbiter'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
