"""The server's table of C fast lanes (fcgikit/server/lanes.py) against the lanes there are.

No lane may lack its Python twin or the test that holds the two together, and no C module
may hold a lane the table does not list, or escape the pure-Python build.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import fcgikit.server
from fcgikit._pure_python import PurePythonFinder, is_c_lane
from fcgikit.server.lanes import LANES, Lane
from tests.native import load_lane
from tests.processes import ROOT, SOURCE_TREE

PACKAGE = Path(fcgikit.server.__file__).parent
#: the C sources are in the checkout, not in an installed wheel
C_MODULES = sorted(
    f"fcgikit.server.{path.stem}"
    for path in (SOURCE_TREE / "fcgikit" / "server").glob("_speedups*.c")
)


def test_the_package_has_c_lanes() -> None:
    # the glob above is what setup.py builds; an empty one would make the tests below vacuous
    assert C_MODULES


@pytest.mark.parametrize("name", C_MODULES)
def test_the_pure_python_build_refuses_each_c_module(name: str) -> None:
    assert is_c_lane(name)
    with pytest.raises(ModuleNotFoundError, match="FCGIKIT_PURE_PYTHON"):
        PurePythonFinder().find_spec(name, [str(PACKAGE)])


@pytest.mark.parametrize("name", C_MODULES)
def test_every_public_name_of_a_c_module_is_a_lane_in_the_table(name: str) -> None:
    public = {attribute for attribute in dir(load_lane(name)) if not attribute.startswith("_")}
    listed = {
        lane.c_name.rpartition(".")[2] for lane in LANES if lane.c_name.rpartition(".")[0] == name
    }
    assert public == listed


def attribute(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("lane", LANES, ids=lambda lane: lane.c_name.rpartition(".")[2])
def test_each_lane_has_a_python_twin_and_an_equivalence_test(lane: Lane) -> None:
    c_module, _, c_attribute = lane.c_name.rpartition(".")
    assert c_module in C_MODULES, "a lane of this package, in one of its _speedups*.c"
    assert callable(getattr(load_lane(c_module), c_attribute))
    assert callable(attribute(lane.python_twin))
    # The twin lives in the module the C lane is named after, which imports it.
    twin_module = lane.python_twin.rpartition(".")[0]
    assert c_module.endswith("_speedups_" + twin_module.rpartition(".")[2])
    assert (
        c_module.rpartition(".")[2]
        in (PACKAGE / f"{twin_module.rpartition('.')[2]}.py").read_text()
    )
    path, _, test_name = lane.equivalence_test.partition("::")
    assert (ROOT / path).is_file(), path
    test_module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    assert test_name.startswith("test_") and callable(getattr(test_module, test_name))
    # ... and the test's module speaks of the twin
    assert lane.python_twin.rpartition(".")[2] in (ROOT / path).read_text()
