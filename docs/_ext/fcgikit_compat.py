"""``.. fcgikit-compatibility::``: the integration matrix, as a table, from its results file.

The integration suite (``tests/integration``) runs a Flask app behind each real web server in
several configurations and writes every scenario's outcome to
``tests/integration/.results.json``. When that file exists (after a local or CI run of the
suite) the page is built from it; otherwise from ``docs/compatibility.json``, a copy of a full
run kept in the repository so the docs build anywhere. Copy a fresh results file over the
snapshot after a full, green run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

DOCS = Path(__file__).resolve().parent.parent
RESULTS = DOCS.parent / "tests" / "integration" / ".results.json"
SNAPSHOT = DOCS / "compatibility.json"

SERVER_NAMES = {
    "nginx": "nginx",
    "apache-fcgid": "Apache mod_fcgid",
    "apache-proxy-fcgi": "Apache mod_proxy_fcgi",
    "apache-cgid": "Apache mod_cgid (CGI)",
    "lighttpd": "lighttpd",
    "caddy": "Caddy",
    "h2o": "h2o",
    "haproxy": "HAProxy",
}


def results_path() -> Path:
    """The fresh results if the integration suite wrote some, else the committed snapshot."""
    return RESULTS if RESULTS.exists() else SNAPSHOT


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data.get("scenarios"), dict):
        raise ValueError(f"{path}: no 'scenarios' mapping")
    return data


def fixer_text(spec: str | None) -> str:
    """``MountFix:/x`` (the test harness's spelling) as the line a user writes."""
    if not spec or spec == "none":
        return "none"
    name, colon, mount = spec.partition(":")
    return f"{name}(app, {mount!r})" if colon else f"{name}(app)"


def outcome_text(entry: dict[str, Any]) -> str:
    checks: dict[str, str] = entry.get("checks", {})
    failed = sorted(name for name, outcome in checks.items() if outcome == "failed")
    ran = [outcome for outcome in checks.values() if outcome != "skipped"]
    if not ran:
        return "not run (server not installed)"
    if failed:
        names = ", ".join(name.removeprefix("test_") for name in failed)
        return f"{len(failed)} of {len(ran)} checks fail: {names}"
    return f"all {len(ran)} checks pass" if len(ran) > 1 else "the 1 check passes"


def rows(scenarios: Iterable[dict[str, Any]]) -> list[list[str]]:
    order = {server: i for i, server in enumerate(SERVER_NAMES)}
    ordered = sorted(
        scenarios, key=lambda e: (order.get(e["server"], len(order)), e["mount"], e["scenario"])
    )
    table = []
    for entry in ordered:
        server = SERVER_NAMES.get(entry["server"], entry["server"])
        if entry.get("version"):
            server = f"{server} {entry['version']}"
        notes = [entry["notes"]] if entry.get("notes") else []
        notes += [f"{case}: {why}" for case, why in sorted(entry.get("limitations", {}).items())]
        table.append(
            [
                server,
                entry["mount"],
                entry["setting"],
                fixer_text(entry.get("fixer")),
                outcome_text(entry),
                "; ".join(notes),
            ]
        )
    return table


HEADERS = ["Server", "Mount", "Configuration", "Fixer", "Result", "Notes"]
LITERAL_COLUMNS = {1, 3}
WIDTHS = [12, 8, 30, 16, 18, 24]


def _cell(text: str, literal: bool) -> nodes.entry:
    paragraph = nodes.paragraph()
    paragraph += nodes.literal(text, text) if literal and text != "none" else nodes.Text(text)
    return nodes.entry("", paragraph)


def table(header: list[str], body: list[list[str]]) -> nodes.table:
    node = nodes.table(classes=["fcgikit-compatibility"])
    group = nodes.tgroup(cols=len(header))
    node += group
    for width in WIDTHS:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += nodes.row("", *(_cell(text, False) for text in header))
    group += head
    tbody = nodes.tbody()
    for values in body:
        tbody += nodes.row(
            "", *(_cell(text, i in LITERAL_COLUMNS) for i, text in enumerate(values))
        )
    group += tbody
    return node


class FcgikitCompatibility(SphinxDirective):
    """The matrix table, preceded by a line that says which run it comes from."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        path = results_path()
        try:
            data = load(path)
        except (OSError, ValueError) as exc:
            raise self.error(f"cannot read the integration results: {exc}") from exc
        self.env.note_dependency(str(path))
        source = (
            "the integration suite's last run on the machine that built these docs"
            if path == RESULTS
            else "the snapshot committed as docs/compatibility.json"
        )
        intro = nodes.paragraph(
            "",
            f"Results from {source}, generated {data.get('generated', 'at an unknown time')}: "
            f"{len(data['scenarios'])} scenarios.",
        )
        return [intro, table(HEADERS, rows(data["scenarios"].values()))]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("fcgikit-compatibility", FcgikitCompatibility)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
