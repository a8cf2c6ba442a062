"""Starting a worker: what it does after the fork and before it serves, seen in a real pool
started as in tests/server/test_arbiter.py."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.server.test_arbiter import APP_SOURCE, Pool, close


@pytest.mark.skipif(os.geteuid() != 0, reason="--user needs root")
def test_workers_run_as_user_and_group(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    # The worker imports the app as nobody: a directory nobody can read.
    directory = Path(tempfile.mkdtemp(prefix="fcgikit-user-"))
    try:
        directory.chmod(0o755)
        (directory / "prefork_app.py").write_text(APP_SOURCE)
        (directory / "prefork_app.py").chmod(0o644)
        pool = Pool(directory, "--workers", "2", "--user", "nobody", "--group", str(nobody.pw_gid))
        try:
            pool.wait_count(r"worker \d+ ready", 2)
            assert pool.get("/uid").body == f"{nobody.pw_uid}:{nobody.pw_gid}".encode()
            assert os.stat(f"/proc/{pool.proc.pid}").st_uid == 0  # the master stays root
            assert pool.stop() == 0
        finally:
            close(pool)
    finally:
        shutil.rmtree(directory)
