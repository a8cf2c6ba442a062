"""How a setting is declared: once, in its dataclass field, with :func:`setting`.

A setting of ``fcgikit serve`` is a field of a frozen settings dataclass, and everything about
it is said where the field is::

    threads: int = setting(16, integer(minimum=1), "requests run at once, each on a thread")

The default, the :class:`Kind` of value (how it is written as text, what it accepts), the
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
from collections.abc import Callable, Sequence
from typing import Any, Final

from fcgikit.errors import ConfigError

#: the key of a field's metadata that holds its :class:`Setting`
SETTING = "fcgikit.setting"
#: the prefix of every setting's environment variable
ENV_PREFIX = "FCGIKIT_"


def _no_problem(value: Any) -> str | None:
    return None


def _as_it_is(value: Any) -> Any:
    return value


class Kind:
    """A kind of value: how it is written as text and in TOML, and what is accepted.

    ``parse`` reads the text of the command line, the environment or a TOML string, and
    raises ValueError (or ConfigError, whose message is then shown) for text it cannot read.
    ``check`` judges a value however it was made (the Python API too) and returns what is
    wrong with it, worded to follow the option's name: ``"must be at least 1, not 0"``.
    ``show`` writes a value back the way ``parse`` (or TOML) reads it.

    This and :class:`Setting` are plain classes whose attributes are Final (nothing assigns
    them after ``__init__``): every start of ``fcgikit serve`` creates both classes and a
    hundred of their instances, and a named tuple's class costs a compiled ``__new__``, a
    dataclass's more.
    """

    __slots__ = (
        "accepts", "check", "from_native", "is_flag", "is_list", "metavar", "native", "parse",
        "show", "writes_none",
    )

    def __init__(
        self,
        accepts: str,
        parse: Callable[[Any], Any],
        metavar: str | None = None,
        native: tuple[type, ...] = (),
        from_native: Callable[[Any], Any] = _as_it_is,
        check: Callable[[Any], str | None] = _no_problem,
        show: Callable[[Any], object] = str,
        is_list: bool = False,
        is_flag: bool = False,
        writes_none: bool = False,
    ) -> None:
        #: what is accepted, to follow "takes": ``"an integer of at least 1"``
        self.accepts: Final = accepts
        self.parse: Final = parse
        #: the command line's placeholder for the value
        self.metavar: Final = metavar
        #: TOML values taken as they are (through ``from_native``); bool is never an int here
        self.native: Final = native
        self.from_native: Final = from_native
        self.check: Final = check
        self.show: Final = show
        #: a list: ``parse`` takes the items (comma-separated text, the option repeated, or a
        #: TOML array) and makes the field's value of them
        self.is_list: Final = is_list
        #: on or off: ``--name`` / ``--no-name`` on the command line, no value
        self.is_flag: Final = is_flag
        #: None is a value ``show`` writes (0 for "never"), not "not set"
        self.writes_none: Final = writes_none


class Setting:
    """One setting, as its field declares it (see :func:`setting`); a plain class, as
    :class:`Kind` is, whose ``field`` :func:`settings_of` fills in."""

    __slots__ = (
        "default", "default_text", "env_aliases", "field", "help", "kind", "metavar", "named",
        "positional", "short", "starts_pool",
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
        #: the field's name; :func:`settings_of` fills it in (the one attribute it sets)
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

    @property
    def name(self) -> str:
        """``max-queued``: the long option without its dashes, and the config file's key."""
        return self.named or self.field.replace("_", "-")

    @property
    def dest(self) -> str:
        """Its attribute in argparse's namespace."""
        return self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        return self.name.upper() if self.positional else f"--{self.name}"

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()

    @property
    def env_names(self) -> tuple[str, ...]:
        """The variables that set it, the one that wins first."""
        return (self.env, *self.env_aliases)

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
            field.metadata[SETTING].field = field.name
        found = _declared[cls] = tuple(field.metadata[SETTING] for field in declaring)
    return found


def check_fields(instance: object) -> None:
    """ConfigError for the first declared field of ``instance`` its kind refuses."""
    for declared in settings_of(type(instance)):
        problem = declared.problem(getattr(instance, declared.field))
        if problem is not None:
            raise ConfigError(f"{declared.flag} {problem}")


# --- the kinds every settings class uses --------------------------------------------------


def _int(text: str) -> int:
    return int(text.strip())


def integer(minimum: int = 0) -> Kind:
    """A whole number, at least ``minimum``."""

    def check(value: int) -> str | None:
        if value >= minimum:
            return None
        if minimum == 0:
            return f"cannot be negative ({value})"
        return f"must be at least {minimum}, not {value}"

    accepts = "a whole number" + (f" of at least {minimum}" if minimum else ", 0 or more")
    return Kind(accepts, _int, metavar="N", native=(int,), check=check, show=lambda v: v)


