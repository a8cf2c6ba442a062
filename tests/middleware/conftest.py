from __future__ import annotations

from collections.abc import Iterator

import pytest

from fcgikit.middleware import unguard_stdout


@pytest.fixture(autouse=True)
def _restore_stdout() -> Iterator[None]:
    """StdoutGuard and wrap() guard the whole process; put fd 1 and sys.stdout back."""
    yield
    unguard_stdout()
