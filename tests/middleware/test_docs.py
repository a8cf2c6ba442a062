"""The examples in the module docstrings and in docs/middleware run, and say what they show."""

from __future__ import annotations

import doctest
import importlib
import re
import runpy
from pathlib import Path

import pytest

import fcgikit.middleware

DOCS = Path(__file__).parents[2] / "docs" / "middleware"
EXAMPLES = sorted((DOCS / "examples").glob("*.py"))
PAGES = {page.stem: page.read_text() for page in DOCS.glob("*.rst")}

MODULES = [
    "header_fix",
    "lighttpd_root_fix",
    "mount_fix",
    "normalize",
    "proxy_fix",
    "script_name_stripper",
    "stack",
    "stdout_guard",
    "catalogue",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"fcgikit.middleware.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_docs_example_runs(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(example), run_name="__main__")
    assert capsys.readouterr().out.strip()


def test_every_fixer_has_a_page_with_a_runnable_example() -> None:
    included = {
        name
        for text in PAGES.values()
        for name in re.findall(r"literalinclude:: examples/(\w+)\.py", text)
    }
    assert included == {e.stem for e in EXAMPLES}
    for name in fcgikit.middleware.__all__:
        if name[0].isupper() and name != "StdoutRestrictedError":
            page = re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
            assert page in PAGES, f"no docs/middleware/{page}.rst"
            assert f"examples/{page}.py" in PAGES[page]
            assert page in PAGES["index"]
    assert "wrap" in PAGES
