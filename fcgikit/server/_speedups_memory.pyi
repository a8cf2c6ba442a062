"""glibc's mallopt for fcgikit.server.memory (fcgikit/server/_speedups_memory.c)."""

def mallopt(param: int, value: int, /) -> int | None:
    """glibc's mallopt(3): 1 when it took the value, 0 when not; None on another C library."""
