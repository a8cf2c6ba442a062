"""Write the seed inputs in ``fuzz/seeds/{connection,server}`` from valid exchanges.

Each seed is a setup byte (see the harness docstrings) followed by a stream our own
ClientConnection builds: a plain GET, a POST with a body, keep-conn requests reusing an id,
an abort, GET_VALUES, a Filter, an Authorizer, multiplexed requests, and the server apps'
PATH_INFO letters. Seeds only speed the fuzzer up; it finds the rest itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fcgikit.protocol import ClientConnection, Role
from fcgikit.protocol.records import pack_header, pack_records

HERE = Path(__file__).parent


def request(
    client: ClientConnection, rid: int, path: bytes, body: bytes = b"", **kw: object
) -> bytes:
    params = {b"REQUEST_METHOD": b"POST" if body else b"GET", b"PATH_INFO": path}
    if body:
        params[b"CONTENT_LENGTH"] = str(len(body)).encode()
    data = client.start_request(rid, params, keep_conn=True, **kw)  # type: ignore[arg-type]
    if kw.get("role") == Role.AUTHORIZER:
        return data
    data += client.send_stdin(rid, body) + client.end_stdin(rid)
    if kw.get("role") == Role.FILTER:
        data += client.send_data(rid, b"filter data") + client.end_data(rid)
    return data


def streams() -> list[bytes]:
    out: list[bytes] = []
    for letter in b"lrnfxhtsegwc_":
        path = b"/" + bytes([letter])
        out.append(request(ClientConnection(), 1, path, b"line one\nline two\n" * 8))
    c = ClientConnection()
    out.append(request(c, 1, b"/gx"))
    c = ClientConnection()
    out.append(
        c.start_request(1, {b"A": b"B"}, keep_conn=True)
        + c.send_stdin(1, b"x" * 100)
        + c.abort_request(1)
    )
    c = ClientConnection()
    out.append(
        c.get_values([b"FCGI_MPXS_CONNS", b"FCGI_MAX_REQS", b"NOPE"])
        + pack_records(42, 0, b"?" * 8)
    )
    out.append(request(ClientConnection(), 3, b"/f", b"in", role=Role.FILTER))
    out.append(request(ClientConnection(), 4, b"/l", role=Role.AUTHORIZER))
    c = ClientConnection()
    out.append(
        request(c, 1, b"/l", b"a" * 70) + request(c, 2, b"/w", b"b" * 200) + request(c, 3, b"/g")
    )
    # a keep-conn connection reusing id 1 after the first request ends
    out.append(
        request(ClientConnection(), 1, b"/l", b"one")
        + request(ClientConnection(), 1, b"/w", b"two")
    )
    out.append(pack_header(1, 1, 8) + b"\x00\x01\x01" + bytes(5) + pack_header(5, 1, 0))
    return out


def main() -> None:
    for target, configs in (
        ("connection", (0x00, 0x11, 0x26, 0x02, 0x73)),
        ("server", (0x00, 0x05, 0x37, 0x0E)),
    ):
        folder = HERE / "seeds" / target
        folder.mkdir(parents=True, exist_ok=True)
        for stream in streams():
            for config in configs:
                data = bytes([config]) + (b"\x00" if target == "connection" else b"") + stream
                (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)
        print(folder, len(list(folder.iterdir())))


if __name__ == "__main__":
    main()
