"""An app whose requests wait until the test releases them, so that the ones behind queue.

The test releases every request at once by opening the FIFO named in
``FCGIKIT_TEST_RELEASE`` for writing. Each request logs ``blocking app: waiting`` before it
waits, and answers with a digest of its ``p<number>`` params, so a test can check that a request
that waited got its params intact.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

released = threading.Event()


def _wait_for_release() -> None:
    os.close(os.open(os.environ["FCGIKIT_TEST_RELEASE"], os.O_RDONLY))  # blocks until opened
    released.set()


if "FCGIKIT_TEST_RELEASE" in os.environ:
    threading.Thread(target=_wait_for_release, daemon=True).start()


def params_digest(pairs: Iterable[tuple[str, Any]]) -> str:
    """What the app answers: the number of ``p<number>`` params and a digest of them, in the
    order they came (an environ keeps the params' order)."""
    digest = hashlib.sha256()
    count = 0
    for name, value in pairs:
        if name[:1] == "p" and name[1:].isdigit():
            digest.update(f"{name}={value}\n".encode("latin-1"))
            count += 1
    return f"{count} {digest.hexdigest()}"


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    print(f"blocking app: waiting {environ.get('REQUEST_URI')}", file=sys.stderr, flush=True)
    released.wait()
    body = params_digest(environ.items()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
