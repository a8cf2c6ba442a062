"""ProxyFix: werkzeug's behaviour for X-Forwarded-*, plus RFC 7239 Forwarded."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.middleware.proxy_fix import ProxyFix as WerkzeugProxyFix

from fcgikit.middleware import ProxyFix
from fcgikit.middleware.proxy_fix import parse_forwarded, parse_node
from fcgikit.networks import TrustedNetworks

from .helpers import ABSENT, Recorder, call, environ

COMPARED = (
    "REMOTE_ADDR",
    "wsgi.url_scheme",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
    "PATH_INFO",
)


def seen_by_app(fixer: Any, **env: Any) -> dict[str, Any]:
    app = Recorder()
    status, _ = call(fixer(app), environ(**env))
    assert status == "200 OK"
    assert app.environ is not None
    return app.environ


def both(kwargs: dict[str, int], headers: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    env = {
        "REMOTE_ADDR": "10.0.0.1",
        "SERVER_PORT": "8080",
        "HTTP_HOST": "backend:8080",
        "SCRIPT_NAME": "",
        **headers,
    }
    ours = seen_by_app(lambda app: ProxyFix(app, **kwargs), **env)
    theirs = seen_by_app(lambda app: WerkzeugProxyFix(app, **kwargs), **env)
    return ({k: ours.get(k) for k in COMPARED}, {k: theirs.get(k) for k in COMPARED})


@pytest.mark.parametrize(
    ("kwargs", "headers"),
    [
        pytest.param({}, {}, id="no headers"),
        pytest.param({}, {"HTTP_X_FORWARDED_FOR": "203.0.113.1, 10.0.0.2"}, id="for"),
        pytest.param({"x_for": 2}, {"HTTP_X_FORWARDED_FOR": "203.0.113.1, 10.0.0.2"}, id="for 2"),
        pytest.param(
            {"x_for": 3},
            {"HTTP_X_FORWARDED_FOR": "203.0.113.1, 10.0.0.2"},
            id="fewer values than trusted",
        ),
        pytest.param({"x_for": 0}, {"HTTP_X_FORWARDED_FOR": "203.0.113.1"}, id="untrusted"),
        pytest.param({}, {"HTTP_X_FORWARDED_PROTO": "https"}, id="proto"),
        pytest.param({"x_host": 1}, {"HTTP_X_FORWARDED_HOST": "example.com"}, id="host"),
        pytest.param({"x_host": 1}, {"HTTP_X_FORWARDED_HOST": "example.com:8443"}, id="host:port"),
        pytest.param({"x_host": 1}, {"HTTP_X_FORWARDED_HOST": "[::1]"}, id="v6 host"),
        pytest.param({"x_host": 1}, {"HTTP_X_FORWARDED_HOST": "[::1]:81"}, id="v6 host:port"),
        pytest.param({"x_port": 1}, {"HTTP_X_FORWARDED_PORT": "443"}, id="port"),
        pytest.param(
            {"x_port": 1}, {"HTTP_X_FORWARDED_PORT": "443", "HTTP_HOST": "[::1]"}, id="port v6"
        ),
        pytest.param(
            {"x_port": 1}, {"HTTP_X_FORWARDED_PORT": "443", "HTTP_HOST": ""}, id="port without host"
        ),
        pytest.param(
            {"x_host": 1, "x_port": 1},
            {"HTTP_X_FORWARDED_HOST": "a.example:1", "HTTP_X_FORWARDED_PORT": "2"},
            id="host then port",
        ),
        pytest.param({"x_prefix": 1}, {"HTTP_X_FORWARDED_PREFIX": "/shop"}, id="prefix"),
        pytest.param(
            {"x_for": 1}, {"HTTP_X_FORWARDED_FOR": '"203.0.113.1", ,'}, id="quoted and empty values"
        ),
    ],
)
def test_same_as_werkzeug(kwargs: dict[str, int], headers: dict[str, str]) -> None:
    ours, theirs = both(kwargs, headers)
    assert ours == theirs


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.from_regex(r"[0-9a-f.:]{1,8}", fullmatch=True), max_size=5),
    trusted=st.integers(0, 6),
)
def test_trusted_hop_rule_same_as_werkzeug(values: list[str], trusted: int) -> None:
    ours, theirs = both({"x_for": trusted}, {"HTTP_X_FORWARDED_FOR": ", ".join(values)})
    assert ours["REMOTE_ADDR"] == theirs["REMOTE_ADDR"]


def test_https_and_request_scheme_follow_the_scheme() -> None:
    seen = seen_by_app(ProxyFix, HTTP_X_FORWARDED_PROTO="HTTPS", REQUEST_SCHEME="http")
    assert (seen["wsgi.url_scheme"], seen["REQUEST_SCHEME"], seen["HTTPS"]) == (
        "https",
        "https",
        "on",
    )
    seen = seen_by_app(
        ProxyFix, HTTP_X_FORWARDED_PROTO="http", HTTPS="on", **{"wsgi.url_scheme": "https"}
    )
    assert (seen["wsgi.url_scheme"], seen["REQUEST_SCHEME"]) == ("http", "http")
    assert "HTTPS" not in seen
    assert seen["fcgikit.orig"]["HTTPS"] == "on"


def test_originals_are_kept() -> None:
    seen = seen_by_app(
        lambda app: ProxyFix(app, x_host=1),
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="203.0.113.1",
        HTTP_X_FORWARDED_HOST="example.com",
    )
    assert seen["fcgikit.orig"] == {
        "REMOTE_ADDR": "10.0.0.1",
        "HTTP_HOST": "localhost",
        "SERVER_NAME": "localhost",
    }


@pytest.mark.parametrize(
    ("kwargs", "duplicated"),
    [
        ({}, "HTTP_X_FORWARDED_FOR"),
        ({}, "HTTP_X_FORWARDED_PROTO"),
        ({"x_host": 1}, "HTTP_X_FORWARDED_HOST"),
        ({"x_port": 1}, "HTTP_X_FORWARDED_PORT"),
        ({"x_prefix": 1}, "HTTP_X_FORWARDED_PREFIX"),
        ({"forwarded": 1}, "HTTP_FORWARDED"),
    ],
)
def test_trusted_header_sent_twice_is_refused(kwargs: dict[str, int], duplicated: str) -> None:
    app = Recorder()
    env = environ(**{duplicated: "6.6.6.6", "fcgikit.duplicate_params": frozenset({duplicated})})
    status, body = call(ProxyFix(app, **kwargs), env)
    assert status == "400 Bad Request"
    assert b"arrived more than once" in body
    assert app.environ is None
    assert "ProxyFix" in env["wsgi.errors"].getvalue()


def test_untrusted_header_sent_twice_is_fine() -> None:
    dups = frozenset({"HTTP_X_FORWARDED_HOST", "HTTP_FORWARDED", "HTTP_COOKIE"})
    seen = seen_by_app(
        ProxyFix, HTTP_X_FORWARDED_FOR="203.0.113.1", **{"fcgikit.duplicate_params": dups}
    )
    assert seen["REMOTE_ADDR"] == "203.0.113.1"


@pytest.mark.parametrize("count", [-1, 1.5, "1"])
def test_counts_are_checked(count: Any) -> None:
    with pytest.raises(ValueError, match="int >= 0"):
        ProxyFix(Recorder(), x_host=count)


# -- RFC 7239 Forwarded ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "elements"),
    [
        ("for=192.0.2.43", [{"for": "192.0.2.43"}]),
        ('For="[2001:db8:cafe::17]:4711"', [{"for": "[2001:db8:cafe::17]:4711"}]),
        (
            "for=192.0.2.60;proto=http;by=203.0.113.43",
            [{"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}],
        ),
        ("for=192.0.2.43, for=198.51.100.17", [{"for": "192.0.2.43"}, {"for": "198.51.100.17"}]),
        (
            "for=unknown, for=_hidden, for=_SEVKISEK",
            [{"for": "unknown"}, {"for": "_hidden"}, {"for": "_SEVKISEK"}],
        ),
        (
            ' ; for=_a ;; proto=https ,, ,for="1.2.3.4:80" ',
            [{"for": "_a", "proto": "https"}, {"for": "1.2.3.4:80"}],
        ),
        ('host="ex\\ample.com:8080"', [{"host": "example.com:8080"}]),
        ('host="[2001:db8::1]:443"', [{"host": "[2001:db8::1]:443"}]),
        ('for="2001:db8::1"', [{"for": "2001:db8::1"}]),
        ("secret=x;for=_p", [{"secret": "x", "for": "_p"}]),
        ("", []),
    ],
)
def test_parse_forwarded(header: str, elements: list[dict[str, str]]) -> None:
    assert parse_forwarded(header) == elements


@pytest.mark.parametrize(
    "header",
    [
        'for="unterminated',
        "for=1.2.3.4;for=5.6.7.8",
        "for = 1.2.3.4",
        "for=1.2.3.4 proto=http",
        'for="1.2.3.4"x',
        "for=[2001:db8::1]",
        'for="[2001:db8::1"',
        'for="[zz::1]"',
        'for="300.1.1.1"',
        "for=client",
        'for="1.2.3.4:999999"',
        'for="1.2.3.4:x"',
        'for="[::1]x"',
        'for="1:2:zz"',
        'by="bad by"',
        'proto="ht tp"',
        'host="a b"',
        "proto=http, for=1.2.3.4:",
    ],
)
def test_malformed_forwarded_is_rejected_whole(header: str) -> None:
    assert parse_forwarded(header) is None


def test_parse_node() -> None:
    assert parse_node("192.0.2.1:8080") == ("192.0.2.1", "8080")
    assert parse_node("[::1]") == ("::1", None)
    assert parse_node("unknown:_port") == ("unknown", "_port")


def forwarded(header: str, count: int = 1, **env: Any) -> dict[str, Any]:
    return seen_by_app(
        lambda app: ProxyFix(app, x_for=1, x_proto=1, forwarded=count),
        HTTP_FORWARDED=header,
        REMOTE_ADDR="10.0.0.1",
        REMOTE_PORT="5000",
        **env,
    )


def test_forwarded_sets_address_scheme_and_host() -> None:
    seen = forwarded('for="[2001:db8::7]:4711";proto=https;host=example.com;by=_edge')
    assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == ("2001:db8::7", "4711")
    assert (seen["wsgi.url_scheme"], seen["HTTPS"], seen["REQUEST_SCHEME"]) == (
        "https",
        "on",
        "https",
    )
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"]) == ("example.com", "example.com")
    assert seen["fcgikit.forwarded"]["by"] == "_edge"
    assert seen["fcgikit.orig"]["REMOTE_ADDR"] == "10.0.0.1"


def test_forwarded_counts_hops_from_the_right() -> None:
    header = "for=198.51.100.1, for=203.0.113.2;proto=https, for=10.0.0.3"
    assert forwarded(header, count=1)["REMOTE_ADDR"] == "10.0.0.3"
    assert forwarded(header, count=2)["REMOTE_ADDR"] == "203.0.113.2"
    assert forwarded(header, count=3)["REMOTE_ADDR"] == "198.51.100.1"


@pytest.mark.parametrize(("node", "address"), [("unknown", "unknown"), ("_hidden", "_hidden")])
def test_forwarded_unknown_and_obfuscated_clients(node: str, address: str) -> None:
    seen = forwarded(f'for="{node}:_p1"')
    assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == (address, "5000")


def test_trusted_element_alone_describes_the_hop() -> None:
    # The client adds X-Forwarded-Proto; the proxy's Forwarded says nothing about proto.
    seen = forwarded(
        "for=203.0.113.9", HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_FOR="6.6.6.6"
    )
    assert seen["REMOTE_ADDR"] == "203.0.113.9"
    assert seen["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("for=203.0.113.9", id="too few elements"),
        pytest.param('for="203.0.113.9', id="does not parse"),
    ],
)
def test_without_a_trusted_element_x_forwarded_applies(header: str) -> None:
    seen = forwarded(header, count=2, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert seen["REMOTE_ADDR"] == "198.51.100.7"
    assert "fcgikit.forwarded" not in seen


def test_port_and_prefix_always_follow_their_counts() -> None:
    seen = seen_by_app(
        lambda app: ProxyFix(app, forwarded=1, x_port=1, x_prefix=1),
        HTTP_FORWARDED="host=example.com",
        HTTP_X_FORWARDED_PORT="8443",
        HTTP_X_FORWARDED_PREFIX="/shop",
    )
    assert (seen["HTTP_HOST"], seen["SERVER_PORT"], seen["SCRIPT_NAME"]) == (
        "example.com:8443",
        "8443",
        "/shop",
    )


def test_forwarded_not_trusted_by_default() -> None:
    seen = seen_by_app(ProxyFix, HTTP_FORWARDED="for=203.0.113.9", REMOTE_ADDR="10.0.0.1")
    assert seen["REMOTE_ADDR"] == "10.0.0.1"


# -- trusted: whose headers count (gunicorn's forwarded_allow_ips) ----------------------------

#: what a proxy in front of the web server sent, through the web server
PROXY_HEADERS = {
    "HTTP_X_FORWARDED_FOR": "198.51.100.7",
    "HTTP_X_FORWARDED_PROTO": "https",
    "HTTP_X_FORWARDED_HOST": "www.example.com",
    "HTTP_X_FORWARDED_PORT": "443",
    "HTTP_X_FORWARDED_PREFIX": "/shop",
    "HTTP_FORWARDED": "for=192.0.2.60;proto=https",
}
EVERY_HEADER = {"x_for": 1, "x_proto": 1, "x_host": 1, "x_port": 1, "x_prefix": 1}
PROXY_RESULT = ("198.51.100.7", "https", "www.example.com:443", "/shop")
UNTOUCHED = ("{remote}", "http", "localhost", "")


def seen_from(remote: Any, trusted: Any, **kwargs: Any) -> tuple[str, ...]:
    env = {**PROXY_HEADERS, "REMOTE_ADDR": remote, "SCRIPT_NAME": ""}
    seen = seen_by_app(lambda app: ProxyFix(app, **kwargs, trusted=trusted), **env)
    return tuple(
        seen.get(key, "-") for key in ("REMOTE_ADDR", "wsgi.url_scheme", "HTTP_HOST", "SCRIPT_NAME")
    )


@pytest.mark.parametrize(
    ("remote", "trusted", "applied"),
    [
        pytest.param("127.0.0.1", "127.0.0.1,::1", True, id="loopback proxy, gunicorn default"),
        pytest.param("::1", "127.0.0.1,::1", True, id="v6 loopback proxy"),
        pytest.param("::ffff:127.0.0.1", "127.0.0.1,::1", True, id="v4-mapped loopback"),
        pytest.param("203.0.113.9", "127.0.0.1,::1", False, id="a client reaching nginx directly"),
        pytest.param("10.8.0.3", "10.0.0.0/8", True, id="proxy in a v4 network"),
        pytest.param("10.8.0.3", ["192.0.2.1", "10.0.0.0/8"], True, id="a list of entries"),
        pytest.param("172.16.0.1", "10.0.0.0/8", False, id="outside the v4 network"),
        pytest.param("fd00::a", "fd00::/8", True, id="proxy in a v6 network"),
        pytest.param("fe80::a", "fd00::/8", False, id="outside the v6 network"),
        pytest.param("203.0.113.9", "*", True, id="star: everyone"),
        pytest.param("127.0.0.1", "", False, id="empty: nobody"),
        pytest.param("127.0.0.1", [], False, id="empty list: nobody"),
        pytest.param("unix:", "127.0.0.1", True, id="client on nginx's unix socket"),
        pytest.param("", "*", True, id="no address, star"),
        pytest.param("", "127.0.0.1", False, id="empty REMOTE_ADDR"),
        pytest.param(ABSENT, "127.0.0.1", False, id="no REMOTE_ADDR"),
        pytest.param("203.0.113.9", None, True, id="None: werkzeug's hop counts alone"),
    ],
)
def test_headers_count_only_from_trusted_addresses(
    remote: Any, trusted: Any, applied: bool
) -> None:
    seen = seen_from(remote, trusted, **EVERY_HEADER)
    if applied:
        assert seen == PROXY_RESULT
    else:
        assert seen == (remote if remote is not ABSENT else "-", *UNTOUCHED[1:])


@pytest.mark.parametrize(
    ("remote", "applied"),
    [pytest.param("10.0.0.2", True, id="trusted"), pytest.param("192.0.2.9", False, id="not")],
)
def test_forwarded_counts_only_from_trusted_addresses(remote: str, applied: bool) -> None:
    seen = seen_by_app(
        lambda app: ProxyFix(app, forwarded=1, trusted=TrustedNetworks.parse("10.0.0.0/8", "t")),
        HTTP_FORWARDED='for="[2001:db8::7]:4711";proto=https',
        REMOTE_ADDR=remote,
    )
    assert (seen["REMOTE_ADDR"] == "2001:db8::7") is applied
    assert ("fcgikit.forwarded" in seen) is applied


def test_an_untrusted_client_sending_a_header_twice_reaches_the_app_untouched() -> None:
    # The 400 is for a trusted header that came twice; from anyone else nothing is trusted.
    dup = frozenset({"HTTP_X_FORWARDED_FOR"})
    app = Recorder()
    env = environ(
        REMOTE_ADDR="203.0.113.9",
        HTTP_X_FORWARDED_FOR="6.6.6.6",
        **{"fcgikit.duplicate_params": dup},
    )
    status, _ = call(ProxyFix(app, trusted="127.0.0.1"), env)
    assert status == "200 OK"
    assert app.environ is not None and app.environ["REMOTE_ADDR"] == "203.0.113.9"
    env["REMOTE_ADDR"] = "127.0.0.1"
    assert call(ProxyFix(Recorder(), trusted="127.0.0.1"), env)[0] == "400 Bad Request"


def test_headers_from_an_untrusted_address_are_logged_once() -> None:
    fixer = ProxyFix(Recorder(), trusted="127.0.0.1, ::1")
    quiet = environ(REMOTE_ADDR="203.0.113.9")  # no proxy header: nothing worth saying
    call(fixer, quiet)
    assert quiet["wsgi.errors"].getvalue() == ""
    first = environ(REMOTE_ADDR="10.0.0.7", HTTP_X_FORWARDED_PROTO="https")
    call(fixer, first)
    line = first["wsgi.errors"].getvalue()
    assert line.count("\n") == 1
    assert "X-Forwarded-Proto from 10.0.0.7" in line
    assert "127.0.0.1, ::1" in line and "--forwarded-allow-ips" in line
    again = environ(REMOTE_ADDR="10.0.0.8", HTTP_X_FORWARDED_FOR="1.2.3.4")
    call(fixer, again)
    assert again["wsgi.errors"].getvalue() == ""


def test_a_bad_trusted_entry_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"ProxyFix trusted: 'localhost' is not an IP address"):
        ProxyFix(Recorder(), trusted="10.0.0.0/8, localhost")
