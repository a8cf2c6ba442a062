"""Every captured configuration x request, from the raw FastCGI params to what the app sees.

The captures (tests/data/captured-environs.json) are real nginx, lighttpd, Apache, Caddy, h2o
and HAProxy servers in front of a param dumper; ``expected`` is what a correct app must see.
Each capture's params go through fcgikit's own protocol and environ builder (helpers.py), so
every fixer, and every rule of Normalize, meets the environ ``fcgikit serve`` gives it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fcgikit.middleware import LighttpdRootFix, MountFix, Normalize, ScriptNameStripper
from fcgikit.middleware.catalogue import RECOMMENDED, WHY
from fcgikit.middleware.normalize import RULES

from .helpers import CAPTURES, Recorder, call, environ_from_params

CASES = [
    pytest.param(config, capture, id=f"{config}:{request}")
    for config, requests in CAPTURES.items()
    for request, capture in requests.items()
    if capture.get("params")  # the server answered itself (404, or Caddy's empty 200)
]

#: Configurations where Normalize cannot work out the mount and needs ``mount=``.
NEEDS_MOUNT = {
    "caddy_root_split": "split at '/' looks like an app mounted at the first segment",
    "caddy_route_prefix": "the prefix in PATH_INFO looks like a route",
    "h2o_prefix": "the prefix in PATH_INFO looks like a route",
    "haproxy_prefix": "SCRIPT_NAME holds the whole path, as for a request for the bare mount",
    "haproxy_root": "SCRIPT_NAME holds the whole path, as for a request for the bare mount",
    "lighttpd_root": "/foo + /bar looks like an app mounted at /foo",
    "nginx_naive_prefix": "SCRIPT_NAME holds the whole path, prefix included",
}


def recommended(config: str, mount: str) -> Callable[[Any], Any]:
    fixer = RECOMMENDED[config]
    if fixer is None:
        return lambda app: app
    if fixer == "ScriptNameStripper":
        return ScriptNameStripper
    classes = {"MountFix": MountFix, "LighttpdRootFix": LighttpdRootFix}
    return lambda app: classes[fixer](app, mount)


def run(wrap: Callable[[Any], Any], capture: dict[str, Any]) -> Recorder:
    app = Recorder()
    env = environ_from_params(capture["params"], capture.get("body_received", "").encode())
    status, _ = call(wrap(app), env)
    assert status == "200 OK"
    return app


def expected_split(capture: dict[str, Any]) -> tuple[str, str]:
    return capture["expected"]["SCRIPT_NAME"], capture["expected"]["PATH_INFO"]


def test_every_configuration_is_in_the_catalogue() -> None:
    assert set(RECOMMENDED) == set(CAPTURES) == set(WHY)
    assert len(CASES) >= 96


@pytest.mark.parametrize(("config", "capture"), CASES)
def test_duplicate_params_are_what_the_server_reports(config: str, capture: dict[str, Any]) -> None:
    env = environ_from_params(capture["params"])
    assert sorted(env.get("fcgikit.duplicate_params", ())) == sorted(capture["duplicate_params"])


#: Requests the web server rewrote to another URL before passing them on: with no fixer the app
#: sees the URL it was rewritten to, which serves the same page. The guide's nginx prefix
#: recipe answers the bare prefix as /yourapplication/ (its ``rewrite ^ /yourapplication/
#: last``); docs/compatibility.json's guide-prefix scenario passes with no fixer.
REWRITTEN = {("nginx_prefix", "GET /yourapplication"): ("/yourapplication", "/")}


@pytest.mark.parametrize(("config", "capture"), CASES)
def test_recommended_fixer(config: str, capture: dict[str, Any]) -> None:
    app = run(recommended(config, capture["mount"]), capture)
    if RECOMMENDED[config] is None and (config, capture["request_line"]) in REWRITTEN:
        assert app.split == REWRITTEN[config, capture["request_line"]]
        return
    assert app.split == expected_split(capture)
    assert app.environ is not None
    # HAProxy sends no empty value; fcgikit's server then puts QUERY_STRING '' in the environ
    assert app.environ.get("QUERY_STRING", "") == capture["expected"]["QUERY_STRING"]
    assert app.environ["REQUEST_URI"] == capture["expected"]["REQUEST_URI"]


@pytest.mark.parametrize(("config", "capture"), CASES)
def test_mount_fix_is_right_everywhere(config: str, capture: dict[str, Any]) -> None:
    app = run(lambda a: MountFix(a, capture["mount"]), capture)
    assert app.split == expected_split(capture)


@pytest.mark.parametrize(("config", "capture"), CASES)
def test_normalize_with_mount_is_exact(config: str, capture: dict[str, Any]) -> None:
    app = run(lambda a: Normalize(a, mount=capture["mount"]), capture)
    assert app.split == expected_split(capture)


@pytest.mark.parametrize(("config", "capture"), CASES)
def test_normalize_detects_or_keeps_the_whole_path(config: str, capture: dict[str, Any]) -> None:
    app = run(Normalize, capture)
    script_name, path_info = expected_split(capture)
    if config in NEEDS_MOUNT:
        # The split may be wrong, but no segment is lost or invented.
        assert "".join(app.split) == script_name + path_info or app.split == (
            script_name,
            path_info,
        )
    else:
        assert app.split == (script_name, path_info)


def test_every_rule_of_normalize_meets_the_environ_of_a_real_server() -> None:
    # So no rule is right only for hand-made environs: each fires for some capture, and
    # test_normalize_detects_or_keeps_the_whole_path holds it to the right split there.
    fired = set()
    for _, capture in (case.values for case in CASES):
        app = run(Normalize, capture)
        assert app.environ is not None
        fired.add(app.environ["fcgikit.normalize"])
    assert fired == {name for name, _ in RULES}


@pytest.mark.parametrize(("config", "capture"), CASES)
def test_orig_keeps_what_the_server_sent(config: str, capture: dict[str, Any]) -> None:
    sent = dict(capture["params"])
    app = run(lambda a: MountFix(a, capture["mount"]), capture)
    assert app.environ is not None
    orig = app.environ.get("fcgikit.orig", {})
    for key in ("SCRIPT_NAME", "PATH_INFO"):
        if key in orig:
            assert orig[key] == sent.get(key)  # None: not sent, though the server put in ''
            assert app.environ[key] != sent.get(key)
        else:  # what was sent, or PEP 3333's default, which the server says it put in
            assert app.environ[key] == sent.get(key, "")
            missing = app.environ.get("fcgikit.missing_params", ())
            assert (key in missing) == (key not in sent)


REWRITE_TO_SCRIPT = {
    "apache_fcgid_htaccess",
    "lighttpd_guide_rewrite",
    "lighttpd_guide_rewrite_fixroot",
}


@pytest.mark.parametrize(
    ("config", "capture"), [case for case in CASES if case.values[0] in REWRITE_TO_SCRIPT]
)
def test_script_name_stripper_on_the_guides_rewrites(config: str, capture: dict[str, Any]) -> None:
    app = run(ScriptNameStripper, capture)
    assert app.split == expected_split(capture)


MATRIX = Path(__file__).parents[2] / "docs" / "compatibility.json"
#: Catalogue configuration -> the scenario of the integration matrix (docs/compatibility.json,
#: real servers and a Flask app) that runs the same web server config.
IN_THE_MATRIX = {
    "nginx_prefix": "test_nginx::guide-prefix",
    "nginx_root": "test_nginx::guide-root",
    "nginx_naive_prefix": "test_nginx::naive-prefix",
    "nginx_naive_root": "test_nginx::naive-root",
    "apache_fcgid_htaccess": "test_apache_fcgid::guide-htaccess-docroot",
    "apache_fcgid_scriptalias_prefix": "test_apache_fcgid::scriptalias-prefix",
    "apache_fcgid_scriptalias_root": "test_apache_fcgid::scriptalias-root",
}


@pytest.mark.parametrize(("config", "scenario"), sorted(IN_THE_MATRIX.items()))
def test_the_catalogue_says_what_the_matrix_measured(config: str, scenario: str) -> None:
    """The fixer the catalogue recommends is the one the matrix's passing scenario used."""
    measured = json.loads(MATRIX.read_text())["scenarios"][scenario]
    assert measured["passed"], f"{scenario} does not pass in {MATRIX.name}"
    fixer = None if measured["fixer"] == "none" else measured["fixer"].split(":")[0]
    assert RECOMMENDED[config] == fixer
