"""``.. fcgikit-settings::``: the table of ``fcgikit serve``'s settings, from their declaration.

Each setting is declared once, in its dataclass field (fcgikit/server/settings/). This
directive writes one row per setting: its option (a link to the option's entry that
``.. fcgikit-cli:: serve`` writes), its environment variable(s), its key in a config file's
``[serve]`` table and its default, so that the table cannot disagree with the command.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from fcgikit.server.settings import SERVE_SETTINGS
from fcgikit.server.settings.declaration import Setting, settings_of

HEADERS = ("option", "environment", "config file key", "default")


def row(declared: Setting) -> tuple[str, str, str, str]:
    """The cells of one setting's row, as reST."""
    option = f":option:`{declared.flag} <fcgikit serve {declared.flag}>`"
    variables = ", ".join(f"``{name}``" for name in declared.env_names)
    default = declared.shown_default()
    if default is None:
        default = "off" if declared.kind.is_flag else "not set"
    elif declared.default_text is None:
        default = f"``{default}``"
    return option, variables, f"``{declared.name}``", default


def table_lines() -> list[str]:
    """A ``list-table`` of every setting of ``fcgikit serve``, in --help's order."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    rows = [HEADERS] + [row(d) for cls in SERVE_SETTINGS for d in settings_of(cls)]
    for cells in rows:
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {cell}" for cell in cells[1:]]
    return lines


class FcgikitSettings(SphinxDirective):
    """The settings table of ``fcgikit serve``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        content = StringList(table_lines(), source="<fcgikit serve settings>")
        nested_parse_with_titles(self.state, content, container)
        return list(container.children)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("fcgikit-settings", FcgikitSettings)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
