"""The kinds of value a setting takes: how each is written as text and in TOML, and what
it accepts.

A setting's declaration (:func:`~fcgikit.server.settings.declaration.setting`) names its
:class:`Kind`: one of those made here (``integer(minimum=1)``, ``seconds()``, :data:`FLAG`,
``text(check)``, ``choice(...)``, ``octal(check)``, ``size()``, ``networks()``,
``text_list(metavar)``), or one of its own next to the settings class (``ADDRESSES`` in
:mod:`fcgikit.server.settings.server`). The command line, the environment and a config file
read a value with its ``parse`` (or take a TOML value through ``from_native``), and every
value, however it was made, is judged by its ``check``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final


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

    This and :class:`~fcgikit.server.settings.declaration.Setting` are plain classes whose
    attributes are Final (nothing assigns them after ``__init__``): every start of ``fcgikit
    serve`` creates both classes and a hundred of their instances, and a named tuple's class
    costs a compiled ``__new__``, a dataclass's more.
    """

    __slots__ = (
        "accepts",
        "check",
        "from_native",
        "is_flag",
        "is_list",
        "metavar",
        "native",
        "parse",
        "show",
        "writes_none",
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
