"""The label a prefork worker's request is known by: ``#id METHOD URI``, the one
:class:`~fcgikit.server.wsgi.WSGIRequest` logs with. The worker writes it into the request's
scoreboard cell (:meth:`~fcgikit.server.scoreboard.WorkerSlot.begin_request`), where the status
page, the master's ``--timeout`` message and the slow log read it.

The C lane (``_speedups_labels.c``): ``write_label``, the label's bytes copied from the
environ's strs into the cell, for every request; it answers None outside the ordinary case
(see there), and :func:`write_label_py`, its twin and spec, writes the label then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

WriteLabel = Callable[[memoryview, int, int, "WSGIEnvironment"], int | None]
#: The C lane; None where it was not built, and with FCGIKIT_PURE_PYTHON=1.
write_label: WriteLabel | None
try:
    from fcgikit.server._speedups_labels import write_label
except ImportError:
    write_label = None


def request_label(environ: WSGIEnvironment) -> str:
    """``#id METHOD URI``, the label :class:`~fcgikit.server.wsgi.WSGIRequest` logs with."""
    uri = environ.get("REQUEST_URI") or (
        str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    )
    return f"#{environ.get('fcgikit.request_id', '?')} {environ.get('REQUEST_METHOD', '-')} {uri}"


def encoded_label(label: str, size: int) -> bytes:
    """What a cell of ``size`` bytes holds of ``label``: its UTF-8, cut to fit."""
    return label.encode("utf-8", "replace")[:size]


def write_label_py(buffer: memoryview, offset: int, size: int, environ: WSGIEnvironment) -> int:
    """``write_label``'s twin: write what fits of the request's label in ``size`` bytes into
    ``buffer`` at ``offset``; its length in bytes."""
    raw = encoded_label(request_label(environ), size)
    buffer[offset : offset + len(raw)] = raw
    return len(raw)


__all__ = ["encoded_label", "request_label", "write_label", "write_label_py"]
