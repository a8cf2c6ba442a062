"""The label a prefork worker's request is known by: ``#id METHOD URI``, the one
:class:`~fcgikit.server.wsgi.WSGIRequest` logs with. The worker writes it into the request's
scoreboard cell (:mod:`~fcgikit.server.cells`), where the status page, the master's
``--timeout`` message and the slow log read it.

:func:`write_label_py` writes it in Python; the C lane of the whole cell's write,
``_speedups_cells.RequestCells``, writes the same bytes (see
:class:`~fcgikit.server.cells.RequestCellsPy`, its twin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import mmap

    from _typeshed.wsgi import WSGIEnvironment


def request_label(environ: WSGIEnvironment) -> str:
    """``#id METHOD URI``, the label :class:`~fcgikit.server.wsgi.WSGIRequest` logs with."""
    uri = environ.get("REQUEST_URI") or (
        str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    )
    return f"#{environ.get('fcgikit.request_id', '?')} {environ.get('REQUEST_METHOD', '-')} {uri}"


def encoded_label(label: str, size: int) -> bytes:
    """What a cell of ``size`` bytes holds of ``label``: its UTF-8, cut to fit."""
    return label.encode("utf-8", "replace")[:size]


def write_label_py(
    buffer: mmap.mmap | memoryview, offset: int, size: int, environ: WSGIEnvironment
) -> int:
    """Write what fits of the request's label in ``size`` bytes into
    ``buffer`` at ``offset``; its length in bytes."""
    raw = encoded_label(request_label(environ), size)
    buffer[offset : offset + len(raw)] = raw
    return len(raw)


__all__ = ["encoded_label", "request_label", "write_label_py"]
