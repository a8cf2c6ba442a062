"""glibc's malloc thresholds (fcgikit.server.memory), measured as page faults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fcgikit.server.memory import _mallopt_py, tune_malloc
from tests.native import load_lane

# A worker thread that reads a 1 MiB body and builds a few megabytes from it, as a request
# that echoes its body does; it prints the page faults per request after a warm-up.
REQUESTS = """
import os, resource, sys, threading
from fcgikit.server.memory import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc({})
body = os.urandom(1 << 20)

def requests():
    def one():
        received = bytes(memoryview(body))
        answers = [received + b"headers" for _ in range(3)]
        del received, answers
    for _ in range(3):
        one()
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(40):
        one()
    print((resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before) / 40)

thread = threading.Thread(target=requests)
thread.start()
thread.join()
"""


def faults_per_request(mode: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", REQUESTS, mode], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout)


def test_tuned_malloc_keeps_large_blocks_instead_of_faulting_them_in_per_request() -> None:
    default = faults_per_request("default")
    tuned = faults_per_request("tuned")
    # 1 MiB is 256 pages: with glibc's defaults the arena gives them back after each
    # request and faults them in again (~1,000 a request here); tuned, they stay.
    assert default > 256, default
    assert tuned < default / 10, (tuned, default)


def test_the_operator_s_own_malloc_settings_win() -> None:
    assert tune_malloc({"MALLOC_TRIM_THRESHOLD_": "131072"}) is False
    assert tune_malloc({"MALLOC_MMAP_THRESHOLD_": "131072"}) is False


#: mallopt(3)'s M_PERTURB: 0 is its default, so setting it changes nothing in this process
M_PERTURB = -6
#: M_MXFAST: glibc refuses one above 80 words (and changes nothing then)
M_MXFAST = 1


@pytest.mark.parametrize(
    ("param", "value", "answer"),
    [(M_PERTURB, 0, 1), (M_MXFAST, 1000, 0)],
    ids=["taken", "refused"],
)
def test_the_c_mallopt_answers_as_the_python(param: int, value: int, answer: int) -> None:
    lane = load_lane("fcgikit.server._speedups_memory")
    assert lane.mallopt(param, value) == _mallopt_py(param, value) == answer
