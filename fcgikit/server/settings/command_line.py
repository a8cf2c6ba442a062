"""The settings on the command line of ``fcgikit serve``: argparse's options, and a reader of
the ordinary command line that needs no argparse.

argparse is the specification of the command line: :func:`add_options` gives its parser an
option for each declared setting, and that parser makes ``--help``, the error messages, the
abbreviations and the short options. Importing argparse and building the parser are also
the largest part of what fcgikit itself does before it listens, at every start and every
SIGHUP's re-exec, for a command line that is almost always a few long options written out
whole (a unit file's, a spawner's). :func:`read_ordinary` reads such a command line from the
same declarations into the namespace argparse would make of it, and answers None for anything
else (a short or shortened option, ``--help``, a value that starts with a dash, a second
positional argument, ...), which argparse then reads. tests/server/settings/test_command_line.py
holds the two to the same namespace on generated command lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from fcgikit.server.settings.declaration import Setting, settings_of

if TYPE_CHECKING:
    import argparse

#: how an option takes its value: the next word or after ``=`` (the last one given wins),
#: the same but collected in a list (the option repeated), or none (on, or off for --no-)
STORE, APPEND, ON, OFF = "store", "append", "on", "off"


def _how(declared: Setting) -> str:
    return ON if declared.kind.is_flag else APPEND if declared.kind.is_list else STORE


def add_options(parser: argparse._ActionsContainer, cls: type) -> None:
    """An argparse option for each setting ``cls`` declares. None has a default in the
    namespace: an option is there when it was given, so that it can win over the others."""
    import argparse  # here: the ordinary command line is read without it (read_ordinary)

    actions: dict[str, Any] = {
        ON: argparse.BooleanOptionalAction,
        APPEND: "append",
        STORE: "store",
    }
    for declared in settings_of(cls):
        shown = declared.shown_default()
        text = declared.help if shown is None else f"{declared.help} (default: {shown})"
        common: dict[str, Any] = {"default": argparse.SUPPRESS, "help": text.replace("%", "%%")}
        metavar = declared.metavar or declared.kind.metavar
        if declared.positional:
            parser.add_argument(declared.dest, nargs="?", metavar=metavar, **common)
            continue
        names = [declared.flag, *([declared.short] if declared.short else [])]
        how = _how(declared)
        if how != ON:
            common["metavar"] = metavar
        parser.add_argument(*names, dest=declared.dest, action=actions[how], **common)


def _long_options(
    classes: Sequence[type], values: Mapping[str, str], switches: Mapping[str, str]
) -> tuple[dict[str, tuple[str, str]], str | None]:
    """Each long option of the command, written out whole, with its namespace attribute and
    how it takes its value; and the attribute of the positional argument."""
    options = {option: (dest, STORE) for option, dest in values.items()}
    options.update((option, (dest, ON)) for option, dest in switches.items())
    positional = None
    for cls in classes:
        for declared in settings_of(cls):
            if declared.positional:
                positional = declared.dest
                continue
            how = _how(declared)
            options[declared.flag] = (declared.dest, how)
            if how == ON:  # argparse.BooleanOptionalAction's other half
                options[f"--no-{declared.flag[2:]}"] = (declared.dest, OFF)
    return options, positional


def read_ordinary(
    argv: Sequence[str],
    classes: Sequence[type],
    *,
    values: Mapping[str, str],
    switches: Mapping[str, str],
) -> SimpleNamespace | None:
    """The namespace argparse makes of ``argv`` (``serve`` and its options), when ``argv`` is
    an ordinary command line: ``serve``, then the long options of the settings of ``classes``
    written out whole (``--name VALUE``, ``--name=VALUE``, ``--flag``, ``--no-flag``) and at
    most one positional argument, in any order. ``values`` and ``switches`` are the
    command's other options (the option, its attribute), with a value and without one; they
    are None and False when not given, as argparse's defaults. None for any other command
    line: argparse reads it."""
    if not argv or argv[0] != "serve":
        return None
    options, positional = _long_options(classes, values, switches)
    found: dict[str, Any] = {"command": "serve"}
    found.update((dest, None) for dest in values.values())
    found.update((dest, False) for dest in switches.values())
    words = iter(argv[1:])
    for word in words:
        if not word.startswith("-"):
            if positional is None or positional in found or not word:
                return None
            found[positional] = word
            continue
        option, equals, value = word.partition("=")
        if option not in options:
            return None
        dest, how = options[option]
        if how in (ON, OFF):
            if equals:
                return None
            found[dest] = how == ON
            continue
        if not equals:
            value = next(words, "-")
            if value.startswith("-"):
                return None
        elif value == "--":  # argparse drops it, even there: the option gets no value
            return None
        if how == APPEND:
            found[dest] = [*found.get(dest, ()), value]
        else:
            found[dest] = value
    return SimpleNamespace(**found)
