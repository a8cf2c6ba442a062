"""The pure-Python scan's usual GET, read in fewer calls: the records around it, each way
they may differ from the usual, read as the record-by-record reading reads them."""

from __future__ import annotations

import pytest

from fcgikit.protocol import ClientConnection
from fcgikit.protocol.constants import FCGI_VERSION_1, RecordType
from fcgikit.protocol.events import TextParams
from fcgikit.protocol.records import encode_pairs
from fcgikit.protocol.text_scan import scan_request_text_py
from fcgikit.protocol.whole_request import scan_request_py
from tests.protocol.peer_streams import GET_PARAMS, record

NAMES = {name: name.decode("latin-1") for name, _ in GET_PARAMS}
PARAMS = encode_pairs(GET_PARAMS)
PARAMS_TYPE = int(RecordType.PARAMS)
STDIN_TYPE = int(RecordType.STDIN)


def begin(request_id: int = 1, padding: int = 0) -> bytes:
    client = ClientConnection()
    whole = client.start_request(request_id, [], keep_conn=True)
    return record(FCGI_VERSION_1, int(RecordType.BEGIN_REQUEST), request_id, whole[8:16], padding)


def params(content: bytes = PARAMS, request_id: int = 1, padding: int = 0) -> bytes:
    return record(FCGI_VERSION_1, PARAMS_TYPE, request_id, content, padding)


def stdin(content: bytes = b"", request_id: int = 1, padding: int = 0) -> bytes:
    return record(FCGI_VERSION_1, STDIN_TYPE, request_id, content, padding)


@pytest.mark.parametrize(
    ("data", "taken"),
    [
        pytest.param(begin() + params() + params(b"") + stdin(), True, id="the usual GET"),
        pytest.param(begin() + params(padding=3) + params(b"") + stdin(), True, id="params padded"),
        pytest.param(begin(padding=8) + params() + params(b"") + stdin(), True, id="begin padded"),
        pytest.param(begin() + params() + params(b"", padding=8), True, id="no FCGI_STDIN yet"),
        pytest.param(begin() + params() + params(b"") + stdin(padding=1), True, id="end padded"),
        pytest.param(begin() + params() + params(b"") + stdin(b"12345678"), True, id="a body"),
        pytest.param(
            begin() + params(PARAMS[:9]) + params(PARAMS[9:]) + params(b"") + stdin(),
            True,
            id="params in two records",
        ),
        pytest.param(begin() + params() + stdin() + params(b""), False, id="ends swapped"),
        pytest.param(begin() + params() + params(b"", 2) + stdin(b"", 2), False, id="another id"),
        pytest.param(begin() + params() + params(b"") + stdin(b"", 2), False, id="stdin's id"),
        pytest.param(begin() + params(b"", 2) + params(b"") + stdin(), False, id="params' id"),
        pytest.param(begin() + params() + params(b"x") + stdin(), False, id="no params' end"),
        pytest.param(begin() + params() + params(b"") + stdin()[:-1], False, id="cut short"),
    ],
)
def test_a_gets_records_are_read_as_the_record_by_record_reading_reads_them(
    data: bytes, taken: bool
) -> None:
    spec = scan_request_py(data, 1 << 20, 128)
    found = scan_request_text_py(data, 1 << 20, 128, NAMES, 0)
    assert (found is not None) is taken
    if spec is None or found is None:
        assert found is spec
        return
    encoded, text = found[2]
    assert dict(TextParams(encoded, text)) == spec[2]
    assert text == {name.decode(): value.decode() for name, value in GET_PARAMS}
    assert (*found[:2], *found[3:4], b"".join(found[4]), *found[5:]) == (
        *spec[:2],
        *spec[3:4],
        b"".join(spec[4]),
        *spec[5:],
    )


@pytest.mark.parametrize("keep_conn", [True, False])
def test_the_usual_get_says_whether_its_connection_is_kept(keep_conn: bool) -> None:
    client = ClientConnection()
    data = client.start_request(7, GET_PARAMS, keep_conn=keep_conn) + client.end_stdin(7)
    found = scan_request_text_py(data, 1 << 20, 128, NAMES, 0)
    assert found is not None
    assert found[:2] == (7, keep_conn)
    assert found[4:] == ([], True, len(PARAMS))


def test_the_usual_gets_params_are_held_to_the_cap() -> None:
    data = begin() + params() + params(b"") + stdin()
    assert scan_request_text_py(data, len(PARAMS), 128, NAMES, 0) is not None
    assert scan_request_text_py(data, len(PARAMS) - 1, 128, NAMES, 0) is None


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param([*GET_PARAMS, (b"SCRIPT_NAME", b"/app")], id="nginx's SCRIPT_NAME twice"),
        pytest.param([(b"PATH_INFO", b"/a"), *GET_PARAMS], id="the first name twice"),
        pytest.param([*GET_PARAMS, (b"HTTP_HOST", b"a"), (b"HTTP_HOST", b"b")], id="three times"),
        pytest.param([*GET_PARAMS, *GET_PARAMS], id="every name twice"),
        pytest.param([*GET_PARAMS, (b"X", b"1"), (b"X", b"2")], id="a name left out, twice"),
        pytest.param([(b"", b""), *GET_PARAMS, (b"", b"v")], id="an empty name twice"),
        pytest.param([*GET_PARAMS, (b"X", b"1")], id="a name left out"),
        pytest.param([(b"Y", b"1"), *GET_PARAMS, (b"X", b"1")], id="two names left out, once"),
        pytest.param([(b"X", b""), *GET_PARAMS, (b"X", b"1"), (b"Y", b"")], id="left out, twice"),
    ],
)
def test_the_names_sent_twice_are_listed_as_the_record_by_record_reading_lists_them(
    pairs: list[tuple[bytes, bytes]],
) -> None:
    """A name sent twice (nginx's usual configuration sends SCRIPT_NAME twice) is listed,
    and the last value wins, as the reading of the records one by one has it."""
    client = ClientConnection()
    data = client.start_request(1, pairs, keep_conn=True) + client.end_stdin(1)
    names = {**NAMES, b"X": None, b"Y": None, b"": None}
    spec = scan_request_py(data, 1 << 20, 128)
    found = scan_request_text_py(data, 1 << 20, 128, names, 0)
    assert spec is not None and found is not None
    assert found[3] == spec[3]
    text = found[2][1]
    kept = {name: value for name, value in spec[2].items() if names[name] is not None}
    assert text == {name.decode(): value.decode() for name, value in kept.items()}
