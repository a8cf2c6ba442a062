"""Caddy ``reverse_proxy`` + ``transport fastcgi`` in front of ``fcgikit serve``.

At the root Caddy sends SCRIPT_NAME '' and the whole path; under a prefix ``split`` (what
``fcgikit config caddy --mount`` prints) makes it split at the mount. ``handle_path`` strips
the mount before the transport sees it, so the app needs MountFix. Caddy does not merge
``//``: the app sees the path as sent.
"""

from __future__ import annotations

import pytest

from fcgikit.deploy import recommended_fixer, render

from .checks import SiteChecks
from .harness import Process, Scenario, Site, launch_caddy, site_fixture

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"


def _fixer(mount: str) -> str:
    fixer = recommended_fixer("caddy", mount=mount)
    return "none" if fixer is None else fixer.spec


SCENARIOS = [
    Scenario(
        "render-root", "caddy", "", "fcgikit config caddy", fixer=_fixer(""), merges_slashes=False
    ),
    Scenario(
        "render-prefix-split",
        "caddy",
        MOUNT,
        "fcgikit config caddy --mount /yourapplication (split)",
        fixer=_fixer(MOUNT),
        merges_slashes=False,
    ),
    Scenario(
        "render-root-tcp",
        "caddy",
        "",
        "fcgikit config caddy --port N",
        fixer=_fixer(""),
        merges_slashes=False,
        backend="tcp",
    ),
    Scenario(
        "handle-path-prefix",
        "caddy",
        MOUNT,
        "handle_path /yourapplication/* { reverse_proxy ... }",
        fixer=f"MountFix:{MOUNT}",
        merges_slashes=False,
        limitations={
            "bare-mount": (200, "handle_path /yourapplication/* does not match /yourapplication"),
        },
        notes="the mount is stripped: SCRIPT_NAME '' and PATH_INFO without the mount",
    ),
]


def launch(site: Site) -> Process:
    layout = site.layout
    scenario = site.scenario
    if scenario.id == "handle-path-prefix":
        fragment = (
            f"handle_path {MOUNT}/* {{\n"
            f"    reverse_proxy unix/{layout.socket} {{\n"
            "        transport fastcgi\n"
            "    }\n"
            "}\n"
        )
    elif scenario.backend == "tcp":
        fragment = render("caddy", mount=scenario.mount, port=layout.backend_port)
    else:
        fragment = render("caddy", mount=scenario.mount, socket=str(layout.socket))
    return launch_caddy(site, fragment)


site = site_fixture(SCENARIOS, launch)


class TestCaddy(SiteChecks):
    pass
