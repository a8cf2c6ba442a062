"""Each setting declared once: what every declaration must have, and that each one reads the
same value back from the command line, the environment and a config file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from fcgikit.addresses import TcpAddress, UnixAddress
from fcgikit.cli import _build_parser
from fcgikit.errors import ConfigError
from fcgikit.networks import TrustedNetworks
from fcgikit.server.listeners import SocketOwner
from fcgikit.server.settings import SERVE_SETTINGS, PoolSettings, ServerSettings
from fcgikit.server.settings.declaration import Setting, settings_of
from fcgikit.server.settings.sources import toml_value
from tests.server.settings.helpers import serve_settings

DECLARED = [declared for cls in SERVE_SETTINGS for declared in settings_of(cls)]

#: a value other than the default for every setting: the round trips below use it
SAMPLES: dict[str, Any] = {
    "app": "yourapplication:create_app('x, y')",
    "chdir": "/srv/app",
    "workers": (2, 8),
    "http": TcpAddress("::1", 8000),
    "mount": "/yourapplication",
    "proxy_hops": 2,
    "forwarded": 1,
    "forwarded_allow_ips": TrustedNetworks.parse("10.0.0.0/8, ::1", "a test"),
    "reload": True,
    "reload_dir": ("/srv/app", "/srv/lib"),
    "reload_engine": "poll",
    "log_level": "debug",
    "log_file": "/var/log/fcgikit.log",
    "binds": (UnixAddress("/run/app.sock"), TcpAddress("127.0.0.1", 9000)),
    "threads": 32,
    "max_queued": 0,
    "max_queued_memory": 256 << 20,
    "multiplexed": True,
    "debug": True,
    "graceful_timeout": 2.5,
    "shutdown_delay": 10.0,
    "ping_path": "/ping",
    "ping_response": "OK, all good",
    "body_timeout": None,
    "idle_connection_timeout": 30.0,
    "umask": 0o007,
    "socket_mode": 0o660,
    "socket_owner": SocketOwner("www-data", "www-data"),
    "web_server_addrs": TrustedNetworks.parse("10.0.0.1, ::1, fd00::/8", "a test"),
    "access_log": "-",
    "access_log_format": "json",
    "log_config": "/etc/yourapplication/logging.toml",
    "idle_timeout": 0.5,
    "max_requests": 1000,
    "max_requests_jitter": 100,
    "timeout": 60.0,
    "slow_log": 5.0,
    "preload": True,
    "pidfile": "/run/app.pid",
    "status_path": "/fcgikit-status",
    "status_allow": TrustedNetworks.parse("192.0.2.10, 10.0.0.0/8", "a test"),
    "status_show_query": True,
    "user": "www-data",
    "group": "33",
}


def test_every_setting_has_a_flag_help_a_variable_and_a_sample() -> None:
    assert DECLARED
    for declared in DECLARED:
        assert declared.flag.startswith("--") or declared.positional, declared
        assert declared.help and not declared.help.endswith("."), declared.flag
        assert re.fullmatch(r"FCGIKIT_[A-Z_]+", declared.env), declared.flag
        assert declared.kind.accepts, declared.flag
        assert declared.field in SAMPLES, f"add a sample value of {declared.flag} to SAMPLES"
    assert set(SAMPLES) == {declared.field for declared in DECLARED}


def test_names_are_unique_across_the_settings_classes() -> None:
    for attribute in ("field", "name", "env", "dest"):
        values = [getattr(declared, attribute) for declared in DECLARED]
        assert len(values) == len(set(values)), attribute


def test_every_setting_is_an_option_of_fcgikit_serve_with_its_help() -> None:
    [serve] = [
        parser
        for action in _build_parser()._subparsers._group_actions  # type: ignore[union-attr]
        for name, parser in action.choices.items()  # type: ignore[union-attr]
        if name == "serve"
    ]
    actions = {action.dest: action for action in serve._actions}
    for declared in DECLARED:
        action = actions[declared.dest]
        assert action.help is not None and action.help.startswith(declared.help)
        if not declared.positional:
            assert declared.flag in action.option_strings


def sample_text(declared: Setting) -> str:
    shown = declared.kind.show(SAMPLES[declared.field])
    return ",".join(map(str, shown)) if isinstance(shown, list) else str(shown)


def command_line(declared: Setting) -> list[str]:
    if declared.positional:
        return [sample_text(declared)]
    if declared.kind.is_flag:
        return [declared.flag if SAMPLES[declared.field] else f"--no-{declared.name}"]
    return [declared.flag, sample_text(declared)]


@pytest.mark.parametrize("declared", DECLARED, ids=lambda declared: declared.name)
def test_a_value_reads_back_the_same_from_every_source(declared: Setting, tmp_path: Path) -> None:
    sample = SAMPLES[declared.field]
    assert sample != declared.default
    by_argv = serve_settings(*command_line(declared))
    assert (by_argv[declared.field], by_argv.origin(declared.field)) == (sample, "command line")

    environ = {declared.env: sample_text(declared)}
    by_env = serve_settings(environ=environ)
    assert by_env[declared.field] == sample
    assert by_env.origin(declared.field) == f"env:{declared.env}"

    config = tmp_path / "fcgikit.toml"
    config.write_text(f"[serve]\n{declared.name} = {toml_value(declared.kind.show(sample))}\n")
    by_file = serve_settings("--config", str(config))
    assert (by_file[declared.field], by_file.origin(declared.field)) == (sample, f"file:{config}")


def test_the_settings_objects_are_built_from_the_values() -> None:
    resolved = serve_settings("app:app", "--threads", "3", "--max-requests", "9")
    assert resolved.build(ServerSettings).threads == 3
    pool = resolved.build(PoolSettings, workers_min=2, workers_max=4)
    assert (pool.workers_min, pool.workers_max, pool.max_requests) == (2, 4, 9)


@pytest.mark.parametrize(
    ("argv", "pool"),
    [
        pytest.param([], False, id="nothing"),
        pytest.param(["--threads", "4", "--idle-timeout", "5"], False, id="not-pool-only"),
        pytest.param(["--max-requests", "0"], False, id="zero-is-off"),
        pytest.param(["-w", "1"], True, id="one-worker"),
        pytest.param(["--max-requests", "10"], True, id="max-requests"),
        # a single process has a status page too
        pytest.param(["--status-path", "/s"], False, id="status-path"),
        pytest.param(["--preload"], True, id="preload"),
    ],
)
def test_which_settings_ask_for_a_pool(argv: list[str], pool: bool) -> None:
    assert serve_settings(*argv).starts_pool() is pool


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: ServerSettings(threads=0), "--threads must be at least 1, not 0"),
        pytest.param(lambda: ServerSettings(max_queued=-1), "--max-queued cannot be negative"),
        pytest.param(
            lambda: ServerSettings(graceful_timeout=-1), "--graceful-timeout cannot be negative"
        ),
        pytest.param(lambda: ServerSettings(body_timeout=0), "--body-timeout must be positive"),
        pytest.param(lambda: ServerSettings(umask=0o1000), "--umask 1000: permission bits"),
        pytest.param(lambda: ServerSettings(send_timeout=0), "send_timeout must be positive"),
        pytest.param(lambda: ServerSettings(status_path="s"), "--status-path must start with '/'"),
        pytest.param(
            lambda: ServerSettings(access_log_format="common"),
            "--access-log-format takes one of default, combined, json",
        ),
        pytest.param(lambda: PoolSettings(idle_timeout=0), "--idle-timeout must be positive"),
    ],
)
def test_values_made_in_python_are_checked_by_the_same_declaration(make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        make()
