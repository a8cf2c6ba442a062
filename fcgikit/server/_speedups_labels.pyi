"""The request label's writer for fcgikit.server.labels (fcgikit/server/_speedups_labels.c)."""

from typing import Any

def write_label(
    buffer: memoryview, offset: int, size: int, environ: dict[str, Any], /
) -> int | None:
    """Write what fits of the request's label in ``size`` bytes into ``buffer`` at ``offset``;
    its length in bytes, or None outside the ordinary case."""
