"""An app that counts the cyclic GC's collections during its own import, as a large app's
import would trigger them (it makes many container objects), and answers what it saw, and
how the collector is set while it serves."""

import gc
import json
import sys
from typing import Any

collections_during_import = 0


def _count(phase: str, info: dict[str, int]) -> None:
    global collections_during_import
    if phase == "start":
        collections_during_import += 1


gc.callbacks.append(_count)
# what an import of a framework does: tens of thousands of tracked objects, some in cycles
_made = [[index] for index in range(50_000)]
for _item in _made[:1000]:
    _item.append(_item)
gc.callbacks.remove(_count)

#: the collections since fcgikit's command line module began to load, up to now, where a
#: test's sitecustomize counts them (tests/test_cli_startup.py)
_counter = sys.modules.get("sitecustomize")
collections_during_start = getattr(_counter, "collections_since_cli", None)


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    seen = {
        "collections_during_import": collections_during_import,
        "collections_during_start": collections_during_start,
        "enabled": gc.isenabled(),
        "threshold": gc.get_threshold(),
    }
    return [json.dumps(seen).encode()]
