"""The table of the protocol's C fast lanes (fcgikit/protocol/lanes.py): every lane the C
module has is listed, with a Python twin that exists and an equivalence test that exists."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

import pytest

from fcgikit.protocol.lanes import LANES, Lane
from tests.native import load_lane

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lane_module() -> ModuleType:
    return load_lane("fcgikit.protocol._speedups")


def resolve(dotted: str) -> object:
    module_name, _, qualified = dotted.partition(":")
    found: object = importlib.import_module(module_name)
    for name in qualified.split("."):
        found = getattr(found, name)
    return found


def test_every_c_name_is_a_lane_in_the_table(lane_module: ModuleType) -> None:
    names = {name for name in vars(lane_module) if not name.startswith("_")}
    assert names == {lane.c_name for lane in LANES} | {"configure"}
    assert len({lane.c_name for lane in LANES}) == len(LANES)


@pytest.mark.parametrize("lane", LANES, ids=[lane.c_name for lane in LANES])
def test_each_lane_has_a_python_twin_and_an_equivalence_test(
    lane: Lane, lane_module: ModuleType
) -> None:
    assert callable(getattr(lane_module, lane.c_name))
    twin = resolve(lane.python_twin)
    assert callable(twin), lane.python_twin
    path, _, function = lane.equivalence_test.partition("::")
    tree = ast.parse((ROOT / path).read_text())
    tests = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert function in tests, f"{lane.equivalence_test} does not exist"
    # and the test does compare the two: it names the twin
    assert lane.python_twin.rpartition(":")[2].split(".")[0] in (ROOT / path).read_text()
