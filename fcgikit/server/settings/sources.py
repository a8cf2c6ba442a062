"""Where each setting's value comes from: the command line, the environment, a config file.

Precedence: the command line, then the environment (``FCGIKIT_THREADS=8``), then the
``[serve]`` table of the TOML file ``--config`` names (``threads = 8``), then the default.
Everything here is read from the declarations (:mod:`~fcgikit.server.settings.declaration`):
:mod:`~fcgikit.server.settings.command_line` makes the command line's options (or reads it),
:func:`resolve` reads the three sources into a :class:`ResolvedSettings`, which builds the
frozen settings objects and says where each value came from (``fcgikit serve
--print-config``).

Every source is read whole, and strictly: a value a setting does not accept, a key of the
file or an ``FCGIKIT_`` variable that names no setting, is a ConfigError that names where it
was (the option, the variable, the file and its key) and what is accepted. Nothing wrong is
silently ignored, not even when a source that wins sets the same setting right.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from fcgikit.errors import ConfigError
from fcgikit.server.settings.declaration import ENV_PREFIX, Setting, settings_of

T = TypeVar("T")

#: where a value came from when no source set it
DEFAULT = "default"
COMMAND_LINE = "command line"
#: the config file to read when --config is not given
CONFIG_VARIABLE = "FCGIKIT_CONFIG"
#: the config file's table for ``fcgikit serve``
TABLE = "serve"

#: ``FCGIKIT_`` variables that are not settings. Any other ``FCGIKIT_`` variable in the
#: environment of ``fcgikit serve`` must name a setting: a misspelt one is an error. A new
#: variable of fcgikit's own that is not a setting goes here (tests/server/settings checks
#: the code base for them).
NOT_SETTINGS = frozenset(
    {
        CONFIG_VARIABLE,
        "FCGIKIT_PURE_PYTHON",  # fcgikit/_pure_python.py: no compiled module
        "FCGIKIT_STATUS_CLIENT",  # a FastCGI param `fcgikit status` sends, never a variable
    }
)
#: the test suite's variables, and the benchmarks'
NOT_SETTINGS_PREFIXES = ("FCGIKIT_TEST_", "FCGIKIT_BENCH_")


class Value:
    """A setting's value, and where it came from. A plain class, as
    :class:`~fcgikit.server.settings.declaration.Setting` is: every start makes one for each
    setting and only reads them, and a frozen dataclass's class and its generic ``__init__``
    cost a start more than the two attributes are worth."""

    __slots__ = ("origin", "value")

    def __init__(self, value: Any, origin: str) -> None:
        self.value: Final = value
        #: "default", "command line", "env:NAME" or "file:PATH"
        self.origin: Final = origin

    def __repr__(self) -> str:
        return f"Value({self.value!r}, {self.origin!r})"


class ResolvedSettings:
    """Every setting's value and where it came from; builds the settings objects."""

    def __init__(self, settings: Sequence[Setting], values: Mapping[str, Value]) -> None:
        self.settings = tuple(settings)
        self.values = dict(values)

    def __getitem__(self, field: str) -> Any:
        return self.values[field].value

    def origin(self, field: str) -> str:
        return self.values[field].origin

    def build(self, cls: type[T], **overrides: Any) -> T:
        """``cls`` from the values of the settings it declares, and ``overrides`` for the
        fields that are not settings."""
        values = {declared.field: self[declared.field] for declared in settings_of(cls)}
        return cls(**{**values, **overrides})

    def starts_pool(self) -> bool:
        """A setting that only means something with a master was given: run a pool."""
        return any(
            declared.starts_pool and self[declared.field] not in (None, 0, False)
            for declared in self.settings
        )

    def as_toml(self) -> str:
        """``--print-config``: a ``[serve]`` table of every setting, each line commented
        with where its value came from. A config file that sets all of them as they are."""
        rows = []
        for declared in self.settings:
            value = self[declared.field]
            if value is None and not declared.kind.writes_none:
                line = f"# {declared.name} is not set"
            else:
                line = f"{declared.name} = {toml_value(declared.kind.show(value))}"
            rows.append((line, self.origin(declared.field)))
        width = max(len(line) for line, _ in rows)
        lines = [f"{line:<{width}}  # {origin}" for line, origin in rows]
        heading = "# the settings of fcgikit serve, each with where its value came from"
        return "\n".join([heading, f"[{TABLE}]", *lines]) + "\n"


def toml_value(shown: object) -> str:
    """A value as ``Kind.show`` gives it (text, number, bool, list of text), in TOML."""
    if isinstance(shown, bool):
        return "true" if shown else "false"
    if isinstance(shown, int | float):
        return repr(shown)
    if isinstance(shown, list):
        return "[" + ", ".join(toml_value(item) for item in shown) + "]"
    return _toml_string(str(shown))


