"""Start fcgikit as a real process and wait for it by what it says, never by sleeping."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: The directory the suite runs from.
ROOT = Path(__file__).resolve().parent.parent
#: Where fcgikit's sources are: ROOT, except when the suite runs against an installed fcgikit
#: from a copy of the checkout without them (``scripts/test --installed``), which says where
#: it copied from.
SOURCE_TREE = Path(os.environ.get("FCGIKIT_TEST_SOURCE_TREE") or ROOT)
#: What a process of the suite inherits that a user's shell would not have.
_SUITE_ONLY = ("PYTHONPATH", "VIRTUAL_ENV", "FCGIKIT_", "PYTEST_", "COV_", "COVERAGE_")


class Backend:
    """A child process whose stderr is collected by a thread and searchable while it runs."""

    def __init__(
        self,
        args: list[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: Any = subprocess.DEVNULL,
        as_a_user: bool = False,
    ) -> None:
        """``as_a_user``: run ``args`` in the environment a user's shell has, not the suite's."""
        inherited = {
            k: v for k, v in os.environ.items() if not (as_a_user and k.startswith(_SUITE_ONLY))
        }
        full_env = {**inherited, "PYTHONUNBUFFERED": "1", **(env or {})}
        if not as_a_user:
            # the checkout under test comes first, whatever fcgikit pip last installed editable
            full_env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
            )
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=full_env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.stdout = b""
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None and self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stderr, selectors.EVENT_READ, "err")
        selector.register(self.proc.stdout, selectors.EVENT_READ, "out")
        pending = b""
        open_streams = 2
        while open_streams:
            for key, _ in selector.select():
                data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                if not data:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                if key.data == "out":
                    self.stdout += data
                    continue
                pending += data
                *complete, pending = pending.split(b"\n")
                with self._cond:
                    self._lines.extend(line.decode("utf-8", "replace") for line in complete)
                    self._cond.notify_all()
        selector.close()
        self.proc.stdout.close()
        self.proc.stderr.close()
        with self._cond:
            if pending:
                self._lines.append(pending.decode("utf-8", "replace"))
            self._lines.append("")  # EOF marker
            self._closed = True
            self._cond.notify_all()

    @property
    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self._lines)

    def wait_for(self, pattern: str, timeout: float = 30, *, count: int = 1) -> re.Match[str]:
        """The ``count``-th stderr line matching ``pattern``, woken by each new line."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matches = [m for m in map(regex.search, self._lines) if m]
                if len(matches) >= count:
                    return matches[count - 1]
                if getattr(self, "_closed", False):
                    raise AssertionError(
                        f"process exited with {len(matches)}/{count} lines matching "
                        f"{pattern!r}:\n{self.stderr_unlocked()}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(matches)}/{count} lines match {pattern!r} after {timeout}s:\n"
                        f"{self.stderr_unlocked()}"
                    )
                self._cond.wait(left)

    def count(self, pattern: str) -> int:
        regex = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self._lines if regex.search(line))

    def stderr_unlocked(self) -> str:
        return "\n".join(self._lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self._reader.join(30)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of proc(5); fields[0] here is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: An interpreter every user can run (the test's own may sit under /root).
DEBIAN_PYTHON = "/usr/bin/python3"


def require_debian_python() -> str:
    """Debian's python3, where a test runs Python as www-data or nobody (fails on CI if absent)."""
    from tests.integration.harness import missing

    if not os.access(DEBIAN_PYTHON, os.X_OK):
        missing(f"{DEBIAN_PYTHON} not found: install the Debian package python3")
    return DEBIAN_PYTHON


def copy_pure_package(name: str, into: Path) -> Path:
    """A copy of the imported package ``name`` in ``into``, without its compiled modules.

    For a process that runs as another user (www-data, nobody) under another interpreter
    (Debian's python3): it cannot reach the test's interpreter or checkout under /root or a
    0700 temp dir, and a compiled module only loads into the interpreter it was built for.
    """
    module = __import__(name)
    source = Path(module.__file__ or "").parent
    shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return into


def fcgikit_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fcgikit", *args]
