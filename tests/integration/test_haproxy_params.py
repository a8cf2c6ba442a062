"""The params the installed HAProxy really sends, held to ``tests/data/captured-environs.json``.

HAProxy's four captured configurations (``fcgi-app`` with only ``docroot``, and with the
``path-info`` that ``fcgikit config haproxy`` prints, each at the root and under a prefix) are
run again here in front of :mod:`param_recorder`, with the captures' four requests sent by
curl. The params that decide URLs must be what the capture holds, so the quirk rules
(:mod:`fcgikit.quirks`) and the fixers tested against the captures stay true for the HAProxy
that is installed.

Run as a script to (re)capture: ``python -m tests.integration.test_haproxy_params`` prints
the four configurations in the captures' format (without the research file's ``environ`` /
``flup_changes``, which record what flup made of them) for merging into the JSON file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    APP_DIR,
    HOST,
    REPO_ROOT,
    Process,
    Scenario,
    Site,
    haproxy_fcgi_app,
    launch_haproxy,
    require_binary,
    running_site,
)

pytestmark = pytest.mark.integration

CAPTURES = REPO_ROOT / "tests" / "data" / "captured-environs.json"
MOUNT = "/yourapplication"
#: configuration -> (mount, path-info regex or None)
CONFIGURATIONS = {
    "haproxy_root": ("", None),
    "haproxy_prefix": (MOUNT, None),
    "haproxy_root_pathinfo": ("", "^()(/.*)$"),
    "haproxy_prefix_pathinfo": (MOUNT, f"^({MOUNT})(/.*)?$"),
}
#: label -> (method, path after the mount, body)
REQUESTS = {
    "GET <mount>": ("GET", "", None),
    "GET <mount>/": ("GET", "/", None),
    "GET <mount>/foo/bar%20baz?x=1&y=%2F": ("GET", "/foo/bar%20baz?x=1&y=%2F", None),
    "POST <mount>/submit": ("POST", "/submit", "hello"),
}
#: params whose values depend on the run (ports), compared by presence only
RUN_DEPENDENT = {"HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "REMOTE_PORT", "HTTP_USER_AGENT"}


def _expected(mount: str, method: str, rest: str, body: str | None) -> dict[str, str]:
    path, _, query = rest.partition("?")
    path_info = {"": "" if mount else "/", "/": "/"}.get(path, path.replace("%20", " "))
    expected = {
        "SCRIPT_NAME": mount,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "REQUEST_URI": (mount + rest) or "/",
    }
    if body is not None:
        expected |= {"CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "text/plain", "body": body}
    return expected


def _curl(port: int, method: str, target: str, body: str | None, tmp: Path) -> list[str]:
    argv = [require_binary("curl"), "-sS", "--path-as-is", "-g", "--max-time", "15"]
    argv += ["-o", str(tmp / "body"), "-D", str(tmp / "hdr"), "-w", "%{http_code}", "-X", method]
    if body is not None:
        argv += ["-H", "Content-Type: text/plain", "--data-binary", body]
    return [*argv, f"http://{HOST}:{port}{target}"]


def capture(configuration: str, workdir: Path) -> dict[str, dict[str, Any]]:
    """Run HAProxy in front of the recorder and send the four requests with curl."""
    mount, path_info = CONFIGURATIONS[configuration]
    scenario = Scenario(configuration, "haproxy", mount, "capture", backend=None)

    def launch(site: Site) -> Process:
        recorder = Process(
            "recorder",
            [sys.executable, str(APP_DIR / "param_recorder.py"), f"unix:{site.layout.socket}"],
            log_dir=site.layout.dir,
            env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        )
        site.processes.append(recorder)
        recorder.wait_for_output("listening on")
        return launch_haproxy(site, haproxy_fcgi_app(mount, site.layout.socket, path_info))

    captured: dict[str, dict[str, Any]] = {}
    with running_site(scenario, workdir, launch) as site:
        for label, (method, rest, body) in REQUESTS.items():
            target = (mount + rest) or "/"
            argv = _curl(site.layout.port, method, target, body, workdir)
            status = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
            report = json.loads((workdir / "body").read_text())
            names = Counter(name for name, _ in report["params"])
            headers = (workdir / "hdr").read_text().splitlines()[1:]
            captured[label] = {
                "backend_mode": "standalone",
                "body_received": report["body"],
                "curl": " ".join(["curl", *argv[1:]]).replace(str(workdir), "<tmp>"),
                "duplicate_params": sorted(n for n, count in names.items() if count > 1),
                "expected": _expected(mount, method, rest, body),
                "fcgi_flags": report["fcgi_flags"],
                "mount": mount,
                "params": report["params"],
                "params_records": report["params_records"],
                "request_line": f"{method} {target}",
                "response_headers": [h for h in headers if h and not h.startswith("date:")],
                "status": int(status.stdout),
            }
    return captured


def _stored() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CAPTURES.read_text())
    return data


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_installed_haproxy_sends_what_was_captured(configuration: str, tmp_path: Path) -> None:
    live = capture(configuration, tmp_path)
    stored = _stored()[configuration]
    assert set(live) == set(stored)
    for label, request in live.items():
        sent, kept = dict(request["params"]), dict(stored[label]["params"])
        assert set(sent) == set(kept), label  # which params are there, and which are not
        for name, value in sent.items():
            if name not in RUN_DEPENDENT and not name.startswith("SERVER_SOFTWARE"):
                assert value == kept[name], (label, name)
        # SERVER_NAME is the Host header, port included
        assert sent["SERVER_NAME"] == sent["HTTP_HOST"] == f"{HOST}:{sent['SERVER_PORT']}"
        assert request["body_received"] == stored[label]["body_received"]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        result = {
            name: capture(name, Path(directory) / name)
            for name in CONFIGURATIONS
            if (Path(directory) / name).mkdir() is None
        }
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()
