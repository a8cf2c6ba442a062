"""Settings of ``fcgikit serve`` as the command reads them, without running it."""

from __future__ import annotations

from collections.abc import Mapping

from fcgikit.cli import _build_parser
from fcgikit.server.settings import SERVE_SETTINGS
from fcgikit.server.settings.sources import ResolvedSettings, resolve


def serve_settings(*argv: str, environ: Mapping[str, str] | None = None) -> ResolvedSettings:
    """``fcgikit serve ARGV`` in ``environ`` (none by default): its settings."""
    args = _build_parser().parse_args(["serve", *argv])
    return resolve(SERVE_SETTINGS, args, environ or {})
