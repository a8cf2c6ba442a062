"""What a release is made of (scripts/build-dist): the sdist holds the whole project and its
suite, each wheel only the package, and the metadata says what it is.

The sdist and the pure wheel are built here (no compiling: seconds). The compiled wheel takes
a minute or two to build, so its checks read the one ``scripts/build-dist`` made, named by
``FCGIKIT_TEST_DIST``: ``.ci/run`` always sets it; without it they are skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.processes import SOURCE_TREE


def build(source: Path, out: Path, kind: str, **env: str) -> tuple[Path, str]:
    """``python -m build --KIND`` of ``source``, without build isolation (nothing to fetch)."""
    out.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "build", f"--{kind}", "--no-isolation"]
    result = subprocess.run(
        [*command, "--skip-dependency-check", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [made] = [p for p in out.iterdir() if p.suffix in (".whl", ".gz")]
    return made, result.stdout + result.stderr


def unpacked_sdist(tmp_path: Path) -> Path:
    """The sdist of the checkout, unpacked: wheels are built from it, as pip builds them."""
    sdist, _ = build(SOURCE_TREE, tmp_path / "sdist", "sdist")
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):  # 3.11.4+; Debian 12's 3.11.2 has none
            archive.extraction_filter = tarfile.data_filter
        archive.extractall(tmp_path / "unpacked")
    [unpacked] = (tmp_path / "unpacked").iterdir()
    return unpacked


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=SOURCE_TREE, capture_output=True, text=True, check=True
    )
    return listed.stdout.split()


def wheel_problems(wheel: Path) -> list[str]:
    """The files a wheel should not hold: C sources, and anything outside the package."""
    names = zipfile.ZipFile(wheel).namelist()
    return [
        name
        for name in names
        if name.endswith((".c", ".h"))
        or not (name.startswith("fcgikit/") or name.split("/")[0].endswith(".dist-info"))
    ]


def metadata(wheel: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(name).decode())
    fields: dict[str, list[str]] = {}
    for key, value in message.items():
        fields.setdefault(key, []).append(value)
    return fields


def test_the_sdist_holds_the_project_and_its_whole_suite(tmp_path: Path) -> None:
    if not (SOURCE_TREE / ".git").exists():
        pytest.skip("not a git checkout: no list of the project's files to compare with")
    sdist, output = build(SOURCE_TREE, tmp_path, "sdist")
    assert "fcgikit: " not in output  # making the sdist compiles nothing
    with tarfile.open(sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}
    missing = [name for name in tracked_files() if name not in names and name != ".gitignore"]
    assert not missing, f"the sdist lacks {missing}"
    assert {"LICENSE", "CHANGELOG.md", "tests/test_packaging.py"} <= names
    assert not [name for name in names if name.endswith(".so")]


def test_the_pure_wheel_installs_anywhere(tmp_path: Path) -> None:
    source = unpacked_sdist(tmp_path)
    wheel, output = build(source, tmp_path / "wheel", "wheel", FCGIKIT_PURE_PYTHON="1")
    said = [line for line in output.splitlines() if line.startswith("fcgikit: ")]
    assert said[-1].startswith("fcgikit: FCGIKIT_PURE_PYTHON is set; building pure Python"), output
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    assert not wheel_problems(wheel)
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".so")]
    fields = metadata(wheel)
    import fcgikit

    assert fields["Version"] == [fcgikit.__version__]  # the one version number
    assert fields["License-Expression"] == ["BSD-3-Clause"]
    assert fields["License-File"] == ["LICENSE"]
    assert {url.split(",")[0] for url in fields["Project-URL"]} == {"Documentation", "Changelog"}
    assert fields["Requires-Python"] == [">=3.11"]


def test_the_compiled_wheel_is_manylinux_and_holds_only_the_package() -> None:
    dist = os.environ.get("FCGIKIT_TEST_DIST")
    if not dist:  # .ci/run always names it
        pytest.skip("FCGIKIT_TEST_DIST names no scripts/build-dist output")
    [wheel] = Path(dist).glob("fcgikit-*-manylinux*.whl")
    assert not wheel_problems(wheel)  # no .c, no top-level fcgikit_compiled__mypyc
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("fcgikit/_compiled__mypyc.") and n.endswith(".so") for n in names)
