"""The app's source files for --reload: which are watched, how changes are seen, whether a
changed file compiles. Real files in a temp dir; the processes are in test_autoreload.py."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcgikit.errors import ConfigError
from fcgikit.server.sources import (
    PollingWatcher,
    WatchfilesWatcher,
    app_directories,
    compile_error,
    is_watched,
    make_watcher,
    scan,
    watched_directories,
)

ROOT = "/srv/app"


@pytest.mark.parametrize(
    ("path", "watched"),
    [
        pytest.param("/srv/app/app.py", True, id="module"),
        pytest.param("/srv/app/pkg/views.py", True, id="in a package"),
        pytest.param("/srv/app/app.pyc", False, id="bytecode"),
        pytest.param("/srv/app/templates/index.html", False, id="not python"),
        pytest.param("/srv/app/__pycache__/app.cpython-311.py", False, id="__pycache__"),
        pytest.param("/srv/app/.venv/lib/x.py", False, id="hidden directory"),
        pytest.param("/srv/app/venv/lib/python3.11/site-packages/x.py", False, id="site-packages"),
        pytest.param("/srv/app/web/node_modules/x.py", False, id="node_modules"),
        pytest.param("/srv/app/.#app.py", False, id="an editor's lock file"),
        pytest.param("/srv/app/.app.py.swp", False, id="an editor's swap file"),
        pytest.param("/srv/other/app.py", False, id="outside"),
        pytest.param("/srv/app.py", False, id="beside the root"),
    ],
)
def test_which_files_are_watched(path: str, watched: bool) -> None:
    assert is_watched(path, [ROOT]) is watched


def test_which_files_are_watched_under_a_hidden_root() -> None:
    # Only what lies below the root is judged: ~/.local/src/app is watched like any other.
    assert is_watched("/home/u/.local/src/app/app.py", ["/srv", "/home/u/.local/src/app"])


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    for name in ("app.py", "pkg/__init__.py", "pkg/views.py", "pkg/readme.txt",
                 "__pycache__/app.cpython-311.py", ".venv/lib/site.py",
                 "venv/lib/site-packages/dep.py"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    yield tmp_path


def test_scan_sees_the_watched_files_only(tree: Path) -> None:
    found = {os.path.relpath(path, tree) for path in scan([str(tree)])}
    assert found == {"app.py", "pkg/__init__.py", "pkg/views.py"}


def later(path: Path, text: str) -> None:
    """Rewrite ``path`` with a later modification time, whatever the clock's granularity."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def test_polling_sees_changes_additions_and_removals(tree: Path) -> None:
    watcher = PollingWatcher([str(tree)])
    watcher.next_scan = 0.0  # scan now, not in a second
    assert watcher.changes() == set()
    later(tree / "app.py", "x = 2\n")
    later(tree / "pkg" / "new.py", "y = 1\n")
    (tree / "pkg" / "views.py").unlink()
    later(tree / "pkg" / "readme.txt", "not python\n")
    watcher.next_scan = 0.0
    assert watcher.changes() == {
        str(tree / "app.py"),
        str(tree / "pkg" / "new.py"),
        str(tree / "pkg" / "views.py"),
    }
    watcher.next_scan = 0.0
    assert watcher.changes() == set()


def test_polling_waits_for_its_interval(tree: Path) -> None:
    watcher = PollingWatcher([str(tree)])
    later(tree / "app.py", "x = 2\n")
    assert 0 < watcher.timeout() <= 1.0
    assert watcher.changes() == set()  # not yet: the next scan is due in a second


