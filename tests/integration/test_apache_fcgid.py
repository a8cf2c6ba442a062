"""Apache mod_fcgid starting the ``.fcgi`` itself (the socket arrives on fd 0).

``.htaccess`` + mod_rewrite is the Flask guide's shared-hosting recipe: SCRIPT_NAME arrives as
``<dir>/yourapplication.fcgi``, so the app needs a fixer (MountFix, which rebuilds the split
from REQUEST_URI, or ScriptNameStripper). The guide's ``RewriteRule ^(.*)$ app.fcgi/$1`` puts
the *decoded* path into the rewrite, and Apache 2.4.60+ answers 403 when that contains a
``%3F``; ``fcgikit config apache-htaccess`` rewrites to the script alone and has no such case. The
server keeps Debian's stock mod_fcgid settings for the ``.htaccess`` scenarios, as a shared
host would, so FcgidMaxRequestLen is the default 128 KiB and a 10 MiB upload is refused by
Apache (500) before the app sees it. ``ScriptAlias`` (``fcgikit config apache-fcgid``) needs
no fixer and takes big uploads.
"""

from __future__ import annotations

import pytest

from fcgikit.deploy import recommended_fixer, render

from .checks import SiteChecks
from .harness import (
    Process,
    Scenario,
    Site,
    launch_apache,
    require_apache_module,
    site_fixture,
    write_fcgi_script,
)

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"
# Debian's fcgid.conf keeps mod_fcgid's default FcgidMaxRequestLen (server config only).
FCGID_BODY_LIMIT = (
    131072,
    500,
    "mod_fcgid's default FcgidMaxRequestLen is 128 KiB and .htaccess cannot raise it",
)


def _fixer(server: str, mount: str) -> str:
    fixer = recommended_fixer(server, mount=mount)
    return "none" if fixer is None else fixer.spec


GUIDE_HTACCESS = """\
<IfModule mod_fcgid.c>
   AddHandler fcgid-script .fcgi
   <Files ~ (\\.fcgi)>
       SetHandler fcgid-script
       Options +FollowSymLinks +ExecCGI
   </Files>
</IfModule>

<IfModule mod_rewrite.c>
   Options +FollowSymlinks
   RewriteEngine On
   RewriteBase /
   RewriteCond %{REQUEST_FILENAME} !-f
   RewriteRule ^(.*)$ yourapplication.fcgi/$1 [QSA,L]
</IfModule>
"""

UNSAFE_3F = (
    403,
    "mod_rewrite (Apache 2.4.60+, CVE-2024-38474) refuses to put the decoded %3F of $1 "
    "into the rewritten URL without the UnsafeAllow3F flag",
)

SCENARIOS = [
    Scenario(
        "guide-htaccess-docroot",
        "apache-fcgid",
        "",
        "Flask guide's .htaccess (RewriteRule ^(.*)$ yourapplication.fcgi/$1) at the docroot",
        fixer=_fixer("apache-htaccess", ""),
        backend=None,
        body_limit=FCGID_BODY_LIMIT,
        limitations={"pct3F": UNSAFE_3F},
        notes="SCRIPT_NAME arrives as /yourapplication.fcgi; 500 over FcgidMaxRequestLen",
    ),
    Scenario(
        "guide-htaccess-docroot-stripper",
        "apache-fcgid",
        "",
        "Flask guide's .htaccess at the docroot, with ScriptNameStripper",
        fixer="ScriptNameStripper",
        backend=None,
        body_limit=FCGID_BODY_LIMIT,
        limitations={"pct3F": UNSAFE_3F},
        notes="the guide's own kind of fixer: drop the .fcgi from SCRIPT_NAME",
    ),
    Scenario(
        "htaccess-docroot",
        "apache-fcgid",
        "",
        "fcgikit config apache-htaccess (at the document root)",
        fixer=_fixer("apache-htaccess", ""),
        backend=None,
        body_limit=FCGID_BODY_LIMIT,
        notes="SCRIPT_NAME arrives as /yourapplication.fcgi; 500 over FcgidMaxRequestLen",
    ),
    Scenario(
        "htaccess-subdir",
        "apache-fcgid",
        MOUNT,
        "fcgikit config apache-htaccess --mount /yourapplication (.htaccess in that directory)",
        fixer=_fixer("apache-htaccess", MOUNT),
        backend=None,
        body_limit=FCGID_BODY_LIMIT,
        notes="SCRIPT_NAME arrives as /yourapplication/yourapplication.fcgi",
    ),
    Scenario(
        "scriptalias-root",
        "apache-fcgid",
        "",
        "fcgikit config apache-fcgid (ScriptAlias / app.fcgi/)",
        fixer=_fixer("apache-fcgid", ""),
        backend=None,
    ),
    Scenario(
        "scriptalias-prefix",
        "apache-fcgid",
        MOUNT,
        "fcgikit config apache-fcgid --mount /yourapplication (ScriptAlias)",
        fixer=_fixer("apache-fcgid", MOUNT),
        backend=None,
    ),
]

SERVER_WIDE = """\
FcgidIPCDir "{dir}/fcgid"
FcgidProcessTableFile "{dir}/fcgid/shm"
FcgidConnectTimeout 20
FcgidMaxProcessesPerClass 2
"""


def launch(site: Site) -> Process:
    require_apache_module("fcgid", "libapache2-mod-fcgid")
    layout = site.layout
    scenario = site.scenario
    (layout.dir / "fcgid").mkdir(exist_ok=True)
    server_config = SERVER_WIDE.replace("{dir}", str(layout.dir))
    fragment = ""
    if "htaccess" in scenario.id:
        directory = layout.docroot / scenario.mount.lstrip("/")
        fcgi = write_fcgi_script(directory / "yourapplication.fcgi", scenario.fixer)
        if scenario.id.startswith("guide"):
            htaccess = GUIDE_HTACCESS
        else:
            htaccess = render("apache-htaccess", mount=scenario.mount, spawn=str(fcgi))
        (directory / ".htaccess").write_text(htaccess)
        server_config += "AddHandler fcgid-script .fcgi\n"  # Debian's fcgid.conf
    else:
        fragment += render("apache-fcgid", mount=scenario.mount, spawn=str(layout.fcgi))
    return launch_apache(site, fragment, modules=["fcgid", "rewrite"], server_config=server_config)


site = site_fixture(SCENARIOS, launch)


class TestApacheFcgid(SiteChecks):
    pass
