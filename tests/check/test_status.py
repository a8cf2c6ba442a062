"""``fcgikit status``: a running server's status page, asked for on its socket."""

from __future__ import annotations

import json
from pathlib import Path

from tests.processes import Backend, fcgikit_command
from tests.test_cli import ENV, run_fcgikit


def test_status_command_reads_the_pool_status_page(tmp_path: Path) -> None:
    sock = tmp_path / "status.sock"
    backend = Backend(
        fcgikit_command(
            "serve",
            "apps.hello:app",
            "--bind",
            f"unix:{sock}",
            "--workers",
            "2",
            "--status-path",
            "/fcgikit-status",
        ),
        env=ENV,
    )
    try:
        backend.wait_for(r"worker \d+ ready", count=2)
        text = run_fcgikit("status", f"unix:{sock}")
        assert text.returncode == 0, text.stderr
        assert "workers" in text.stdout.lower()
        as_json = run_fcgikit("status", f"unix:{sock}", "--json")
        assert as_json.returncode == 0, as_json.stderr
        assert isinstance(json.loads(as_json.stdout), dict)
        wrong = run_fcgikit("status", f"unix:{sock}", "--path", "/not-the-status")
        assert wrong.returncode == 1
        assert "not a status page" in wrong.stderr
    finally:
        assert backend.stop() == 0
    unreachable = run_fcgikit("status", f"unix:{tmp_path / 'nobody.sock'}")
    assert unreachable.returncode == 1
    assert "cannot reach" in unreachable.stderr
