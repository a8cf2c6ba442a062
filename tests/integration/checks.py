"""The checks every scenario runs, as a base class each ``test_<server>.py`` subclasses.

A scenario module defines ``SCENARIOS`` and a module-scoped ``site`` fixture (see
:func:`harness.site_fixture`), then ``class TestSomething(SiteChecks): pass``.

For every path below, requested under the scenario's mount with a raw query string:

- the app sees SCRIPT_NAME = the mount and PATH_INFO = the decoded rest (with ``//`` merged
  on servers that merge them), QUERY_STRING byte-for-byte, HTTP_HOST = host:port, scheme http;
- ``url_for`` (relative and absolute) leads back to the same view with the same arguments;

and once per scenario: ``redirect(url_for(...))`` gives the right Location, and a POST body
(small and 10 MiB) arrives byte-exact. A request the web server itself cannot route to the app
is listed in ``Scenario.limitations`` and asserted as that server's answer, not skipped.
"""

from __future__ import annotations

import functools
import hashlib
import os
import signal

import pytest

from .harness import Site

QUERY = "x=1&y=a%20b&z=%2F&q=%3F&e=%C3%A9"

PATHS = [
    pytest.param("root", "/", id="root"),
    pytest.param("plain", "/env/plain", id="plain"),
    pytest.param("space", "/env/with%20space/x", id="space"),
    pytest.param("pct3F", "/env/what%3Fnot", id="pct3F"),
    pytest.param("non-ascii", "/env/caf%C3%A9/%E2%82%AC", id="non-ascii"),
    pytest.param("double-slash", "/env//dbl//slash", id="double-slash"),
    pytest.param("trailing-slash", "/env/trailing/", id="trailing-slash"),
]

BIG_BODY_SIZE = 10 * 1024 * 1024


@functools.cache
def big_body() -> bytes:
    return os.urandom(BIG_BODY_SIZE)


def _check_limitation(site: Site, case: str, target: str) -> bool:
    """Assert the web server's own answer for a case it cannot pass on; True if it was one."""
    limitation = site.scenario.limitations.get(case)
    if limitation is None:
        return False
    status, why = limitation
    response = site.get(target)
    assert response.status == status, f"expected the server's own {status} ({why})"
    assert b'"view"' not in response.body, f"the app answered, so this is no longer true: {why}"
    return True


class SiteChecks:
    @pytest.mark.parametrize(("case", "path"), PATHS)
    def test_environ(self, site: Site, case: str, path: str) -> None:
        target = f"{site.mount}{path}?{QUERY}"
        if _check_limitation(site, case, target):
            return
        response = site.get(target)
        assert response.status == 200, response.body[:2000]
        data = response.json()
        environ = data["environ"]
        assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (
            site.mount,
            site.expected_path_info(path),
        )
        assert environ["QUERY_STRING"] == QUERY
        assert environ["HTTP_HOST"] == site.host
        assert environ["wsgi.url_scheme"] == "http"

    @pytest.mark.parametrize(("case", "path"), PATHS)
    def test_url_for_round_trip(self, site: Site, case: str, path: str) -> None:
        target = f"{site.mount}{path}?{QUERY}"
        if _check_limitation(site, case, target):
            return
        first = site.get(target).json()
        assert first["url_for"].startswith(f"{site.mount}/")
        assert first["url_for_external"] == f"http://{site.host}{first['url_for']}"
        again = site.get(f"{first['url_for']}?{QUERY}")
        assert again.status == 200, again.body[:2000]
        second = again.json()
        assert (second["view"], second["args"]) == (first["view"], first["args"])
        assert second["url_for"] == first["url_for"]

    def test_bare_mount(self, site: Site) -> None:
        # At the root there is no URL without the trailing slash: "/" is the bare mount.
        target = site.mount or "/"
        if _check_limitation(site, "bare-mount", target):
            return
        response = site.get(target)
        if response.status in (301, 302, 307, 308):
            location = response.headers["Location"]
            assert location in (f"{site.mount}/", f"http://{site.host}{site.mount}/")
            return
        assert response.status == 200, response.body[:2000]
        data = response.json()
        assert data["view"] == "index"
        assert data["environ"]["SCRIPT_NAME"] == site.mount
        assert data["environ"]["PATH_INFO"] in (("", "/") if site.mount else ("/",))
        assert data["url_for"] == f"{site.mount}/"

    def test_redirect(self, site: Site) -> None:
        relative = site.get(f"{site.mount}/redirect")
        assert relative.status == 302, relative.body[:2000]
        assert relative.headers["Location"] == f"{site.mount}/env/target"
        absolute = site.get(f"{site.mount}/redirect?external=1")
        assert absolute.status == 302, absolute.body[:2000]
        assert absolute.headers["Location"] == f"http://{site.host}{site.mount}/env/target"

    def test_post_small(self, site: Site) -> None:
        body = b"hello\x00\xff world"
        response = site.request(
            "POST", f"{site.mount}/echo", body, {"Content-Type": "application/octet-stream"}
        )
        assert response.status == 200, response.body[:2000]
        assert response.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    def test_post_10mib(self, site: Site) -> None:
        body = big_body()
        response = site.request(
            "POST", f"{site.mount}/echo", body, {"Content-Type": "application/octet-stream"}
        )
        limit = site.scenario.body_limit
        if limit is not None and limit[0] < len(body):
            _, status, why = limit
            assert response.status == status, f"expected the server's own {status} ({why})"
            assert b'"sha256"' not in response.body, f"the app answered, so not true: {why}"
            return
        assert response.status == 200, response.body[:2000]
        assert response.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def check_upstreams_survive_a_dead_server(site: Site) -> None:
    """For a config that balances two backends: both answer, and with one killed every GET
    and POST still succeeds (the web server sends what it could not deliver to the other)."""
    pids = {site.get(f"{site.mount}/env/n{i}").json()["pid"] for i in range(6)}
    assert len(pids) == 2, "the requests did not reach both backends"
    backend = next(p for p in site.processes if p.name == "backend")
    backend.stop(signal.SIGKILL)
    statuses = [site.get(f"{site.mount}/env/after{i}").status for i in range(10)]
    posted = [site.request("POST", f"{site.mount}/echo", b"x" * 100).status for _ in range(4)]
    assert statuses == [200] * 10
    assert posted == [200] * 4
