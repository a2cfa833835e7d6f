"""vmlib.scenarios: the step vocabulary, validation, JSON round trip, simulator replay."""

import json

import pytest

from vmlib import scenarios as sc


def test_at_least_twelve_unique_scenarios():
    names = [s.name for s in sc.SCENARIOS]
    assert len(names) >= 12
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("s", sc.SCENARIOS, ids=lambda s: s.name)
def test_json_round_trip(s):
    d = json.loads(json.dumps(sc.to_dict(s)))
    assert sc.from_dict(d) == s


def test_describe_every_step_type():
    steps = [sc.Mmap("a", 2), sc.Read("a", 1), sc.Write("a", 0, b"q"), sc.Fork(child="c2"),
             sc.Munmap("a", 1, 1), sc.Exit("c2"), sc.LookSpecial()]
    texts = [sc.describe(s) for s in steps]
    assert texts[2] == "parent: write b'q' to a[0]"
    assert texts[4] == "parent: munmap a[1:2]"
    assert texts[3] == "parent: fork -> c2"


def test_processes_and_mappings():
    s = sc.get("child_write_cow")
    assert sc.processes(s) == ["parent", "child"]
    assert sc.mappings(s) == {"a": 1}


@pytest.mark.parametrize("steps, words", [
    ([sc.Read("a")], "has no mapping 'a'"),
    ([sc.Mmap("a"), sc.Write("a", who="child")], "process 'child' does not exist"),
    ([sc.Mmap("a", 2), sc.Read("a", 2)], "outside 'a'"),
    ([sc.Mmap("a", prot="rwx")], "prot must be one of"),
    ([sc.Mmap("a", flags="fixed")], "flags must be one of"),
    ([sc.Mmap("a", npages=0)], "npages must be an int >= 1"),
    ([sc.Mmap("a"), sc.Fork(), sc.Fork()], "already used"),
    ([sc.Mmap("a"), sc.Fork(), sc.Exit("child"), sc.Read("a", who="child")], "does not exist"),
    ([sc.Mmap("a"), sc.Write("a", data=b"")], "data must be 1..64 bytes"),
])
def test_bad_scenarios_are_rejected_with_a_message(steps, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace(".", r"\.")):
        sc.Scenario("bad", "bad", steps)


def test_unknown_step_and_name():
    with pytest.raises(ValueError, match="unknown step op 'Jump'"):
        sc.step_from_dict({"op": "Jump"})
    with pytest.raises(ValueError, match="no scenario 'nope'; choose one of"):
        sc.get("nope")
    with pytest.raises(TypeError, match="not a scenario step"):
        sc.Scenario("bad", "bad", ["mmap"])


def _core():
    """vmlib.Kernel, or a failure that says the simulator core has not landed yet."""
    import vmlib
    if not hasattr(vmlib, "Kernel"):
        pytest.fail("NEEDS THE SIMULATOR CORE: vmlib.Kernel is not there yet (DESIGN.md §3); "
                    "this test replays every scenario on it and must pass once the core lands")
    return vmlib


@pytest.mark.parametrize("s", sc.SCENARIOS, ids=lambda s: s.name)
def test_every_scenario_replays_on_the_simulator(s):
    _core()
    from vmlib.real import simulate
    run = simulate(s)
    assert run["error"] is None
    assert [r["error"] for r in run["steps"]] == [None] * len(s.steps)
    assert len(run["steps"]) == len(s.steps)
