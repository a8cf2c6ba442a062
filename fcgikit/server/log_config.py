"""An operator's logging configuration (``fcgikit serve --log-config FILE``).

It replaces fcgikit's defaults (:mod:`fcgikit.server.logs`): it is the operator's, and may
configure any logger. The master applies it before it forks, so the workers log the same
way. A module of its own so that a server started without such a file does not import
:mod:`logging.config` and :mod:`configparser`.
"""

from __future__ import annotations

import configparser
import json
import logging
import logging.config
from typing import Any

from fcgikit.errors import ConfigError


def apply_log_config(path: str) -> bool:
    """Configure logging from ``path`` instead of fcgikit's defaults; True when it configures
    the access log (names the ``fcgikit.access`` logger).

    ``FILE.json`` and ``FILE.toml`` hold a :func:`logging.config.dictConfig` dictionary, the
    whole file; any other file is an ini file for :func:`logging.config.fileConfig`. Loggers
    that exist already (fcgikit's, by now) stay enabled unless a dictionary says
    ``disable_existing_loggers``. A logger of fcgikit's that the file gives handlers does not
    propagate unless the file says so: its lines would otherwise reach the root logger's
    handlers too (the app's, once it sets them) and be written twice.
    """
    try:
        if path.endswith((".json", ".toml")):
            config = _read_dict_config(path)
            config.setdefault("disable_existing_loggers", False)
            loggers = config.get("loggers") or {}
            for name, logger in loggers.items():
                if _is_fcgikit(name) and isinstance(logger, dict) and logger.get("handlers"):
                    logger.setdefault("propagate", False)
            logging.config.dictConfig(config)
            return "fcgikit.access" in loggers
        quiet, names_access = _ini_loggers(path)
        logging.config.fileConfig(path, disable_existing_loggers=False)
    except ConfigError:
        raise
    except (OSError, ValueError, TypeError, KeyError, AttributeError, ImportError) as exc:
        raise ConfigError(f"--log-config {path}: {exc}") from exc
    except configparser.Error as exc:
        raise ConfigError(f"--log-config {path} is not an ini file for fileConfig: {exc}") from exc
    for name in quiet:
        logging.getLogger(name).propagate = False
    return names_access


def _is_fcgikit(name: str) -> bool:
    return name.partition(".")[0] == "fcgikit"


def _read_dict_config(path: str) -> dict[str, Any]:
    with open(path, "rb") as file:
        if path.endswith(".json"):
            try:
                config = json.load(file)
            except ValueError as exc:
                raise ConfigError(f"--log-config {path} is not JSON: {exc}") from exc
        else:
            import tomllib

            try:
                config = tomllib.load(file)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"--log-config {path} is not TOML: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"--log-config {path} must hold a dictConfig dictionary (an object)")
    return config


def _ini_loggers(path: str) -> tuple[list[str], bool]:
    """The loggers of fcgikit's that an ini file gives handlers without a ``propagate`` of
    its own (fileConfig would make them propagate), and whether it names fcgikit.access."""
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(path):
        raise ConfigError(f"--log-config {path}: cannot read it")
    quiet = []
    names_access = False
    for key in parser.get("loggers", "keys", fallback="").split(","):
        section = f"logger_{key.strip()}"
        if not parser.has_section(section):
            continue
        qualname = parser.get(section, "qualname", fallback="root")
        names_access = names_access or qualname == "fcgikit.access"
        if (
            _is_fcgikit(qualname)
            and parser.get(section, "handlers", fallback="").strip()
            and not parser.has_option(section, "propagate")
        ):
            quiet.append(qualname)
    return quiet, names_access
