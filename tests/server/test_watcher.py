"""The watcher runs signal handlers on the main thread, whichever thread the signal hit."""

from __future__ import annotations

import os
from pathlib import Path

from fcgikit.client import FastCGIClient
from tests.processes import ROOT, Backend, fcgikit_command

ENV = {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}


def test_a_sigterm_that_hits_a_request_thread_still_stops_the_server(tmp_path: Path) -> None:
    # The kernel gives a process-directed signal to any thread that does not block it, and
    # Python runs the handler only on the main thread, the watcher's: if the watcher never
    # let it run, the server would serve on and a supervisor's stop would hang.
    sock = tmp_path / "app.sock"
    backend = Backend(
        fcgikit_command("serve", "apps.hello:signals_its_own_thread", "--bind", f"unix:{sock}"),
        env=ENV,
    )
    try:
        backend.wait_for("listening on")
        response = FastCGIClient(f"unix:{sock}").request("GET", "/")
        # the request that was running when the signal came is answered, on a pool thread
        assert response.status == 200
        assert response.body.startswith(b"signalled from fcgikit-thread-")
        backend.wait_for("SIGTERM; finishing running requests")
        code = backend.proc.wait(30)
    finally:
        backend.kill()
    assert code == 0
    assert not sock.exists()