def _must_be_positive(value: float) -> str | None:
    return None if value > 0 else f"must be positive, not {value:g}"


def seconds(*, zero_means_never: bool = False, positive: bool = False) -> Kind:
    """A duration in seconds. ``zero_means_never``: 0 is None (wait for ever)."""

    def parse(text: str) -> float | None:
        value = float(text.strip())
        return None if zero_means_never and value == 0 else value

    def from_native(value: float) -> float | None:
        return None if zero_means_never and value == 0 else float(value)

    def check(value: float) -> str | None:
        if positive or zero_means_never:
            return _must_be_positive(value)
        return None if value >= 0 else f"cannot be negative ({value:g})"

    if zero_means_never:
        accepts = "seconds, or 0 for never"
    else:
        accepts = "seconds above 0" if positive else "seconds, 0 or more"
    return Kind(
        accepts,
        parse,
        metavar="SECONDS",
        native=(int, float),
        from_native=from_native,
        check=check,
        show=lambda value: 0 if value is None else value,
        writes_none=zero_means_never,
    )


#: how the environment (and a TOML string) may say on and off
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(text)


#: on or off
FLAG = Kind(
    "true or false (1/0, yes/no, on/off)",
    _boolean,
    native=(bool,),
    show=lambda value: value,
    is_flag=True,
)


def text(check: Callable[[str], str | None] = _no_problem, metavar: str | None = None) -> Kind:
    """Any text (a path, a name)."""
    return Kind("text", lambda value: value, metavar=metavar, native=(str,), check=check)


def choice(*options: str) -> Kind:
    """One word of ``options``."""

    def parse(word: str) -> str:
        if word.strip().lower() not in options:
            raise ValueError(word)
        return word.strip().lower()

    return Kind(
        f"one of {', '.join(options)}",
        parse,
        metavar="{" + ",".join(options) + "}",
        check=lambda value: None if value in options else f"takes one of {', '.join(options)}",
    )


def octal(check: Callable[[int], str | None] = _no_problem) -> Kind:
    """File permission bits in octal (``007``, ``660``). A TOML number is refused: ``660``
    there is decimal, and ``0o660`` cannot be told from it once read."""
    return Kind(
        'an octal mode like 660 (in a config file as text: "660")',
        lambda value: int(value.strip(), 8),
        metavar="OCTAL",
        check=check,
        show=lambda value: f"{value:03o}",
    )


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _size(text: str) -> int:
    """Bytes from ``65536``, ``64K``, ``64M`` or ``1G`` (units of 1024; ``64MiB`` too)."""
    number = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = number[-1:] if number[-1:] in _SIZE_UNITS else ""
    digits = number[: len(number) - len(unit)]
    if not digits.isdigit():
        raise ValueError(text)
    return int(digits) * _SIZE_UNITS[unit]


def _show_size(value: int) -> str:
    for unit in ("G", "M", "K"):
        if value and value % _SIZE_UNITS[unit] == 0:
            return f"{value // _SIZE_UNITS[unit]}{unit}"
    return str(value)


def size() -> Kind:
    """A number of bytes, with an optional unit: ``65536``, ``512K``, ``64M``, ``1G``."""
    return Kind(
        "a size in bytes like 65536, 512K, 64M or 1G",
        _size,
        metavar="SIZE",
        native=(int,),
        check=lambda value: None if value >= 0 else f"cannot be negative ({value})",
        show=_show_size,
    )


def networks(*, empty_is_anyone: bool = False) -> Kind:
    """IP addresses and networks (``10.0.0.5``, ``10.0.0.0/8``, ``fd00::/8``) or ``*``.
    ``empty_is_anyone``:
    a list with no entry is None (no limit, as an empty FCGI_WEB_SERVER_ADDRS means), not
    a list that trusts nobody."""
    from fcgikit.networks import TrustedNetworks

    def parse(items: list[str]) -> TrustedNetworks | None:
        if empty_is_anyone and not any(item.strip(", ") for item in items):
            return None
        return TrustedNetworks.parse(items, "")

    return Kind(
        "IP addresses or networks (10.0.0.5, 10.0.0.0/8, fd00::/8), comma-separated, or *",
        parse,
        metavar="IP|NET[,...]",
        show=lambda value: value.entries(),
        is_list=True,
    )


def text_list(metavar: str) -> Kind:
    """Several texts (paths, names): the option repeated, comma-separated, or a TOML array."""
    return Kind(
        "text, several comma-separated",
        tuple,
        metavar=metavar,
        show=list,
        is_list=True,
    )
