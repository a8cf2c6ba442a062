"""flup's WSGIServer keywords, as fcgikit's settings (the .fcgi files run as processes are in
tests/test_cli.py)."""

from __future__ import annotations

import pytest

from fcgikit.compat import WSGIServer, flup_prefork_pool
from fcgikit.errors import ConfigError


def hello(environ: object, start_response: object) -> list[bytes]:
    return [b"hello"]


def test_flup_prefork_keywords_map_onto_a_dynamic_pool() -> None:
    pool = flup_prefork_pool(minSpare=2, maxSpare=5, maxChildren=10, maxRequests=500)
    assert (pool.workers_min, pool.workers_max, pool.max_requests) == (2, 10, 500)
    assert pool.dynamic
    assert flup_prefork_pool(minSpare=0, maxChildren=0).workers_max == 1


@pytest.mark.parametrize(
    ("environ", "allowed"),
    [
        pytest.param({}, None, id="unset"),
        pytest.param({"FCGI_WEB_SERVER_ADDRS": "127.0.0.1, ::1"}, {"127.0.0.1", "::1"}, id="spec"),
        pytest.param(
            {"FCGI_WEB_SERVER_ADDRS": "10.0.0.1", "FCGIKIT_WEB_SERVER_ADDRS": "10.0.0.2"},
            {"10.0.0.2"},
            id="fcgikit-name-first",
        ),
    ],
)
def test_web_server_addrs_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], allowed: set[str] | None
) -> None:
    for name in ("FCGI_WEB_SERVER_ADDRS", "FCGIKIT_WEB_SERVER_ADDRS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    allows = WSGIServer(hello).settings.web_server_addrs
    assert (None if allows is None else set(allows.entries())) == allowed


def test_other_fcgikit_variables_are_not_a_fcgi_files_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A .fcgi file's settings are its keywords: FCGIKIT_THREADS is fcgikit serve's."""
    monkeypatch.setenv("FCGIKIT_THREADS", "3")
    monkeypatch.setenv("FCGIKIT_NO_SUCH_SETTING", "1")
    assert WSGIServer(hello, maxThreads=5).settings.threads == 5


def test_a_wrong_web_server_addrs_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FCGIKIT_WEB_SERVER_ADDRS", raising=False)
    monkeypatch.setenv("FCGI_WEB_SERVER_ADDRS", "localhost")
    with pytest.raises(ConfigError, match="FCGI_WEB_SERVER_ADDRS: 'localhost' is not an IP"):
        WSGIServer(hello)
