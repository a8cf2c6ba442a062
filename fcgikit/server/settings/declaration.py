"""How a setting is declared: once, in its dataclass field, with :func:`setting`.

A setting of ``fcgikit serve`` is a field of a frozen settings dataclass, and everything about
it is said where the field is::

    threads: int = setting(16, integer(minimum=1), "requests run at once, each on a thread")

The default, the :class:`~fcgikit.server.settings.kinds.Kind` of value (how it is written as
text, what it accepts: :mod:`~fcgikit.server.settings.kinds` makes the common ones), the
help. Its names follow from the field's: ``max_queued`` is ``--max-queued`` on the command
line, ``FCGIKIT_MAX_QUEUED`` in the environment and ``max-queued`` (or ``max_queued``) in a
config file's ``[serve]`` table. :mod:`fcgikit.server.settings.sources` reads all of those
from here, and so do ``--print-config`` and the docs' table, so none of them can disagree.

The dataclass stays what :doc:`STYLE` asks of settings: frozen, validated on creation
(:func:`check_fields` in ``__post_init__`` applies each declared kind's check), no side
effects. Fields without :func:`setting` (``roles``, ``base_environ``, ...) are for code
only: the ``.fcgi`` file's keywords and the pool set them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Final

from fcgikit.errors import ConfigError
from fcgikit.server.settings.kinds import Kind

#: the key of a field's metadata that holds its :class:`Setting`
SETTING = "fcgikit.setting"
#: the prefix of every setting's environment variable
ENV_PREFIX = "FCGIKIT_"


class Setting:
    """One setting, as its field declares it (see :func:`setting`); a plain class, as
    :class:`~fcgikit.server.settings.kinds.Kind` is, whose ``field`` and the names that
    follow from it :func:`settings_of` fills in (:meth:`name_field`)."""

    __slots__ = (
        "default",
        "default_text",
        "dest",
        "env",
        "env_aliases",
        "env_names",
        "field",
        "flag",
        "help",
        "kind",
        "metavar",
        "name",
        "named",
        "positional",
        "short",
        "starts_pool",
    )

    def __init__(
        self,
        kind: Kind,
        help: str,
        default: Any,
        field: str = "",
        named: str | None = None,
        metavar: str | None = None,
        short: str | None = None,
        positional: bool = False,
        env_aliases: tuple[str, ...] = (),
        default_text: str | None = None,
        starts_pool: bool = False,
    ) -> None:
        self.kind: Final = kind
        self.help: Final = help
        self.default: Final = default
        #: the field's name; :func:`settings_of` fills it in, with the names below
        self.field = field
        #: the option's name when the field's does not fit (``binds`` is ``--bind``)
        self.named: Final = named
        self.metavar: Final = metavar
        #: a one-letter alias of the option (``-w``)
        self.short: Final = short
        #: given on the command line without an option name (``APP``)
        self.positional: Final = positional
        #: other environment variables that set it (a spec's name), after its own
        #: ``FCGIKIT_`` one
        self.env_aliases: Final = env_aliases
        #: the default as the docs and --help say it, when its value does not say it well
        self.default_text: Final = default_text
        #: a value other than the default (and 0 / off) makes ``fcgikit serve`` run a pool
        self.starts_pool: Final = starts_pool
        if field:  # else settings_of names it, once its dataclass is made
            self.name_field(field)

    def name_field(self, field: str) -> None:
        """Name the setting after its field (:func:`settings_of` does, once the dataclass is
        made), and with it its option, attribute and variable: a start reads each of them
        for every setting, several times, so they are made once, here."""
        self.field = field
        #: ``max-queued``: the long option without its dashes, and the config file's key
        self.name = self.named or field.replace("_", "-")
        #: its attribute in argparse's namespace
        self.dest = self.name.replace("-", "_")
        #: ``--max-queued``, or ``APP`` for a positional argument
        self.flag = self.name.upper() if self.positional else f"--{self.name}"
        #: its environment variable, ``FCGIKIT_MAX_QUEUED``
        self.env = ENV_PREFIX + self.dest.upper()
        #: the variables that set it, the one that wins first
        self.env_names = (self.env, *self.env_aliases)

    def shown_default(self) -> str | None:
        """The default for --help and the docs; None when there is nothing to say."""
        if self.default_text is not None:
            return self.default_text
        if self.default is None or self.default is False or self.default in ("", (), frozenset()):
            return None
        return show_text(self.kind.show(self.default))

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting, after the option's name."""
        return None if value is None else self.kind.check(value)


def show_text(shown: object) -> str:
    """A value as ``Kind.show`` gives it, for people: ``30`` for 30.0, lists comma-separated."""
    if isinstance(shown, list):
        return ",".join(map(show_text, shown))
    if isinstance(shown, float):
        return f"{shown:g}"
    return str(shown)


def setting(
    default: Any,
    kind: Kind,
    help: str,
    *,
    name: str | None = None,
    metavar: str | None = None,
    short: str | None = None,
    positional: bool = False,
    env_aliases: Sequence[str] = (),
    default_text: str | None = None,
    starts_pool: bool = False,
) -> Any:
    """A dataclass field that is a setting of ``fcgikit serve`` (see the module docstring)."""
    declared = Setting(
        kind,
        help,
        default,
        named=name,
        metavar=metavar,
        short=short,
        positional=positional,
        env_aliases=tuple(env_aliases),
        default_text=default_text,
        starts_pool=starts_pool,
    )
    return dataclasses.field(default=default, metadata={SETTING: declared})


_declared: dict[type, tuple[Setting, ...]] = {}


def settings_of(cls: type) -> tuple[Setting, ...]:
    """The settings ``cls`` declares, in field order."""
    found = _declared.get(cls)
    if found is None:
        declaring = [field for field in dataclasses.fields(cls) if SETTING in field.metadata]
        for field in declaring:
            field.metadata[SETTING].name_field(field.name)
        found = _declared[cls] = tuple(field.metadata[SETTING] for field in declaring)
    return found


def check_fields(instance: object) -> None:
    """ConfigError for the first declared field of ``instance`` its kind refuses."""
    for declared in settings_of(type(instance)):
        problem = declared.problem(getattr(instance, declared.field))
        if problem is not None:
            raise ConfigError(f"{declared.flag} {problem}")
