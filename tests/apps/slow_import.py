"""An app whose import takes as long as the test decides: it waits until the test writes to
the FIFO named by APP_IMPORT_GATE, as a large app's import takes seconds."""

import os
import sys

print("importing apps.slow_import", file=sys.stderr, flush=True)
with open(os.environ["APP_IMPORT_GATE"]) as gate:
    gate.read()

from apps.hello import app  # noqa: E402

__all__ = ["app"]
