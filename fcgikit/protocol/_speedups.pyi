"""Types of the C fast lane fcgikit/protocol/_speedups.c (see ServerConnection.receive_data)."""

def scan_request(
    data: bytes | bytearray | memoryview, max_params_size: int, /
) -> tuple[int, int, dict[bytes, bytes], set[bytes] | None, list[bytes], bool] | None: ...
