"""``.. fcgikit-cli:: SUBCOMMAND``: the reference for one ``fcgikit`` subcommand, from argparse.

The options of the subcommands are made once, in :func:`fcgikit.cli._build_parser` (those of
``fcgikit serve`` from the declarations of its settings, fcgikit/server/settings; their table
is ``fcgikit_settings.py``'s). This directive reads that parser and writes the usage line,
the description and one ``.. option::`` entry per argument, so ``fcgikit serve --help`` and the
operations page cannot disagree, and other pages can link to an option with
``:option:`fcgikit serve --umask```.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from fcgikit.cli import _build_parser

_RST_SPECIAL = re.compile(r"([\\`*_|\[\]<>])")


def escape(text: str) -> str:
    """Make argparse's plain help text safe to pass through the reST parser."""
    return _RST_SPECIAL.sub(r"\\\1", text)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of every ``fcgikit SUBCOMMAND``, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _metavar(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(str(choice) for choice in action.choices) + "}"
    return action.dest.upper()


def _signature(action: argparse.Action) -> str:
    metavar = _metavar(action)
    if not action.option_strings:
        return metavar
    # Long option first: it is the one people search for and link to.
    names = sorted(action.option_strings, key=lambda name: (not name.startswith("--"), name))
    return ", ".join(f"{name} {metavar}".rstrip() for name in names)


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%" in text:
        text = text % {**vars(action), "prog": prog}
    shown_default = action.default not in (None, False, "", [], (), argparse.SUPPRESS)
    if shown_default and "default" not in text:
        text = f"{text} (default: {action.default})".lstrip()
    return text


def option_lines(parser: argparse.ArgumentParser) -> list[str]:
    """reST for one subcommand: usage, description, and an ``option`` entry per argument."""
    prog = parser.prog
    # A fixed width, so the page does not depend on the terminal the docs were built in.
    formatter = argparse.HelpFormatter(prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, "")
    usage = formatter.format_help().strip()
    lines = ["::", "", *(f"   {line}" for line in usage.splitlines()), ""]
    if parser.description:
        lines += [escape(parser.description), ""]
    lines += [f".. program:: {prog}", ""]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        lines += [f".. option:: {_signature(action)}", "", f"   {escape(_help(action, prog))}", ""]
    return lines


class FcgikitCli(SphinxDirective):
    """Document ``fcgikit SUBCOMMAND`` from the real argument parser."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        parsers = subcommands(_build_parser())
        if name not in parsers:
            raise self.error(
                f"fcgikit has no subcommand {name!r} (it has: {', '.join(sorted(parsers))})"
            )
        container = nodes.container()
        content = StringList(option_lines(parsers[name]), source=f"<fcgikit {name} --help>")
        nested_parse_with_titles(self.state, content, container)
        return list(container.children)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("fcgikit-cli", FcgikitCli)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
