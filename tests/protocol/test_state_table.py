"""The protocol's tables (fcgikit/protocol/state.py) as data: complete, and drawn as they are.

test_state_matrix.py holds a connection to them record by record; these check the tables
themselves, so that the drawing a reader trusts is the table the connection follows.
"""

from __future__ import annotations

import ast
import textwrap

from fcgikit.protocol import state
from fcgikit.protocol.constants import RecordType, Role
from fcgikit.protocol.state import (
    INPUT_STREAMS,
    OTHER_TYPES,
    RULES,
    Action,
    RequestState,
    Standing,
    rule,
)
from tests.processes import SOURCE_TREE


def test_the_docstring_draws_the_table_the_connection_follows() -> None:
    # from the source: a module compiled with mypyc keeps no docstring (and the tests of an
    # installed wheel run from a copy of the checkout without fcgikit/)
    source = SOURCE_TREE / "fcgikit" / "protocol" / "state.py"
    docstring = ast.get_docstring(ast.parse(source.read_text()))
    assert docstring is not None
    assert textwrap.indent(state.drawing(), "    ") in docstring


def test_every_record_type_has_a_rule_wherever_its_id_stands() -> None:
    standings = [*Standing, *RequestState]
    assert set(RULES) == set(standings)
    for standing in standings:
        assert set(RULES[standing]) == {*(int(kind) for kind in RecordType), OTHER_TYPES}
    assert rule(Standing.MANAGEMENT, 200) is Action.ANSWER_UNKNOWN_TYPE  # spec 4.2
    assert rule(RequestState.READING_STDIN, 200) is Action.ERROR_UNDEFINED_TYPE


def test_every_error_cell_has_its_words_and_every_read_cell_its_stream() -> None:
    errors = {action for action in Action if action.name.startswith("ERROR_")}
    assert set(state.ERROR_MESSAGES) == errors
    for standing, row in RULES.items():
        if Action.STREAM in row.values():
            assert isinstance(standing, RequestState) and standing is not RequestState.ABORTED
    # every state a request reads in reads one stream, and its end leads on
    for (role, request_state), stream in INPUT_STREAMS.items():
        assert role in Role and rule(request_state, stream.record_type) is Action.STREAM
        assert stream.state_after_end is not request_state
