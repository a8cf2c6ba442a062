"""Run a harness under atheris (libFuzzer): ``python fuzz/run.py TARGET [libFuzzer args]``.

TARGET is ``connection`` (the sans-I/O protocol, both ends) or ``server`` (the server's
request path: Channel, WSGIRequest, wsgi.input, spooling). For example::

    python fuzz/run.py connection /tmp/corpus-connection fuzz/seeds/connection \\
        -atheris_runs=1000000 -max_len=4096

Only fcgikit is instrumented, so coverage figures are fcgikit's edges. A crash writes
``crash-<sha1>`` in the current directory; replay it with ``python fuzz/replay.py``.

``FUZZ_C_LANES=1`` plugs the C fast lanes (``fcgikit/*/_speedups*.c``, from the last
``pip install``) into the instrumented Python, the way the compiled build uses them: the
Python is still what guides the fuzzer, and the lanes see every input that arrives whole.
"""

from __future__ import annotations

import logging
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# atheris instruments Python bytecode, so the compiled protocol (setup.py) would be fuzzed
# blind: run the .py modules (fuzz/replay.py still replays a corpus against either build).
os.environ["FCGIKIT_PURE_PYTHON"] = "1"
# The server logs every hostile input; millions of log lines would only slow the run.
logging.disable(logging.CRITICAL)

TARGETS = {
    "connection": ("protocol_target", "connection_input"),
    "server": ("server_target", "server_input"),
}


def plug_in_c_lanes() -> None:
    """The pure-Python build refuses the lanes at import; load them from their built files
    (after the instrumented imports, which must be the first) and put them where the
    compiled build has them."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from fcgikit.protocol import output, server_connection, whole_request
    from fcgikit.server import wsgi, wsgi_codec
    from tests.native import load_lane

    protocol_lanes = load_lane("fcgikit.protocol._speedups")
    wsgi_lane = load_lane("fcgikit.server._speedups_wsgi_codec")
    # where each is read: ServerConnection() takes scan_request, as WholeRequest.parse does
    server_connection.scan_request = protocol_lanes.scan_request
    whole_request.scan_request = protocol_lanes.scan_request
    output.frame_end = protocol_lanes.frame_end
    wsgi_codec.give_header_rules(wsgi_lane._set_header_rules)
    wsgi.fast_environ = wsgi_lane.environ_from_params  # WSGIRequest reads them from wsgi
    wsgi.fast_encode_head = wsgi_lane.encode_head


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(TARGETS)}}} [libFuzzer args]")
    module_name, function_name = TARGETS[sys.argv.pop(1)]
    with atheris.instrument_imports(include=["fcgikit"]):
        import fcgikit.protocol
        import fcgikit.server.channel  # noqa: F401

        module = __import__(module_name)
    if os.environ.get("FUZZ_C_LANES", "") not in ("", "0"):
        plug_in_c_lanes()
    atheris.Setup(sys.argv, getattr(module, function_name))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
