"""``fcgikit serve`` with its settings in a config file and the environment, as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import tomllib
from pathlib import Path

from fcgikit.client import FastCGIClient
from tests.processes import Backend, fcgikit_command
from tests.test_cli import ENV, TESTS

APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"served from " + environ["SCRIPT_NAME"].encode() + environ["PATH_INFO"].encode()]
"""


def without_settings(environ: dict[str, str]) -> dict[str, str]:
    """The environment of the tests, less any FCGIKIT_ setting of the one running them."""
    return {name: value for name, value in environ.items() if not name.startswith("FCGIKIT_")}


def run_fcgikit(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fcgikit_command(*args),
        capture_output=True,
        text=True,
        timeout=60,
        env={**without_settings(dict(os.environ)), **ENV, **env},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def test_config_file_alone_serves_and_the_environment_wins_over_it(tmp_path: Path) -> None:
    config = tmp_path / "prod.toml"
    config.write_text(
        "[serve]\n"
        "app = \"apps.hello:create_app('from the file')\"\n"
        f'bind = "unix:{tmp_path / "file.sock"}"\n'
        "threads = 2\n"
    )
    env_sock = tmp_path / "env.sock"
    backend = Backend(
        fcgikit_command("serve", "--config", str(config)),
        env={**ENV, "FCGIKIT_BIND": f"unix:{env_sock}"},
    )
    try:
        backend.wait_for(rf"listening on unix:{env_sock}")
        assert FastCGIClient(f"unix:{env_sock}").request("GET", "/").body == b"from the file"
        assert not (tmp_path / "file.sock").exists()
    finally:
        assert backend.stop(signal.SIGTERM) == 0


def test_a_pool_from_the_config_file_with_the_command_line_on_top(tmp_path: Path) -> None:
    config = tmp_path / "pool.toml"
    sock = tmp_path / "pool.sock"
    config.write_text(
        f'[serve]\napp = "apps.hello:app"\nbind = "unix:{sock}"\nworkers = 3\nmount = "/blog"\n'
    )
    backend = Backend(fcgikit_command("serve", "--config", str(config), "-w", "2"), env=ENV)
    try:
        backend.wait_for(r"static pool of 2 workers")
        backend.wait_for(r"worker \d+ ready", count=2)
        raw = [(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/blog/x"), (b"SCRIPT_NAME", b"")]
        assert FastCGIClient(f"unix:{sock}").request(raw_params=raw).body == b"hello from /x"
    finally:
        assert backend.stop(signal.SIGTERM) == 0


def test_print_config_prints_each_value_and_where_it_came_from(tmp_path: Path) -> None:
    config = tmp_path / "fcgikit.toml"
    config.write_text('[serve]\napp = "apps.hello:app"\nthreads = 2\nmax_queued = 5\n')
    result = run_fcgikit(
        "serve",
        "--config",
        str(config),
        "--max-queued",
        "7",
        "--print-config",
        env={"FCGIKIT_THREADS": "3", "FCGI_WEB_SERVER_ADDRS": "127.0.0.1"},
    )
    assert result.returncode == 0, result.stderr
    origins = {
        line.split(" = ")[0]: line.rsplit("# ", 1)[1]
        for line in result.stdout.splitlines()
        if " = " in line
    }
    assert origins["app"] == f"file:{config}"
    assert origins["threads"] == "env:FCGIKIT_THREADS"
    assert origins["max-queued"] == "command line"
    assert origins["web-server-addrs"] == "env:FCGI_WEB_SERVER_ADDRS"
    assert origins["body-timeout"] == "default"
    printed = tomllib.loads(result.stdout)["serve"]
    assert (printed["threads"], printed["max-queued"]) == (3, 7)
    assert "listening" not in result.stderr  # it printed, it did not serve


def test_a_wrong_setting_stops_the_command_with_where_it_was(tmp_path: Path) -> None:
    config = tmp_path / "fcgikit.toml"
    config.write_text("[serve]\nthread = 4\n")
    result = run_fcgikit("serve", "apps.hello:app", "--config", str(config), env={})
    assert result.returncode == 2
    assert f"fcgikit: {config}: [serve] has no setting 'thread' (did you mean threads?)" in (
        result.stderr
    )
    result = run_fcgikit("serve", "apps.hello:app", "--print-config", env={"FCGIKIT_WORKER": "2"})
    assert result.returncode == 2
    assert "FCGIKIT_WORKER names no setting of fcgikit serve (did you mean FCGIKIT_WORKERS?)" in (
        result.stderr
    )
    result = run_fcgikit("serve", "--bind", "127.0.0.1:0", env={})
    assert result.returncode == 2
    assert "which app?" in result.stderr


def test_sighup_keeps_serving_with_a_relative_chdir_and_config(tmp_path: Path) -> None:
    """The re-executed process starts where the first did: ``--chdir sub`` (or a relative
    --config) still names the same directory. It used to fail with "cannot change to sub"."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "relapp.py").write_text(APP)
    (tmp_path / "fcgikit.toml").write_text('[serve]\napp = "relapp:app"\nchdir = "sub"\n')
    sock = tmp_path / "sub" / "app.sock"
    backend = Backend(
        fcgikit_command("serve", "--config", "fcgikit.toml", "--bind", "unix:app.sock"),
        cwd=tmp_path,
        env={"PYTHONPATH": str(TESTS)},
    )
    try:
        backend.wait_for("listening on unix:app.sock")
        backend.proc.send_signal(signal.SIGHUP)
        backend.wait_for("listening on unix:app.sock", count=2)
        assert FastCGIClient(f"unix:{sock}").request("GET", "/again").body == b"served from /again"
        assert "cannot change to" not in backend.stderr
    finally:
        assert backend.stop(signal.SIGTERM) == 0
    assert not sock.exists()
