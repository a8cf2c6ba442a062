"""Apache mod_proxy_fcgi in front of ``fcgikit serve`` (TCP and unix socket).

Plain ``ProxyPass`` sends SCRIPT_NAME = the whole path and no PATH_INFO; with
``proxy-fcgi-pathinfo=unescape`` (``fcgikit config apache-proxy-fcgi``) Apache splits at the
mount and decodes PATH_INFO itself, so no fixer is needed.
"""

from __future__ import annotations

import pytest

from fcgikit.deploy import recommended_fixer, render

from .checks import SiteChecks
from .harness import Process, Scenario, Site, launch_apache, site_fixture

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"


def _fixer(mount: str) -> str:
    fixer = recommended_fixer("apache-proxy-fcgi", mount=mount)
    return "none" if fixer is None else fixer.spec


def _render(mount: str, backend: str) -> Scenario:
    option = "--port N" if backend == "tcp" else "--socket unix:PATH"
    prefix = f" --mount {mount}" if mount else ""
    return Scenario(
        f"render-{'prefix' if mount else 'root'}-{backend}",
        "apache-proxy-fcgi",
        mount,
        f"fcgikit config apache-proxy-fcgi{prefix} {option}",
        fixer=_fixer(mount),
        backend=backend,
    )


SCENARIOS = [
    _render("", "tcp"),
    _render(MOUNT, "tcp"),
    _render("", "unix"),
    _render(MOUNT, "unix"),
    Scenario(
        "proxypass-plain-prefix",
        "apache-proxy-fcgi",
        MOUNT,
        'ProxyPass "/yourapplication" "fcgi://127.0.0.1:PORT" (no proxy-fcgi-pathinfo)',
        fixer=f"MountFix:{MOUNT}",
        backend="tcp",
        notes="SCRIPT_NAME arrives as the whole path, no PATH_INFO",
    ),
    Scenario(
        "sethandler-prefix",
        "apache-proxy-fcgi",
        MOUNT,
        '<Location /yourapplication> SetHandler "proxy:unix:PATH|fcgi://localhost"',
        fixer="none",
        notes="Apache splits SCRIPT_NAME/PATH_INFO at the first path segment missing on disk",
    ),
]


def launch(site: Site) -> Process:
    layout = site.layout
    scenario = site.scenario
    if scenario.id == "proxypass-plain-prefix":
        fragment = f'ProxyPass "{MOUNT}" "fcgi://127.0.0.1:{layout.backend_port}"\n'
    elif scenario.id == "sethandler-prefix":
        fragment = (
            f"<Location {MOUNT}>\n"
            f'    SetHandler "proxy:unix:{layout.socket}|fcgi://localhost"\n'
            "</Location>\n"
        )
    elif scenario.backend == "tcp":
        fragment = render("apache-proxy-fcgi", mount=scenario.mount, port=layout.backend_port)
    else:
        fragment = render("apache-proxy-fcgi", mount=scenario.mount, socket=str(layout.socket))
    return launch_apache(site, fragment, modules=["proxy", "proxy_fcgi"])


site = site_fixture(SCENARIOS, launch)


class TestApacheProxyFcgi(SiteChecks):
    pass
