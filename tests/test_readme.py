"""The README's two commands, run the way a user runs them on a stock Debian.

In a copy of the checkout, with Debian's own ``/usr/bin/python3`` (PEP 668: nothing may be
installed into it): each command makes and then reuses the project-local ``.venv``, says what it
does, and fails clearly when the port is taken. ``scripts/test`` runs a few tests there (the
whole suite would run itself); ``scripts/serve-example`` serves the example behind nginx and
behind the development front, and says so only once the page can be fetched.

They compile fcgikit for Debian's Python, once per run of the suite: ``scripts/test --quick``
(the other Pythons' runs in CI) leaves them out with ``-m "not user_commands"``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import require_binary
from tests.processes import DEBIAN_PYTHON, SOURCE_TREE, Backend, require_debian_python

pytestmark = [pytest.mark.integration, pytest.mark.user_commands]

#: Installing compiles fcgikit (mypyc, then C) for Debian's Python: generous, but bounded.
INSTALL_TIMEOUT = 900
#: How long the example may take to answer, each time it starts.
SERVE_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def installed_distributions() -> list[str]:
    """What Debian's python3 has installed, to show that the commands add nothing to it."""
    code = "import importlib.metadata as m; print(sorted(d.name for d in m.distributions()))"
    return subprocess.run(
        [DEBIAN_PYTHON, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    ).stdout.splitlines()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the checkout's files (tracked and new, as ``git ls-files`` lists them)."""
    require_debian_python()
    copy = tmp_path_factory.mktemp("user") / "fcgikit"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=SOURCE_TREE,
        capture_output=True,
    )
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.decode().split("\0")):
            if (SOURCE_TREE / name).is_file():
                (copy / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(SOURCE_TREE / name, copy / name)
    else:  # an unpacked sdist
        ignored = shutil.ignore_patterns(".venv", "build", "dist", "*.so", "__pycache__")
        shutil.copytree(SOURCE_TREE, copy, ignore=ignored)
    yield copy


def run_script(checkout: Path, *args: str, env: dict[str, str]) -> Backend:
    """``args`` run from ``checkout`` with all output on stderr, so its lines can be waited on."""
    command = " ".join(f"'{arg}'" for arg in args)
    return Backend(
        ["bash", "-c", f"exec {command} 1>&2"],
        cwd=checkout,
        env={"PYTHON": DEBIAN_PYTHON, **env},
        as_a_user=True,
    )


def finish(script: Backend, timeout: float) -> int:
    """The exit status of a script that ends by itself (killed if it has not within timeout)."""
    try:
        script.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        script.kill()
        raise AssertionError(f"still running after {timeout}s:\n{script.stderr}") from None
    return script.stop()


def stop(script: Backend) -> None:
    """``kill PID``: the script stops what it started, then exits (Ctrl-C's SIGINT takes
    the same path, but a test cannot send it: a process started with SIGINT ignored, as
    pytest-xdist's workers are, passes that on, and bash may not trap it then)."""
    assert script.stop(signal.SIGTERM, timeout=60) == 143, script.stderr
    with pytest.raises(ProcessLookupError):
        os.killpg(script.proc.pid, 0)  # nothing it started is left


def test_serve_example_says_when_the_port_is_taken(checkout: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        script = run_script(checkout, "scripts/serve-example", env={"PORT": str(port)})
        assert finish(script, timeout=60) == 1
    assert f"port {port} on 127.0.0.1 is taken" in script.stderr
    assert "PORT=9000 scripts/serve-example" in script.stderr
    assert not (checkout / ".venv").exists()  # refused before installing anything


# The test bounds each of its steps itself; pytest's own per-test timeout (pyproject) is shorter
# than the install alone may take on a busy machine, and would cut it off without the step's
# output. So this test's bound is the sum of its steps' bounds.
@pytest.mark.timeout(INSTALL_TIMEOUT + 2 * (SERVE_TIMEOUT + 30 + 60))  # + answer + stop
def test_test_then_serve_example_with_debians_python(checkout: Path) -> None:
    before = installed_distributions()
    tests = run_script(
        checkout,
        "scripts/test",
        "--quick",
        "tests/protocol/test_records.py",
        env={"PYTEST_WORKERS": "1"},
    )
    assert finish(tests, timeout=INSTALL_TIMEOUT) == 0, tests.stderr
    assert re.search(r"\d+ passed", tests.stderr), tests.stderr
    assert f"creating .venv from {DEBIAN_PYTHON}" in tests.stderr
    assert "compiles the accelerator" in tests.stderr
    assert installed_distributions() == before  # Debian's python3 is as it was

    # nginx: the line that gives the address comes only once nginx answers there
    require_binary("nginx")
    port = free_port()
    example = run_script(checkout, "scripts/serve-example", env={"PORT": str(port)})
    try:
        example.wait_for(rf"nginx on http://127\.0\.0\.1:{port}/", timeout=SERVE_TIMEOUT)
        assert "installed and current" in example.stderr  # .venv reused, nothing installed
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as reply:
            body = reply.read()
    finally:
        stop(example)
    assert body.startswith(b"Hello from Flask over FastCGI!")
    assert f"http://127.0.0.1:{port}/hello/World".encode() in body  # url_for
    assert port_is_free(port)

    # the same command on a machine without nginx: the development front
    port = free_port()
    no_nginx = ":".join(p for p in os.environ["PATH"].split(":") if not p.endswith("sbin"))
    example = run_script(
        checkout, "scripts/serve-example", env={"PORT": str(port), "PATH": no_nginx}
    )
    try:
        example.wait_for(
            rf"development front on http://127\.0\.0\.1:{port}/", timeout=SERVE_TIMEOUT
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello/World", timeout=30) as reply:
            assert b"World" in reply.read()
    finally:
        stop(example)
    assert port_is_free(port)
