from __future__ import annotations

import pytest

from fcgikit.middleware import LighttpdRootFix

from .helpers import ABSENT, Recorder, call, environ


@pytest.mark.parametrize(
    ("script_name", "path_info", "split"),
    [
        pytest.param("/foo", "/bar baz", ("", "/foo/bar baz"), id="first segment swallowed"),
        pytest.param("/submit", ABSENT, ("", "/submit"), id="no PATH_INFO"),
        pytest.param("/", ABSENT, ("", "/"), id="root"),
        pytest.param("", "/foo/bar", ("", "/foo/bar"), id="fix-root-scriptname: no double fix"),
        pytest.param(ABSENT, "/foo/bar", ("", "/foo/bar"), id="SCRIPT_NAME absent"),
    ],
)
def test_root_split(script_name: object, path_info: object, split: tuple[str, str]) -> None:
    app = Recorder()
    call(LighttpdRootFix(app), environ(SCRIPT_NAME=script_name, PATH_INFO=path_info))
    assert app.split == split


def test_mount_becomes_script_name() -> None:
    app = Recorder()
    call(LighttpdRootFix(app, mount="/public"), environ(SCRIPT_NAME="/foo", PATH_INFO="/bar"))
    assert app.split == ("/public", "/foo/bar")
    assert app.environ is not None
    assert app.environ["fcgikit.orig"] == {"SCRIPT_NAME": "/foo", "PATH_INFO": "/bar"}
