from __future__ import annotations

import pytest

from fcgikit.middleware import ScriptNameStripper

from .helpers import ABSENT, Recorder, call, environ


@pytest.mark.parametrize(
    ("script_name", "script_filename", "script_root"),
    [
        pytest.param("/yourapplication.fcgi", "/www/yourapplication.fcgi", "", id="root"),
        pytest.param(
            "/blog/yourapplication.fcgi", "/www/blog/yourapplication.fcgi", "/blog", id="subdir"
        ),
        pytest.param("/a/b/app.py", "/www/a/b/app.py", "/a/b", id="any script name"),
        pytest.param("/blog/app.fcgi", ABSENT, "/blog", id="*.fcgi without SCRIPT_FILENAME"),
        pytest.param("/blog/app.fcgi", "/elsewhere/other.fcgi", "/blog", id="*.fcgi elsewhere"),
        pytest.param(
            "/yourapplication",
            "/www/app/yourapplication.fcgi",
            "/yourapplication",
            id="ScriptAlias prefix is no script file",
        ),
        pytest.param(
            "/p/submit",
            "proxy:fcgi://localhost/submit",
            "/p/submit",
            id="mod_proxy_fcgi target is no script file",
        ),
        pytest.param("", "/www/app.fcgi", "", id="empty"),
        pytest.param("/blog/", "/www/blog/", "/blog/", id="trailing slash"),
    ],
)
def test_script_file_component_removed(
    script_name: str, script_filename: object, script_root: str
) -> None:
    app = Recorder()
    env = environ(SCRIPT_NAME=script_name, PATH_INFO="/post/1", SCRIPT_FILENAME=script_filename)
    call(ScriptNameStripper(app), env)
    assert app.split == (script_root, "/post/1")


def test_mount_forces_script_name() -> None:
    app = Recorder()
    env = environ(SCRIPT_NAME="/blog/yourapplication.fcgi", PATH_INFO="/post/1")
    call(ScriptNameStripper(app, mount="/weblog/"), env)
    assert app.split == ("/weblog", "/post/1")
    assert app.environ is not None
    assert app.environ["fcgikit.orig"] == {"SCRIPT_NAME": "/blog/yourapplication.fcgi"}
