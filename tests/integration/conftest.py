"""Hooks for the integration suite: the marker, failure diagnostics, and the results file.

On a failure, the report gets the web server's config and error log and the backend's stderr
(from :meth:`harness.Site.diagnostics`). At the end of the session every scenario's outcome is
written to ``tests/integration/.results.json`` (server, version, mount, setting, fixer, passed,
and each check), from which a compatibility page can be generated.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from .harness import Scenario, Site, binary_of, server_version

RESULTS_FILE = Path(__file__).with_name(".results.json")


def results_file() -> Path | None:
    """Where to write the results: ``FCGIKIT_TEST_RESULTS`` if set; none when the suite runs
    against another FastCGI server (``FCGIKIT_TEST_BACKEND``/``_WSGISERVER``), which are not
    fcgikit's results."""
    chosen = os.environ.get("FCGIKIT_TEST_RESULTS")
    if chosen:
        return Path(chosen)
    if os.environ.get("FCGIKIT_TEST_BACKEND") or os.environ.get("FCGIKIT_TEST_WSGISERVER"):
        return None
    return RESULTS_FILE


_results_key = pytest.StashKey[dict[str, dict[str, Any]]]()
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


def _scenario_of(item: pytest.Item) -> Scenario | None:
    """The scenario of the compatibility matrix ``item`` checks; None for a test that is
    not part of it (a module that says ``IN_COMPATIBILITY_MATRIX = False``: a fault test
    that borrows a scenario's config)."""
    callspec = getattr(item, "callspec", None)
    module = getattr(item, "module", None)
    if callspec is None or not getattr(module, "IN_COMPATIBILITY_MATRIX", True):
        return None
    value = callspec.params.get("site")
    return value if isinstance(value, Scenario) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    site = getattr(item, "funcargs", {}).get("site")
    if report.failed and isinstance(site, Site):
        for title, text in site.diagnostics():
            report.sections.append((title, text))
    scenario = _scenario_of(item)
    if scenario is None:
        return
    if report.when != "call" and not (report.failed or report.skipped):
        return
    results = item.config.stash.setdefault(_results_key, {})
    module = item.path.stem
    entry = results.setdefault(
        f"{module}::{scenario.id}",
        {
            "scenario": scenario.id,
            "module": module,
            "server": scenario.server,
            "version": None,
            "mount": scenario.mount or "/",
            "setting": scenario.setting,
            "fixer": scenario.fixer,
            "notes": scenario.notes,
            "limitations": {k: v[1] for k, v in scenario.limitations.items()},
            "body_limit": None
            if scenario.body_limit is None
            else dict(zip(("bytes", "status", "why"), scenario.body_limit, strict=True)),
            "checks": {},
        },
    )
    name = item.name.replace(f"[{scenario.id}-", "[").replace(f"-{scenario.id}]", "]")
    name = name.replace(f"[{scenario.id}]", "")
    entry["checks"][name] = report.outcome


def pytest_sessionfinish(session: pytest.Session) -> None:
    results = session.config.stash.get(_results_key, None)
    path = results_file()
    if not results or path is None:
        return
    for entry in results.values():
        entry["version"] = server_version(binary_of(entry["server"]))
        outcomes = set(entry["checks"].values())
        entry["passed"] = outcomes == {"passed"}
        entry["skipped"] = outcomes == {"skipped"}
    previous: dict[str, Any] = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text())["scenarios"]
        except (ValueError, KeyError, TypeError):
            previous = {}
    previous.update(results)  # a partial run updates the scenarios it ran
    path.write_text(
        json.dumps(
            {
                "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "scenarios": previous,
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