def _toml_string(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


# --- the command line ---------------------------------------------------------------------


def _from_command_line(settings: Iterable[Setting], args: object) -> dict[str, Value]:
    found = {}
    for declared in settings:
        if hasattr(args, declared.dest):
            value = _convert(declared, getattr(args, declared.dest), declared.flag)
            found[declared.field] = Value(value, COMMAND_LINE)
    return found


# --- the environment ----------------------------------------------------------------------


def _from_environment(
    settings: Sequence[Setting], environ: Mapping[str, str], *, strict: bool = True
) -> dict[str, Value]:
    """The settings the environment sets; ``strict``: an ``FCGIKIT_`` variable that is no
    setting is an error."""
    # The names, once: os.environ answers each name it lacks (most settings') with a
    # KeyError raised and caught inside its ``in``.
    present = set(environ)
    if strict:
        _refuse_unknown_variables(settings, present)
    found = {}
    for declared in settings:
        for name in declared.env_names:
            if name in present:
                value = _convert(declared, environ[name], f"the environment variable {name}")
                found[declared.field] = Value(value, f"env:{name}")
                break
    return found


def _refuse_unknown_variables(settings: Sequence[Setting], names: Iterable[str]) -> None:
    known = {declared.env for declared in settings}
    for name in sorted(names):
        if (
            name.startswith(ENV_PREFIX)
            and name not in known
            and name not in NOT_SETTINGS
            and not name.startswith(NOT_SETTINGS_PREFIXES)
        ):
            raise ConfigError(
                f"the environment variable {name} names no setting of fcgikit serve"
                f"{_did_you_mean(name, known)}; each option is a variable: --max-queued is "
                f"{ENV_PREFIX}MAX_QUEUED"
            )


def environment_value(cls: type, field: str, environ: Mapping[str, str]) -> Any:
    """One setting of ``cls`` as the environment sets it, else its default (for code that
    takes its other settings from elsewhere: a ``.fcgi`` file's ``WSGIServer``)."""
    [declared] = [declared for declared in settings_of(cls) if declared.field == field]
    found = _from_environment([declared], environ, strict=False)
    return found[field].value if field in found else declared.default


# --- the config file ----------------------------------------------------------------------


def _from_file(settings: Sequence[Setting], path: str) -> dict[str, Value]:
    import tomllib  # here: a .fcgi file's WSGIServer reads no config file

    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config file {path} is not TOML: {exc}") from exc
    for key, table in document.items():
        if key != TABLE or not isinstance(table, dict):
            raise ConfigError(
                f"{path}: {key!r} is not a table fcgikit reads: the settings of fcgikit "
                f"serve go in a [{TABLE}] table"
            )
    by_name = {declared.name: declared for declared in settings}
    found: dict[str, Value] = {}
    given: dict[str, str] = {}
    for key, raw in document.get(TABLE, {}).items():
        name = key.replace("_", "-")
        declared = by_name.get(name)
        if declared is None:
            raise ConfigError(
                f"{path}: [{TABLE}] has no setting {key!r}{_did_you_mean(name, by_name)}; "
                "its keys are the long options of fcgikit serve --help, without the dashes"
            )
        if name in given:
            raise ConfigError(f"{path}: [{TABLE}] sets {name} twice ({given[name]!r}, {key!r})")
        given[name] = key
        value = _convert(declared, raw, f"{path}: [{TABLE}] {key}")
        found[declared.field] = Value(value, f"file:{path}")
    return found


# --- all of them --------------------------------------------------------------------------


def resolve(classes: Sequence[type], args: object, environ: Mapping[str, str]) -> ResolvedSettings:
    """Every setting of ``classes``: from ``args`` (the namespace of the command line,
    :mod:`~fcgikit.server.settings.command_line`), else ``environ``, else the config file
    (``args.config``, else ``$FCGIKIT_CONFIG``), else its default."""
    settings = [declared for cls in classes for declared in settings_of(cls)]
    config = getattr(args, "config", None) or environ.get(CONFIG_VARIABLE)
    layers = [
        _from_command_line(settings, args),
        _from_environment(settings, environ),
        _from_file(settings, config) if config else {},
    ]
    values = {}
    for declared in settings:
        found = [layer[declared.field] for layer in layers if declared.field in layer]
        values[declared.field] = found[0] if found else Value(declared.default, DEFAULT)
    return ResolvedSettings(settings, values)


def _convert(declared: Setting, raw: object, label: str) -> Any:
    """``raw`` (text, a list of texts, a bool from argparse, any TOML value) as the value of
    ``declared``; a ConfigError says what is wrong after ``label``, where it was set."""
    kind = declared.kind
    try:
        if kind.is_list:
            value = kind.parse(_items(raw))
        elif isinstance(raw, str):
            value = kind.parse(raw)
        elif isinstance(raw, kind.native) and (not isinstance(raw, bool) or bool in kind.native):
            value = kind.from_native(raw)
        else:
            raise ValueError(raw)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    except ValueError:
        raise ConfigError(f"{label} takes {kind.accepts}, not {raw!r}") from None
    problem = declared.problem(value)
    if problem is not None:
        raise ConfigError(f"{label} {problem}")
    return value


def _items(raw: object) -> list[str]:
    """A list setting's items: comma-separated text, the option repeated, a TOML array."""
    parts = raw if isinstance(raw, list) else [raw]
    texts = [part for part in parts if isinstance(part, str)]
    if len(texts) != len(parts):
        raise ValueError(raw)
    return [item.strip() for text in texts for item in text.split(",") if item.strip()]


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    import difflib  # here: a misspelt name's, not every start's

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


__all__ = [
    "COMMAND_LINE",
    "CONFIG_VARIABLE",
    "DEFAULT",
    "NOT_SETTINGS",
    "NOT_SETTINGS_PREFIXES",
    "ResolvedSettings",
    "Value",
    "environment_value",
    "resolve",
    "toml_value",
]
