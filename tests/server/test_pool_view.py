"""What a reader of the scoreboard gets: the pool's figures and each worker's, as the status
page shows them."""

from __future__ import annotations

import re

from fcgikit.server.pool_view import WorkerState
from fcgikit.server.scoreboard import Scoreboard
from fcgikit.server.status import render_text


def test_status_text_lists_each_worker() -> None:
    board = Scoreboard(slots=2, threads=1)
    board.set_pool(dynamic=True, target=1, maximum=3)
    board.reset(0, generation=1)
    board.slot(0).set_pid(99)
    board.slot(0).set_state(WorkerState.READY)
    board.slot(0).begin(0, "#5 GET /x", 1)
    text = render_text(board.snapshot().as_dict())
    assert "pool mode:            dynamic" in text
    assert "busy workers:         1" in text
    assert re.search(r"current requests:     #5 GET /x \(\d", text)
