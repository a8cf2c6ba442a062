from __future__ import annotations

import pytest

from fcgikit.middleware import HeaderFix

from .helpers import Recorder, call, environ


def fixed(fix: HeaderFix, app: Recorder, **env: object) -> dict[str, object]:
    status, _ = call(fix, environ(**env))
    assert status == "200 OK"
    assert app.environ is not None
    return app.environ


def test_guides_custom_proxy_fix() -> None:
    app = Recorder()
    seen = fixed(HeaderFix(app, host="X-FHOST"), app, HTTP_X_FHOST="example.com")
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"]) == ("example.com", "example.com")
    assert seen["fcgikit.orig"] == {"HTTP_HOST": "localhost", "SERVER_NAME": "localhost"}


@pytest.mark.parametrize(
    ("host", "name", "port"),
    [
        ("example.com:8443", "example.com", "8443"),
        ("[2001:db8::1]", "[2001:db8::1]", "80"),
        ("[2001:db8::1]:8080", "[2001:db8::1]", "8080"),
    ],
)
def test_host_with_port(host: str, name: str, port: str) -> None:
    app = Recorder()
    seen = fixed(HeaderFix(app, host="X-Public-Host"), app, HTTP_X_PUBLIC_HOST=host)
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"], seen["SERVER_PORT"]) == (host, name, port)


@pytest.mark.parametrize(
    ("value", "scheme", "https"),
    [
        ("https", "https", "on"),
        ("HTTPS", "https", "on"),
        ("on", "https", "on"),
        ("On", "https", "on"),
        ("off", "http", None),
        ("http", "http", None),
    ],
)
def test_scheme(value: str, scheme: str, https: str | None) -> None:
    app = Recorder()
    seen = fixed(
        HeaderFix(app, scheme="X-Forwarded-Ssl"), app, HTTP_X_FORWARDED_SSL=value, HTTPS="on"
    )
    assert (seen["wsgi.url_scheme"], seen["REQUEST_SCHEME"], seen.get("HTTPS")) == (
        scheme,
        scheme,
        https,
    )


def test_plain_http_without_https_set() -> None:
    app = Recorder()
    seen = fixed(
        HeaderFix(app, scheme="X-Scheme"), app, HTTP_X_SCHEME="http", **{"wsgi.url_scheme": "https"}
    )
    assert (seen["wsgi.url_scheme"], seen["REQUEST_SCHEME"]) == ("http", "http")
    assert "HTTPS" not in seen


@pytest.mark.parametrize("value", ["ftp", "yes", "https, http"])
def test_unknown_scheme_values_are_ignored(value: str) -> None:
    app = Recorder()
    seen = fixed(HeaderFix(app, scheme="X-Scheme"), app, HTTP_X_SCHEME=value)
    assert seen["wsgi.url_scheme"] == "http"
    assert "fcgikit.orig" not in seen


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_headers_change_nothing(value: str) -> None:
    app = Recorder()
    fix = HeaderFix(app, host="X-FHOST", scheme="X-Scheme", remote_addr="X-Real-IP")
    seen = fixed(fix, app, HTTP_X_SCHEME=value, HTTP_X_FHOST=value, HTTP_X_REAL_IP=value)
    assert "fcgikit.orig" not in seen
    assert (seen["wsgi.url_scheme"], seen["HTTP_HOST"]) == ("http", "localhost")


def test_remote_addr() -> None:
    app = Recorder()
    seen = fixed(
        HeaderFix(app, remote_addr="X-Real-IP"),
        app,
        HTTP_X_REAL_IP=" 203.0.113.9 ",
        REMOTE_ADDR="10.0.0.1",
    )
    assert seen["REMOTE_ADDR"] == "203.0.113.9"
    assert seen["fcgikit.orig"] == {"REMOTE_ADDR": "10.0.0.1"}


def test_spoofed_duplicate_is_refused() -> None:
    app = Recorder()
    env = environ(
        HTTP_X_FHOST="evil.example", **{"fcgikit.duplicate_params": frozenset({"HTTP_X_FHOST"})}
    )
    status, body = call(HeaderFix(app, host="X-FHOST"), env)
    assert status == "400 Bad Request"
    assert b"X-Fhost arrived more than once" in body
    assert app.environ is None


def test_untrusted_duplicates_do_not_matter() -> None:
    app = Recorder()
    env = environ(
        HTTP_X_FHOST="ok.example", **{"fcgikit.duplicate_params": frozenset({"HTTP_COOKIE"})}
    )
    assert call(HeaderFix(app, host="X-FHOST"), env)[0] == "200 OK"


def test_needs_a_header() -> None:
    with pytest.raises(ValueError, match="at least one header"):
        HeaderFix(Recorder())


def test_header_name_is_checked() -> None:
    with pytest.raises(ValueError, match="header name"):
        HeaderFix(Recorder(), host="X FHOST")