def test_a_file_replaced_within_one_mtime_tick_is_still_seen(tree: Path) -> None:
    # An editor that writes a new file and renames it over the old one, same size, same
    # mtime: the inode tells.
    watcher = PollingWatcher([str(tree)])
    old = (tree / "app.py").stat()
    (tree / ".app.py.new").write_text("x = 3\n")
    os.utime(tree / ".app.py.new", ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(tree / ".app.py.new", tree / "app.py")
    watcher.next_scan = 0.0
    assert watcher.changes() == {str(tree / "app.py")}


@pytest.mark.parametrize(
    ("source", "error"),
    [
        pytest.param(b"x = 1\n", None, id="fine"),
        pytest.param(b"def f(:\n", "app.py:1: invalid syntax", id="syntax error"),
        pytest.param(b"if x:\nreturn\n", "app.py:2: expected an indented block", id="indent"),
        pytest.param(b"x = '\\d'\n", None, id="a SyntaxWarning is not an error"),
        pytest.param(b"x = 1\x00\n", "app.py: source code", id="NUL byte"),
    ],
)
def test_compile_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: bytes, error: str | None
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_bytes(source)
    found = compile_error(str(tmp_path / "app.py"))
    if error is None:
        assert found is None
    else:
        assert found is not None and found.startswith(error), found


def test_compile_error_of_a_removed_file_is_none(tmp_path: Path) -> None:
    assert compile_error(str(tmp_path / "gone.py")) is None


def test_compile_error_outside_the_working_directory_gives_the_whole_path(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("(\n")
    error = compile_error(str(tmp_path / "bad.py"))
    assert error is not None and error.startswith(f"{tmp_path}/bad.py:")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("single:app", "{tmp}", id="a module: its directory"),
        pytest.param("pkg.views:create_app()", "{tmp}/pkg", id="a package: the package"),
        pytest.param("pkg", "{tmp}/pkg", id="a bare package name"),
        pytest.param("nowhere_to_be_found:app", "{cwd}", id="not found: the working dir"),
        pytest.param(":app", "{cwd}", id="no module"),
    ],
)
def test_the_apps_directory_is_found_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, expected: str
) -> None:
    (tmp_path / "single.py").write_text("raise SystemExit('imported')\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert app_directories(spec) == [expected.format(tmp=tmp_path, cwd=os.getcwd())]
    assert "single" not in sys.modules and "pkg" not in sys.modules


def test_reload_dirs_replace_the_apps_directory(tmp_path: Path) -> None:
    assert watched_directories("x:app", [str(tmp_path), "."]) == [str(tmp_path), os.getcwd()]
    with pytest.raises(ConfigError, match=r"--reload-dir /nonexistent/dir: no such directory"):
        watched_directories("x:app", ["/nonexistent/dir"])


def test_engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    roots = [str(tmp_path)]
    assert isinstance(make_watcher(roots, "poll"), PollingWatcher)
    assert make_watcher(roots, "poll").description == "polling every 1s"
    assert isinstance(make_watcher(roots, "auto"), WatchfilesWatcher)
    monkeypatch.setitem(sys.modules, "watchfiles", None)  # as if not installed
    fallback = make_watcher(roots, "auto")
    assert isinstance(fallback, PollingWatcher)
    assert "pip install 'fcgikit[reload]'" in fallback.description
    with pytest.raises(ConfigError, match=r"watchfiles is not installed .* --reload-engine poll"):
        make_watcher(roots, "watchfiles")


def test_watchfiles_reports_changes_and_wakes_the_loop(tree: Path) -> None:
    read, write = os.pipe()
    watcher = WatchfilesWatcher([str(tree)])
    views = str(tree / "pkg" / "views.py")
    try:
        assert watcher.start(write) is watcher
        later(tree / "pkg" / "views.py", "x = 2\n")
        later(tree / "pkg" / "readme.txt", "not python\n")
        found: set[str] = set()
        while views not in found:
            woken, _, _ = select.select([read], [], [], 30)
            assert woken, f"watchfiles reported nothing in 30 s ({found})"
            os.read(read, 64)
            found |= watcher.changes()
        assert found == {views}
    finally:
        watcher.stop()
        os.close(read)
        os.close(write)
    assert watcher.thread is not None and not watcher.thread.is_alive()


def test_watchfiles_that_cannot_watch_falls_back_to_polling(tmp_path: Path) -> None:
    watcher = WatchfilesWatcher([str(tmp_path / "removed after the check")])
    read, write = os.pipe2(os.O_NONBLOCK)
    try:
        used = watcher.start(write)
    finally:
        os.close(read)
        os.close(write)
    assert isinstance(used, PollingWatcher)
