"""Plain CGI mode (fcgikit/cgi.py) as a web server runs it: a process with the request in its
environment and its response on stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

SCRIPT = """\
import sys
from fcgikit.cgi import run_cgi

def app(environ, start_response):
    if environ["PATH_INFO"] == "/exit":
        sys.exit(3)
    raise KeyboardInterrupt

run_cgi(app)
"""

CGI_ENVIRON = {
    "GATEWAY_INTERFACE": "CGI/1.1",
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "/app.cgi",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
}


@pytest.mark.parametrize(
    ("path", "name"),
    [pytest.param("/exit", "SystemExit", id="sys.exit()"), ("/interrupt", "KeyboardInterrupt")],
)
def test_a_process_exit_from_the_app_is_a_500_not_a_missing_response(
    tmp_path: Path, path: str, name: str
) -> None:
    # Without a response the web server's answer is its own 500 with "premature end of
    # script headers" in its log, and nothing about why.
    script = tmp_path / "app.cgi"
    script.write_text(SCRIPT)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PATH_INFO": path, **CGI_ENVIRON}
    if "FCGIKIT_PURE_PYTHON" in os.environ:  # the pass this test runs in
        env["FCGIKIT_PURE_PYTHON"] = os.environ["FCGIKIT_PURE_PYTHON"]
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.stdout.startswith(b"Status: 500 Internal Server Error\r\n"), done
    assert done.returncode == 0
    errors = done.stderr.decode()
    assert f"the app raised {name}" in errors
    assert "Traceback" in errors  # the one log line carries where the app exited
