"""A Django project with its admin under ``/yourapplication``, behind nginx and HAProxy.

The project (``djangoapp``) has no ``FORCE_SCRIPT_NAME``: Django takes the prefix from the
SCRIPT_NAME fcgikit passes on. A browser-like client logs in through the admin's form
(CSRF token and cookie, ``Origin`` header), creates a record through the admin's add form,
and finds it in the list. Every redirect must point under the prefix, and every link, form
action, script and stylesheet of the pages it sees must too.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from fcgikit.deploy import recommended_fixer, render

from .browser import Browser, Page, hidden_inputs, links, under_mount
from .harness import (
    APP_DIR,
    Process,
    Scenario,
    Site,
    app_environment,
    backend_command,
    launch_haproxy,
    launch_nginx,
    site_fixture,
)

pytestmark = pytest.mark.integration

MOUNT = "/yourapplication"
ADMIN = f"{MOUNT}/admin/"
PASSWORD = "correct horse battery staple"

SCENARIOS = [
    Scenario(
        "django-admin-nginx",
        "nginx",
        MOUNT,
        "Django admin, fcgikit config nginx --mount /yourapplication",
        backend=None,
    ),
    Scenario(
        "django-admin-haproxy",
        "haproxy",
        MOUNT,
        "Django admin, fcgikit config haproxy --mount /yourapplication",
        backend=None,
    ),
]


def django_environment(site: Site) -> dict[str, str]:
    return {
        **app_environment("none"),
        "DJANGO_SETTINGS_MODULE": "djangoapp.settings",
        "FCGIKIT_TEST_DJANGO_DB": str(site.layout.dir / "db.sqlite3"),
    }


def create_database(site: Site) -> None:
    """The tables and one superuser, in one process (Django's start-up is the slow part)."""
    script = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "from django.contrib.auth.models import User\n"
        "call_command('migrate', verbosity=0)\n"
        f"User.objects.create_superuser('admin', 'admin@example.invalid', {PASSWORD!r})\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        env=django_environment(site),
        check=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def launch(site: Site) -> Process:
    layout, server = site.layout, site.scenario.server
    create_database(site)
    argv = [*backend_command(), "serve", "djangoapp.wsgi:application", "--chdir", str(APP_DIR)]
    argv += ["--bind", f"unix:{layout.socket}"]
    fixer = recommended_fixer(server, mount=MOUNT)
    if fixer is not None:  # as the config's comment says: fcgikit serve --mount
        argv += ["--mount", MOUNT]
    backend = Process("django", argv, log_dir=layout.dir, env=django_environment(site))
    site.processes.append(backend)
    backend.wait_for_output("listening on")
    config = render(server, mount=MOUNT, socket=str(layout.socket))
    return launch_haproxy(site, config) if server == "haproxy" else launch_nginx(site, config)


site = site_fixture(SCENARIOS, launch)


def _check_page(page: Page) -> None:
    assert page.status == 200, f"{page.url}: {page.status}\n{page.text[:2000]}"
    # the admin's "View site" links the bare mount: SCRIPT_NAME itself
    outside = [(where, url) for where, url in links(page) if not under_mount(url, MOUNT)]
    assert not outside, f"{page.url} links outside {MOUNT}: {outside}"


def _redirect(page: Page, expected: str) -> None:
    assert page.status == 302, f"{page.url}: {page.status}\n{page.text[:2000]}"
    assert page.location == expected


def test_admin_login_and_add_a_record_under_the_prefix(site: Site) -> None:
    browser = Browser(site.layout.port)
    _redirect(browser.get(ADMIN), f"{ADMIN}login/?next={ADMIN}")

    login = browser.get(f"{ADMIN}login/?next={ADMIN}")
    _check_page(login)
    assert f'action="{ADMIN}login/?next={ADMIN}"' in login.text
    assert "csrftoken" in browser.cookies
    form = hidden_inputs(login)
    form |= {"username": "admin", "password": PASSWORD}
    _redirect(browser.post_form(f"{ADMIN}login/?next={ADMIN}", form), ADMIN)

    index = browser.get(ADMIN)
    _check_page(index)
    assert f'href="{ADMIN}notes/note/add/"' in index.text

    add = browser.get(f"{ADMIN}notes/note/add/")
    _check_page(add)
    form = hidden_inputs(add) | {"title": "written through fcgikit", "_save": "Save"}
    saved = browser.post_form(f"{ADMIN}notes/note/add/", form)
    _redirect(saved, f"{ADMIN}notes/note/")

    listing = browser.get(f"{ADMIN}notes/note/")
    _check_page(listing)
    assert "written through fcgikit" in listing.text
    change = next(url for _, url in links(listing) if url.endswith("/change/"))
    _check_page(browser.get(change))

    logout = browser.post_form(f"{ADMIN}logout/", hidden_inputs(listing))
    assert logout.status == 200, logout.text[:2000]
    _redirect(browser.get(ADMIN), f"{ADMIN}login/?next={ADMIN}")


def test_a_post_without_the_csrf_token_is_refused(site: Site) -> None:
    browser = Browser(site.layout.port)
    browser.get(f"{ADMIN}login/")
    refused = browser.post_form(f"{ADMIN}login/", {"username": "admin", "password": PASSWORD})
    assert refused.status == 403
