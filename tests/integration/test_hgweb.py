"""Mercurial's ``hgweb``, deployed with its own ``hgweb.fcgi``, driven by the ``hg`` client.

The ``.fcgi`` is the one Mercurial ships (``contrib/hgweb.fcgi`` of the sdist of the installed
version; the wheel leaves it out, so it is fetched once with ``pip download`` and kept in
``tests/integration/.cache``), edited only where its comments say to plus the import line:
``from flup.server.fcgi import WSGIServer`` becomes ``from fcgikit import WSGIServer``. It
serves the listening socket it inherits on fd 0 (as under systemd or supervisor), behind
nginx and HAProxy configured by ``fcgikit config ... --mount /hg``. ``hg clone``, ``hg push``
of a 10 MB file and ``hg pull`` go through it, and every link of the web UI must stay under
the prefix, the absolute ones in the Atom feed included (hgweb builds those from SERVER_NAME
and SERVER_PORT).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

import pytest

from fcgikit.deploy import render

from .browser import Browser, links, under_mount
from .harness import (
    APP_DIR,
    HOST,
    Process,
    Scenario,
    Site,
    launch_haproxy,
    launch_nginx,
    missing,
    site_fixture,
)

pytestmark = pytest.mark.integration

MOUNT = "/hg"
CACHE = APP_DIR / ".cache"
FLUP_IMPORT = "from flup.server.fcgi import WSGIServer"
BIG_FILE_SIZE = 10 * 1000 * 1000
# hgweb's templates link "Mercurial" in the breadcrumb to the site's root, whatever the mount
SITE_ROOT_LINK = ("a href", "/")

SCENARIOS = [
    Scenario(
        "hgweb-nginx",
        "nginx",
        MOUNT,
        "Mercurial's hgweb.fcgi (import switched) on fd 0, fcgikit config nginx --mount /hg",
        backend=None,
    ),
    Scenario(
        "hgweb-haproxy",
        "haproxy",
        MOUNT,
        "Mercurial's hgweb.fcgi (import switched) on fd 0, fcgikit config haproxy --mount /hg",
        backend=None,
    ),
]


def hg_binary() -> str:
    found = shutil.which("hg", path=os.path.dirname(sys.executable))
    if found is None:
        missing("Mercurial is not installed in this Python: pip install -e '.[test]'")
        raise AssertionError("unreachable")
    return found


def shipped_hgweb_fcgi() -> str:
    """``contrib/hgweb.fcgi`` from the sdist of the installed Mercurial."""
    version = metadata.version("mercurial")
    cached = CACHE / f"hgweb-{version}.fcgi"
    if not cached.exists():
        with tempfile.TemporaryDirectory() as directory:
            pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
            subprocess.run(
                [*pip, "--no-binary", ":all:", f"mercurial=={version}", "--dest", directory],
                check=True,
                timeout=300,
                stdin=subprocess.DEVNULL,
            )
            [sdist] = Path(directory).glob("mercurial-*.tar.gz")
            with tarfile.open(sdist) as archive:
                member = archive.extractfile(f"mercurial-{version}/contrib/hgweb.fcgi")
                assert member is not None
                source = member.read().decode()
        CACHE.mkdir(exist_ok=True)
        cached.write_text(source)
    return cached.read_text()


def hgweb_fcgi(repo: Path) -> str:
    """The shipped file with its documented edits: the interpreter, the repository, and the
    WSGIServer import."""
    source = shipped_hgweb_fcgi()
    assert FLUP_IMPORT in source and 'config = b"/path/to/repo/or/config"' in source
    source = source.replace(FLUP_IMPORT, "from fcgikit import WSGIServer")
    source = source.replace('b"/path/to/repo/or/config"', repr(os.fsencode(repo)))
    return re.sub(r"\A#!.*", f"#!{sys.executable}", source)


def hg_environment(home: Path) -> dict[str, str]:
    return {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin",
        "HOME": str(home),
        "HGRCPATH": "",  # no user or system config
        "HGUSER": "fcgikit tests <tests@example.invalid>",
        "LANG": "C.UTF-8",
    }


def hg_client_environment(home: Path) -> dict[str, str]:
    # HGPLAIN only for the client: hgweb 7.2's help page fails with it (str/bytes mixed up)
    return {**hg_environment(home), "HGPLAIN": "1"}


def hg(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [hg_binary(), *map(str, args)],
        cwd=cwd,
        env=hg_client_environment(cwd),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"hg {' '.join(map(str, args))}:\n{done.stdout}{done.stderr}"
    return done.stdout


def served_repository(directory: Path) -> Path:
    repo = directory / "repo"
    hg("init", repo, cwd=directory)
    (repo / "README").write_text("served by hgweb through fcgikit\n")
    hg("commit", "-A", "-m", "first", cwd=repo)
    # hgweb refuses pushes over plain HTTP and from anyone unless told
    (repo / ".hg" / "hgrc").write_text("[web]\nallow-push = *\npush_ssl = false\n")
    return repo


def launch(site: Site) -> Process:
    layout = site.layout
    repo = served_repository(layout.dir)
    fcgi = layout.dir / "hgweb.fcgi"
    fcgi.write_text(hgweb_fcgi(repo))
    fcgi.chmod(0o755)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(layout.socket))
        listener.listen()
        env = {**hg_environment(layout.dir), "PYTHONUNBUFFERED": "1"}
        app = Process("hgweb", [str(fcgi)], log_dir=layout.dir, env=env, stdin=listener)
    site.processes.append(app)
    app.wait_for_output("listening on")
    config = render(site.scenario.server, mount=MOUNT, socket=str(layout.socket))
    if site.scenario.server == "haproxy":
        return launch_haproxy(site, config)
    return launch_nginx(site, config)


site = site_fixture(SCENARIOS, launch)


def test_clone_push_of_10mb_and_pull(site: Site, tmp_path: Path) -> None:
    url = f"http://{HOST}:{site.layout.port}{MOUNT}/"
    repo = site.layout.dir / "repo"
    hg("clone", url, "clone", cwd=tmp_path)
    clone = tmp_path / "clone"
    assert (clone / "README").read_text() == "served by hgweb through fcgikit\n"

    big = os.urandom(BIG_FILE_SIZE)  # random: the bundle stays about 10 MB
    (clone / "big.bin").write_bytes(big)
    hg("commit", "-A", "-m", "a big file", cwd=clone)
    hg("push", url, cwd=clone)
    assert hg("log", "-r", "tip", "-T", "{desc}", cwd=repo) == "a big file"
    served = subprocess.run(
        [hg_binary(), "cat", "-r", "tip", "big.bin"],
        cwd=repo,
        env=hg_client_environment(repo),
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    assert hashlib.sha256(served).digest() == hashlib.sha256(big).digest()

    hg("update", "tip", cwd=repo)  # a push leaves the server's working copy where it was
    (repo / "server.txt").write_text("committed on the server\n")
    hg("commit", "-A", "-m", "on the server", cwd=repo)
    hg("pull", "-u", url, cwd=clone)
    assert (clone / "server.txt").read_text() == "committed on the server\n"


def test_web_ui_links_stay_under_the_prefix(site: Site) -> None:
    browser = Browser(site.layout.port)
    index = browser.get(f"{MOUNT}/")
    assert index.status == 200, index.text[:2000]
    seen = {f"{MOUNT}/"}
    pages = [index]
    # the shortlog, then one level of the pages it links to: changesets, files, graph, tags...
    for where, target in links(index):
        if (where, target) == SITE_ROOT_LINK:
            continue
        assert under_mount(target, MOUNT), f"{where} {target!r} leaves {MOUNT}"
        if target not in seen and len(seen) < 40:
            seen.add(target)
            page = browser.get(target)
            assert page.status == 200, f"{target}: {page.status}"
            pages.append(page)
    for page in pages:
        if "html" in page.headers.get("Content-Type", ""):
            for where, target in links(page):
                if (where, target) == SITE_ROOT_LINK:
                    continue
                assert under_mount(target, MOUNT), f"{page.url}: {where} {target!r}"
    assert any("/rev/" in url for url in seen) and any("/file/" in url for url in seen)


def test_atom_feed_links_name_the_server_once(site: Site) -> None:
    """hgweb writes absolute URLs from SERVER_NAME and SERVER_PORT (not the Host header):
    HAProxy's own SERVER_NAME would carry the port and make it http://host:port:port."""
    feed = Browser(site.layout.port).get(f"{MOUNT}/atom-log")
    assert feed.status == 200, feed.text[:2000]
    urls = re.findall(r'href="(http[^"]*)"', feed.text)
    assert urls
    pattern = rf"http://(?:{re.escape(HOST)}|localhost):{site.layout.port}{MOUNT}/"
    for url in urls:
        assert re.match(pattern, url), url
