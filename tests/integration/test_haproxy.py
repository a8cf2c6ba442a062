"""HAProxy's own FastCGI (``fcgi-app`` + ``proto fcgi``) in front of ``fcgikit serve``.

``render`` scenarios run what ``fcgikit config haproxy`` prints (a ``path-info`` that splits at
the mount, MountFix for the ``//`` and ``..`` HAProxy passes on); ``docroot-only`` scenarios
are the ``fcgi-app`` people write first, with only the mandatory ``docroot``: HAProxy then
sends the whole path as SCRIPT_NAME and no PATH_INFO, and MountFix rebuilds both.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcgikit.deploy import recommended_fixer, render

from .checks import SiteChecks, check_upstreams_survive_a_dead_server
from .harness import (
    Process,
    Scenario,
    Site,
    haproxy_fcgi_app,
    launch_haproxy,
    more_tcp_backends,
    running_site,
    site_fixture,
)

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"
DOCROOT_ONLY = "docroot-only"


def _fixer(mount: str) -> str:
    fixer = recommended_fixer("haproxy", mount=mount)
    return "none" if fixer is None else fixer.spec


SCENARIOS = [
    Scenario(
        "render-root",
        "haproxy",
        "",
        "fcgikit config haproxy",
        fixer=_fixer(""),
        merges_slashes=False,
    ),
    Scenario(
        "render-prefix",
        "haproxy",
        MOUNT,
        "fcgikit config haproxy --mount /yourapplication",
        fixer=_fixer(MOUNT),
        merges_slashes=False,
    ),
    Scenario(
        "render-prefix-no-fixer",
        "haproxy",
        MOUNT,
        "fcgikit config haproxy --mount /yourapplication, without its fixer",
        merges_slashes=False,
        notes="path-info splits right; // and .. reach the app as sent",
    ),
    Scenario(
        "render-root-tcp",
        "haproxy",
        "",
        "fcgikit config haproxy --port N",
        fixer=_fixer(""),
        merges_slashes=False,
        backend="tcp",
    ),
    Scenario(
        "render-prefix-upstreams",
        "haproxy",
        MOUNT,
        "fcgikit config haproxy --mount /yourapplication --upstream A --upstream B "
        "(two fcgikit, health-checked)",
        fixer=_fixer(MOUNT),
        merges_slashes=False,
        backend="tcp",
    ),
    Scenario(
        f"{DOCROOT_ONLY}-root",
        "haproxy",
        "",
        "fcgi-app with docroot only (no path-info)",
        fixer="MountFix:",
        merges_slashes=False,
        notes="SCRIPT_NAME = the whole path, no PATH_INFO; SERVER_NAME = host:port",
    ),
    Scenario(
        f"{DOCROOT_ONLY}-prefix",
        "haproxy",
        MOUNT,
        "fcgi-app with docroot only, use_backend for /yourapplication",
        fixer=f"MountFix:{MOUNT}",
        merges_slashes=False,
        notes="SCRIPT_NAME = the whole path, no PATH_INFO; SERVER_NAME = host:port",
    ),
]


def launch(site: Site) -> Process:
    layout = site.layout
    scenario = site.scenario
    if scenario.id.startswith(DOCROOT_ONLY):
        fragment = haproxy_fcgi_app(scenario.mount, layout.socket)
    elif scenario.id.endswith("-upstreams"):
        fragment = render("haproxy", mount=scenario.mount, upstreams=more_tcp_backends(site, 1))
    elif scenario.backend == "tcp":
        fragment = render("haproxy", mount=scenario.mount, port=layout.backend_port)
    else:
        fragment = render("haproxy", mount=scenario.mount, socket=str(layout.socket))
    return launch_haproxy(site, fragment)


site = site_fixture(SCENARIOS, launch)


class TestHAProxy(SiteChecks):
    pass


# --------------------------------------------------------------------------- HAProxy's params

BASIC = "Basic " + base64.b64encode(b"admin:wrong password").decode()


def _scenario(scenario_id: str) -> Scenario:
    [found] = [s for s in SCENARIOS if s.id == scenario_id]
    return found


@contextlib.contextmanager
def _running(scenario_id: str, tmp_path: Path) -> Iterator[Site]:
    with running_site(_scenario(scenario_id), tmp_path, launch) as running:
        yield running


def test_docroot_only_passes_what_haproxy_derives(tmp_path: Path) -> None:
    """What the config fcgikit prints is there to undo: a SERVER_NAME with the port, and
    REMOTE_USER taken from any client's Authorization header, password unchecked."""
    with _running(f"{DOCROOT_ONLY}-prefix", tmp_path) as running:
        response = running.request("GET", f"{MOUNT}/env/x", headers={"Authorization": BASIC})
    environ = response.json()["environ"]
    assert environ["SERVER_NAME"] == running.host  # 127.0.0.1:PORT
    assert environ["REMOTE_USER"] == "admin"
    assert environ["AUTH_TYPE"] == "Basic"
    assert environ["HTTP_AUTHORIZATION"] is None


def test_rendered_config_sends_a_plain_server_name_and_no_unchecked_user(tmp_path: Path) -> None:
    with _running("render-prefix", tmp_path) as running:
        response = running.request("GET", f"{MOUNT}/env/x", headers={"Authorization": BASIC})
    environ = response.json()["environ"]
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["REMOTE_USER"] is None
    assert environ["AUTH_TYPE"] is None
    # the app checks the password itself, as behind nginx
    assert environ["HTTP_AUTHORIZATION"] == BASIC


def test_upstreams_share_the_load_and_survive_a_dead_server(tmp_path: Path) -> None:
    """Both app servers answer; with one killed, every request still succeeds: HAProxy
    sends a request that could not connect to the other server (retries + redispatch)."""
    [scenario] = [s for s in SCENARIOS if s.id == "render-prefix-upstreams"]
    with running_site(scenario, tmp_path, launch) as running:
        check_upstreams_survive_a_dead_server(running)
