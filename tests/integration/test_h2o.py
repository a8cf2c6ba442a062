"""h2o ``fastcgi.connect`` (in front of ``fcgikit serve``) and ``fastcgi.spawn``.

Under a prefix h2o sends SCRIPT_NAME '' and the whole path as PATH_INFO, and has no setting
to split it: the app needs MountFix there. h2o keeps ``//`` as sent.
"""

from __future__ import annotations

import pytest

from fcgikit.deploy import recommended_fixer, render

from .checks import SiteChecks
from .harness import Process, Scenario, Site, launch_h2o, site_fixture

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"


def _fixer(mount: str) -> str:
    fixer = recommended_fixer("h2o", mount=mount)
    return "none" if fixer is None else fixer.spec


SCENARIOS = [
    Scenario(
        "render-root", "h2o", "", "fcgikit config h2o", fixer=_fixer(""), merges_slashes=False
    ),
    Scenario(
        "render-prefix",
        "h2o",
        MOUNT,
        "fcgikit config h2o --mount /yourapplication",
        fixer=_fixer(MOUNT),
        merges_slashes=False,
        notes="SCRIPT_NAME '' and PATH_INFO with the mount",
    ),
    Scenario(
        "render-prefix-tcp",
        "h2o",
        MOUNT,
        "fcgikit config h2o --mount /yourapplication --port N",
        fixer=_fixer(MOUNT),
        merges_slashes=False,
        backend="tcp",
    ),
    Scenario(
        "render-prefix-serve-mount",
        "h2o",
        MOUNT,
        "fcgikit config h2o --mount /yourapplication, fixer as fcgikit serve --mount",
        serve_args=("--mount", MOUNT),
        merges_slashes=False,
        notes="the fixer applied by fcgikit serve --mount instead of in the app",
    ),
    Scenario(
        "render-root-spawn",
        "h2o",
        "",
        "fcgikit config h2o --spawn app.fcgi (fastcgi.spawn)",
        fixer=_fixer(""),
        merges_slashes=False,
        backend=None,
    ),
]


def launch(site: Site) -> Process:
    layout = site.layout
    scenario = site.scenario
    if scenario.backend is None:
        fragment = render("h2o", mount=scenario.mount, spawn=str(layout.fcgi))
    elif scenario.backend == "tcp":
        fragment = render("h2o", mount=scenario.mount, port=layout.backend_port)
    else:
        fragment = render("h2o", mount=scenario.mount, socket=str(layout.socket))
    return launch_h2o(site, fragment)


site = site_fixture(SCENARIOS, launch)


class TestH2o(SiteChecks):
    pass
