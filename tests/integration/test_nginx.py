"""nginx in front of ``fcgikit serve`` on a unix socket (or TCP).

Guide configs are the Flask 1.1 guide's text as users copy it; ``render`` configs come from
:func:`fcgikit.deploy.render`, as ``fcgikit config nginx`` prints them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fcgikit.deploy import render

from .checks import SiteChecks, check_upstreams_survive_a_dead_server
from .harness import (
    Process,
    Scenario,
    Site,
    debian_nginx_host_param,
    launch_nginx,
    more_tcp_backends,
    nginx_keep_conn_parts,
    running_site,
    site_fixture,
)

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"

# Debian's fastcgi_params sends HTTP_HOST $host: configs that include it lose the port.
STOCK_HOST = "{host}" if debian_nginx_host_param() else None
STOCK_NOTE = "Debian's fastcgi_params sets HTTP_HOST $host: the port is lost" if STOCK_HOST else ""

GUIDE_ROOT = """\
location / { try_files $uri @yourapplication; }
location @yourapplication {
    include fastcgi_params;
    fastcgi_param PATH_INFO $fastcgi_script_name;
    fastcgi_param SCRIPT_NAME "";
    fastcgi_pass unix:{socket};
}
"""

GUIDE_PREFIX = """\
location = /yourapplication { rewrite ^ /yourapplication/ last; }
location /yourapplication { try_files $uri @yourapplication; }
location @yourapplication {
    include fastcgi_params;
    fastcgi_split_path_info ^(/yourapplication)(.*)$;
    fastcgi_param PATH_INFO $fastcgi_path_info;
    fastcgi_param SCRIPT_NAME $fastcgi_script_name;
    fastcgi_pass unix:{socket};
}
"""

NAIVE_ROOT = """\
location / {
    include fastcgi_params;
    fastcgi_pass unix:{socket};
}
"""

NAIVE_PREFIX = """\
location /yourapplication {
    include fastcgi_params;
    fastcgi_pass unix:{socket};
}
"""

# trac #321: try_files in the same location as fastcgi_split_path_info empties
# $fastcgi_path_info (Debian's snippets/fastcgi-php.conf works around it with "set").
SPLIT_TRY_FILES = """\
location /yourapplication {
    fastcgi_split_path_info ^(/yourapplication)(.*)$;
    try_files $fastcgi_script_name =404;
    include fastcgi_params;
    fastcgi_param PATH_INFO $fastcgi_path_info;
    fastcgi_param SCRIPT_NAME $fastcgi_script_name;
    fastcgi_pass unix:{socket};
}
"""

TEMPLATES = {
    "guide-root": GUIDE_ROOT,
    "guide-prefix": GUIDE_PREFIX,
    "naive-root": NAIVE_ROOT,
    "naive-root-normalize": NAIVE_ROOT,
    "naive-prefix": NAIVE_PREFIX,
    "split-try-files-prefix": SPLIT_TRY_FILES,
}

SCENARIOS = [
    Scenario(
        "guide-root",
        "nginx",
        "",
        'Flask guide: try_files + @yourapplication, SCRIPT_NAME "" (sent twice)',
        host=STOCK_HOST,
        notes=STOCK_NOTE,
    ),
    Scenario(
        "guide-prefix",
        "nginx",
        MOUNT,
        "Flask guide: fastcgi_split_path_info in @yourapplication",
        host=STOCK_HOST,
        notes=STOCK_NOTE,
    ),
    Scenario(
        "naive-root",
        "nginx",
        "",
        "include fastcgi_params; only",
        fixer="MountFix:",
        host=STOCK_HOST,
        notes="SCRIPT_NAME = the whole path, no PATH_INFO. " + STOCK_NOTE,
    ),
    Scenario(
        "naive-root-normalize",
        "nginx",
        "",
        "include fastcgi_params; only, the app in Normalize() with no mount",
        fixer="Normalize",
        host=STOCK_HOST,
        notes="Normalize tells the missing PATH_INFO from an empty one by "
        "fcgikit.missing_params. " + STOCK_NOTE,
    ),
    Scenario(
        "naive-prefix",
        "nginx",
        MOUNT,
        "location /yourapplication { include fastcgi_params; }",
        fixer=f"MountFix:{MOUNT}",
        host=STOCK_HOST,
        notes="SCRIPT_NAME = the whole path, no PATH_INFO. " + STOCK_NOTE,
    ),
    Scenario(
        "split-try-files-prefix",
        "nginx",
        MOUNT,
        "fastcgi_split_path_info + try_files in one location (trac #321)",
        fixer=f"MountFix:{MOUNT}",
        host=STOCK_HOST,
        notes="PATH_INFO arrives empty for every URL. " + STOCK_NOTE,
    ),
    Scenario("render-root", "nginx", "", "fcgikit config nginx"),
    Scenario("render-prefix", "nginx", MOUNT, "fcgikit config nginx --mount /yourapplication"),
    Scenario(
        "render-prefix-tcp",
        "nginx",
        MOUNT,
        "fcgikit config nginx --mount /yourapplication --port N",
        backend="tcp",
    ),
    Scenario(
        "render-prefix-upstreams",
        "nginx",
        MOUNT,
        "fcgikit config nginx --mount /yourapplication --upstream A --upstream B "
        "(two fcgikit, fastcgi_next_upstream error timeout)",
        backend="tcp",
    ),
]


def launch(site: Site) -> Process:
    layout = site.layout
    scenario = site.scenario
    if scenario.id in TEMPLATES:
        fragment = TEMPLATES[scenario.id].replace("{socket}", str(layout.socket))
        if scenario.id == "split-try-files-prefix":
            # try_files $fastcgi_script_name needs the "script" on disk, as index.php would.
            (layout.docroot / "yourapplication").touch()
    elif scenario.id.endswith("-upstreams"):
        upstreams = more_tcp_backends(site, 1)
        config = render("nginx", mount=scenario.mount, upstreams=upstreams)
        upstream, location = nginx_keep_conn_parts(config)
        return launch_nginx(site, location, http_fragment=upstream)
    elif scenario.backend == "tcp":
        fragment = render("nginx", mount=scenario.mount, port=layout.backend_port)
    else:
        fragment = render("nginx", mount=scenario.mount, socket=str(layout.socket))
    return launch_nginx(site, fragment)


site = site_fixture(SCENARIOS, launch)


class TestNginx(SiteChecks):
    pass


def test_upstreams_share_the_load_and_survive_a_dead_server(tmp_path: Path) -> None:
    """Both app servers answer; with one killed, every request still succeeds: nginx
    passes a request it could not send to the next server (fastcgi_next_upstream error)."""
    [scenario] = [s for s in SCENARIOS if s.id == "render-prefix-upstreams"]
    with running_site(scenario, tmp_path, launch) as running:
        check_upstreams_survive_a_dead_server(running)
