"""``fcgikit serve --proxy-hops / --forwarded / --forwarded-allow-ips`` (and
FORWARDED_ALLOW_IPS): which proxy headers the app sees, and from whom."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from fcgikit.cli import _fixers, main
from fcgikit.client import FastCGIClient
from fcgikit.errors import ConfigError
from tests.apps.whoami import app as whoami
from tests.processes import ROOT, Backend, fcgikit_command
from tests.server.settings.helpers import serve_settings

ENV = {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
XFF = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}
FORWARDED = {"Forwarded": 'for="[2001:db8::7]:4711";proto=https'}


def seen(args: list[str], remote: str, headers: dict[str, str]) -> str:
    """What the app sees behind the fixers ``fcgikit serve APP *args`` puts in front of it."""

    fixers = _fixers(serve_settings("x:app", *args, environ=dict(os.environ)))
    assert fixers is not None
    environ = {
        "REMOTE_ADDR": remote,
        "REQUEST_URI": "/",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "wsgi.url_scheme": "http",
        "wsgi.errors": open(os.devnull, "w"),  # noqa: SIM115
        **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()},
    }
    try:
        body = fixers(whoami)(environ, lambda status, headers, exc_info=None: None)
    finally:
        environ["wsgi.errors"].close()
    return b"".join(body).decode()


@pytest.mark.parametrize(
    ("args", "variable", "remote", "headers", "expected"),
    [
        pytest.param(
            ["--proxy-hops", "1"],
            None,
            "127.0.0.1",
            XFF,
            "198.51.100.7 https",
            id="default: loopback",
        ),
        pytest.param(
            ["--proxy-hops", "1"], None, "::1", XFF, "198.51.100.7 https", id="default: v6 loopback"
        ),
        pytest.param(
            ["--proxy-hops", "1"], None, "10.0.0.5", XFF, "10.0.0.5 http", id="default: remote"
        ),
        pytest.param(
            ["--proxy-hops", "1"], "10.0.0.0/8", "10.0.0.5", XFF, "198.51.100.7 https", id="env"
        ),
        pytest.param(
            ["--proxy-hops", "1"], "10.0.0.0/8", "127.0.0.1", XFF, "127.0.0.1 http", id="env only"
        ),
        pytest.param(
            ["--proxy-hops", "1", "--forwarded-allow-ips", "fd00::/8"],
            "10.0.0.0/8",
            "fd00::1",
            XFF,
            "198.51.100.7 https",
            id="flag over env",
        ),
        pytest.param(
            ["--proxy-hops", "1", "--forwarded-allow-ips", "fd00::/8"],
            "10.0.0.0/8",
            "10.0.0.5",
            XFF,
            "10.0.0.5 http",
            id="flag replaces env",
        ),
        pytest.param(
            ["--proxy-hops", "1"], "*", "203.0.113.9", XFF, "198.51.100.7 https", id="env star"
        ),
        pytest.param(
            ["--forwarded", "1"], None, "127.0.0.1", FORWARDED, "2001:db8::7 https", id="forwarded"
        ),
        pytest.param(
            ["--forwarded", "1"], None, "127.0.0.1", XFF, "127.0.0.1 http", id="forwarded: no XFF"
        ),
        pytest.param(
            ["--forwarded", "1"],
            None,
            "192.0.2.1",
            FORWARDED,
            "192.0.2.1 http",
            id="forwarded: remote",
        ),
        pytest.param(
            ["--forwarded", "1", "--proxy-hops", "1"],
            None,
            "127.0.0.1",
            XFF,
            "198.51.100.7 https",
            id="both: XFF without Forwarded",
        ),
    ],
)
def test_who_is_believed(
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    variable: str | None,
    remote: str,
    headers: dict[str, str],
    expected: str,
) -> None:
    if variable is None:
        monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    else:
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", variable)
    assert seen(args, remote, headers) == expected


@pytest.mark.parametrize(
    ("args", "variable", "message"),
    [
        pytest.param(
            ["--proxy-hops", "1", "--forwarded-allow-ips", "10.0.0.0/8,proxy.lan"],
            None,
            r"--forwarded-allow-ips: 'proxy\.lan' is not an IP address or network",
            id="bad flag",
        ),
        pytest.param(
            ["--forwarded", "1"],
            "10.0.0.1/8",
            r"FORWARDED_ALLOW_IPS: '10\.0\.0\.1/8' has host bits set",
            id="bad variable",
        ),
        pytest.param(
            ["--forwarded-allow-ips", "10.0.0.0/8"],
            None,
            r"add --proxy-hops N .* or --forwarded N",
            id="whom without what",
        ),
        pytest.param(
            ["--proxy-hops", "-1"], None, r"--proxy-hops cannot be negative", id="negative hops"
        ),
        pytest.param(
            ["--forwarded", "-2"], None, r"--forwarded cannot be negative", id="negative forwarded"
        ),
    ],
)
def test_wrong_settings_say_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, args: list[str], variable: str | None, message: str
) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    if variable is not None:
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", variable)
    with pytest.raises(ConfigError, match=message):
        _fixers(serve_settings("x:app", *args, environ=dict(os.environ)))


def test_the_variable_alone_changes_nothing_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    assert _fixers(serve_settings("x:app", environ=dict(os.environ))) is None
    assert "FORWARDED_ALLOW_IPS is set, but no proxy header is trusted" in caplog.text


def test_a_pool_believes_only_the_allowed_proxy(tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    command = fcgikit_command(
        "serve", "apps.whoami:app", "--bind", f"unix:{sock}", "--workers", "1",
        "--proxy-hops", "1", "--forwarded", "1",
    )  # fmt: skip
    backend = Backend(command, env={**ENV, "FORWARDED_ALLOW_IPS": "10.0.0.0/8, fd00::/8"})
    try:
        backend.wait_for(r"worker \d+ ready")
        with FastCGIClient(f"unix:{sock}") as client:

            def ask(remote: str, headers: dict[str, str]) -> bytes:
                params = {"REMOTE_ADDR": remote}
                return client.request("GET", "/", headers=headers, params=params).body

            assert ask("10.1.2.3", XFF) == b"198.51.100.7 https"
            assert ask("fd00::9", FORWARDED) == b"2001:db8::7 https"
            assert ask("127.0.0.1", XFF) == b"127.0.0.1 http"  # not in the variable's list
            assert ask("203.0.113.9", FORWARDED) == b"203.0.113.9 http"
        backend.wait_for(r"ProxyFix ignored X-Forwarded-For from 127\.0\.0\.1, which is not in")
        assert backend.count("ProxyFix ignored") == 1
    finally:
        assert backend.stop(signal.SIGTERM) == 0


def test_the_flags_are_in_serve_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--forwarded N", "--forwarded-allow-ips", "FORWARDED_ALLOW_IPS", "127.0.0.1,::1"):
        assert flag in text, flag
