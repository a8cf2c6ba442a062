"""The settings of fcgikit's server and of ``fcgikit serve``, each declared once.

:class:`ServerSettings` (the FastCGI server), :class:`PoolSettings` (the process pool) and
:class:`CommandSettings` (what the command does around them) are frozen dataclasses whose
fields declare each setting (:mod:`~fcgikit.server.settings.declaration`), made by
:func:`~fcgikit.protocol.frozen.frozen_dataclass` (no code is generated for them at start);
:mod:`~fcgikit.server.settings.sources` reads them from the command line, the environment and
a config file. CONTRIBUTING.md says how to add one.
"""

from __future__ import annotations

from fcgikit.server.settings.command import CommandSettings
from fcgikit.server.settings.pool import PoolSettings, parse_workers
from fcgikit.server.settings.server import MiB, ServerSettings

#: the settings of ``fcgikit serve``, in the order --help lists them
SERVE_SETTINGS: tuple[type, ...] = (CommandSettings, ServerSettings, PoolSettings)

__all__ = [
    "SERVE_SETTINGS",
    "CommandSettings",
    "MiB",
    "PoolSettings",
    "ServerSettings",
    "parse_workers",
]
