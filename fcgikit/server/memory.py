"""glibc's malloc, set for a server whose threads handle large bodies.

A request that reads a 1 MiB body and answers with it allocates and frees megabyte blocks
on a worker thread, in that thread's malloc arena. With glibc's defaults, freeing them often
leaves more than the trim threshold free at the top of the arena, so glibc hands the pages
back to the kernel, and the next request faults every page in again, zero-filled: ~250 page
faults per MiB. The thresholds also move on their own (each large free raises them), so the
cost comes and goes with the order in which an app happens to allocate.

:func:`tune_malloc` fixes both thresholds at start-up: blocks under 4 MiB come from the
arenas, and an arena keeps up to 8 MiB free before trimming. Large bodies then cost about
half the CPU they did (benchmarks/RESULTS.md, "glibc's malloc thresholds"). The price is
memory kept for reuse: at most 8 MiB of free space per arena that handled large
blocks (glibc's own dynamic thresholds allow up to 64 MiB).

An operator who sets ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` in the
environment (glibc's own knobs, see ``mallopt(3)``) keeps them: fcgikit then leaves malloc
alone. Other C libraries (musl) are left alone too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

#: blocks this large or larger get their own mmap (glibc's default: 128 KiB, then dynamic)
MMAP_THRESHOLD = 4 * 1024 * 1024
#: free space at the top of an arena beyond this goes back to the kernel
TRIM_THRESHOLD = 8 * 1024 * 1024
#: the glibc variables that, when set, mean the operator chose
ENVIRONMENT_OVERRIDES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

# mallopt(3) parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _mallopt_py(param: int, value: int) -> int | None:
    """glibc's mallopt(3) through ctypes: 1 when it took the value, 0 when not; None on
    another C library (musl's mallopt does nothing). The spec of the C lane's ``mallopt``."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only)
        mallopt = libc.mallopt
    except (ImportError, OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return int(mallopt(param, value))


_mallopt_c: Callable[[int, int], int | None] | None
#: The C lane (fcgikit/server/_speedups_memory.c): the same call without importing ctypes;
#: None where it was not built, and with FCGIKIT_PURE_PYTHON=1.
try:
    from fcgikit.server._speedups_memory import mallopt as _mallopt_c
except ImportError:
    _mallopt_c = None


def _mallopt(param: int, value: int) -> int | None:
    answer = None if _mallopt_c is None else _mallopt_c(param, value)
    return _mallopt_py(param, value) if answer is None else answer


def tune_malloc(environ: Mapping[str, str] = os.environ) -> bool:
    """Fix glibc's mmap and trim thresholds (see the module docstring); True if they were
    set, False on another C library or when the environment sets either one."""
    if any(name in environ for name in ENVIRONMENT_OVERRIDES):
        return False
    # mallopt returns 1 on success
    return _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and (
        _mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    )
