"""lighttpd mod_fastcgi: spawning the ``.fcgi`` itself (``bin-path``) and in front of
``fcgikit serve``.

The guide's setup maps every URL to ``/yourapplication.fcgi`` with ``url.rewrite-once``; the
app then sees SCRIPT_NAME ``/yourapplication.fcgi`` and needs a fixer. ``fastcgi.server``
keyed on the mount itself (``fcgikit config lighttpd``) needs none, and at ``"/"`` only with
``fix-root-scriptname`` (without it lighttpd puts the first path segment in SCRIPT_NAME).
"""

from __future__ import annotations

import pytest

from fcgikit.deploy import recommended_fixer, render

from .checks import SiteChecks
from .harness import Process, Scenario, Site, launch_lighttpd, site_fixture

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"

GUIDE = """\
server.modules += ( "mod_fastcgi", "mod_alias", "mod_rewrite" )
fastcgi.server = ("/yourapplication.fcgi" =>
    ((
        "socket" => "{socket}",
        "bin-path" => "{fcgi}",
        "check-local" => "disable",
        "max-procs" => 1
    ))
)

alias.url = (
    "/static/" => "{docroot}/static/"
)

url.rewrite-once = (
    "^(/static($|/.*))$" => "$1",
    "^(/.*)$" => "/yourapplication.fcgi$1"
)
"""

NO_FIX_ROOT = """\
server.modules += ( "mod_fastcgi" )
fastcgi.server = (
    "/" => ((
        "socket" => "{socket}",
        "check-local" => "disable",
    )),
)
"""


def _fixer(mount: str) -> str:
    fixer = recommended_fixer("lighttpd", mount=mount)
    return "none" if fixer is None else fixer.spec


SCENARIOS = [
    Scenario(
        "guide-spawn-rewrite",
        "lighttpd",
        "",
        'Flask guide: "/yourapplication.fcgi" + bin-path + url.rewrite-once',
        fixer="MountFix:",
        backend=None,
        notes="SCRIPT_NAME arrives as /yourapplication.fcgi",
    ),
    Scenario(
        "guide-spawn-rewrite-stripper",
        "lighttpd",
        "",
        'Flask guide: "/yourapplication.fcgi" + bin-path + url.rewrite-once',
        fixer="ScriptNameStripper",
        backend=None,
        notes="the guide's own kind of fixer: drop the .fcgi from SCRIPT_NAME",
    ),
    Scenario(
        "root-no-fix-root-scriptname",
        "lighttpd",
        "",
        '"/" without fix-root-scriptname',
        fixer="LighttpdRootFix",
        notes="SCRIPT_NAME arrives as the first path segment",
    ),
    Scenario("render-root", "lighttpd", "", "fcgikit config lighttpd", fixer=_fixer("")),
    Scenario(
        "render-prefix",
        "lighttpd",
        MOUNT,
        "fcgikit config lighttpd --mount /yourapplication",
        fixer=_fixer(MOUNT),
    ),
    Scenario(
        "render-prefix-spawn",
        "lighttpd",
        MOUNT,
        "fcgikit config lighttpd --mount /yourapplication --spawn app.fcgi (bin-path)",
        fixer=_fixer(MOUNT),
        backend=None,
    ),
    Scenario(
        "render-root-tcp",
        "lighttpd",
        "",
        "fcgikit config lighttpd --port N",
        fixer=_fixer(""),
        backend="tcp",
    ),
]


def launch(site: Site) -> Process:
    layout = site.layout
    scenario = site.scenario
    values = {
        "socket": str(layout.socket),
        "fcgi": str(layout.fcgi),
        "docroot": str(layout.docroot),
    }
    if scenario.id.startswith("guide-spawn-rewrite"):
        fragment = _fill(GUIDE, values)
    elif scenario.id == "root-no-fix-root-scriptname":
        fragment = _fill(NO_FIX_ROOT, values)
    elif scenario.backend is None:
        fragment = render(
            "lighttpd", mount=scenario.mount, socket=str(layout.socket), spawn=str(layout.fcgi)
        )
    elif scenario.backend == "tcp":
        fragment = render("lighttpd", mount=scenario.mount, port=layout.backend_port)
    else:
        fragment = render("lighttpd", mount=scenario.mount, socket=str(layout.socket))
    return launch_lighttpd(site, fragment)


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"{{{key}}}", value)
    return template


site = site_fixture(SCENARIOS, launch)


class TestLighttpd(SiteChecks):
    pass
