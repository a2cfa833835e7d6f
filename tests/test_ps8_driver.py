"""ps8 driver: the NVRAM card, its reference drivers, and how a student's driver class is graded.

The nbgrader round trip of ps8 (solutions full, release 0, plants strictly between) is in
tests/test_grading.py (test_round_trip_scores[ps8_driver], plants.ps8_plants).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vmlib import Kernel
from vmlib.drivers.nvram import Nvram, NvramMixed, NvramPfnmap, pattern
from vmlib.errors import BusError, KernelError
from vmlib.flags import PAGE_SIZE
from vmlib.grading import ps8, sandbox, sim
from vmlib.grading.runner import run_clean

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
import plants

REFERENCES = tuple(ps8.CLASSES.values())


def _grade(suite: str, cell: str, name: str, **params) -> dict:
    [v] = run_clean([{"suite": suite, "params": params, "cells": [cell], "bind": {name: {"name": name}}}],
                    trusted=True)   # sandboxed where bwrap runs (CI), a plain process elsewhere
    return v


# ---- the card and the reference drivers on a real kernel ------------------------------------------

def test_card_layout_is_scattered_and_holds_its_patterns():
    k = Kernel("2.6.26", "x86", ram_pages=32)
    nv = Nvram.attach(k, "DDC.D")
    dev = [nv.pfn(i) for i in range(nv.nblocks) if nv.where(i) == "device"]
    assert dev != sorted(dev) or dev != list(range(dev[0], dev[0] + len(dev)))
    assert nv.where(3) is None and nv.pfn(3) is None and nv.where(99) is None
    assert not k.pfn_valid(nv.pfn(0)) and k.pfn_valid(nv.pfn(2))
    assert k.page_count(k.pfn_to_page(nv.pfn(2))) == 1
    assert k.phys.read_frame(nv.pfn(1), 0, 4) == pattern(1)[:4]
    k.check()


def test_card_rejects_bad_layouts_and_leaves_the_kernel_as_it_was():
    k = Kernel("2.6.26", "x86", ram_pages=32)
    before = k.nr_free_pages(), list(k.phys.devices)
    for bad in ("", "DX", 3):
        with pytest.raises(ValueError, match="layout is a string of D, C and ."):
            Nvram.attach(k, bad)
    assert (k.nr_free_pages(), list(k.phys.devices)) == before
    with pytest.raises(ValueError, match="a block is None"):
        Nvram([("ram", 3)])


@pytest.mark.parametrize("profile", ["2.6.26/x86", "2.6.27/x86", "2.6.27/powerpc", "6.12/x86"])
def test_reference_drivers_on_a_real_kernel(profile):
    """Follows drivers/char/mspec.c:mspec_mmap @ v2.6.26 (a PFNMAP filled on demand refuses a private
    mapping, kernel-facts §14c rows 1 and 4, because mm/memory.c:vm_insert_pfn @ v2.6.26 BUGs on a COW
    PFNMAP, §5a row 2); mm/memory.c:vm_insert_mixed @ v2.6.26 and do_wp_page (a private MIXEDMAP
    COWs, §6a row 10); arch/x86/mm/fault.c:do_page_fault @ v2.6.26 (VM_FAULT_SIGBUS → SIGBUS for
    holes, §6a row 11); the same on 2.6.27 and 6.12 (vmf_insert_*, §5b rows 1-2)."""
    version, arch = profile.split("/")
    k = Kernel(version, arch, ram_pages=64)
    nv = Nvram.attach(k, "DC.D")
    pf, mx = k.open(NvramPfnmap(nv)), k.open(NvramMixed(nv))
    p = k.spawn("p")
    with pytest.raises(KernelError) as e:
        p.mmap(4 * PAGE_SIZE, "rw", "private", file=pf)
    assert e.value.errno == 22
    a = p.mmap(4 * PAGE_SIZE, "rw", "shared", file=pf)
    b = p.mmap(4 * PAGE_SIZE, "rw", "private", file=mx)
    assert p.read(a, 2) == pattern(0)[:2] and p.read(b + PAGE_SIZE, 2) == pattern(1)[:2]
    c = p.fork("c")
    c.write(b + PAGE_SIZE, b"c")
    c.write(a + 3 * PAGE_SIZE, b"s")
    assert p.read(b + PAGE_SIZE, 2) == pattern(1)[:2] and c.read(b + PAGE_SIZE, 2) == b"c" + pattern(1)[1:2]
    assert p.read(a + 3 * PAGE_SIZE, 1) == b"s"
    for addr in (a + 2 * PAGE_SIZE, b + 2 * PAGE_SIZE):
        with pytest.raises(BusError):
            p.read(addr, 1)
    c.exit()
    p.exit()
    k.check()


def test_reference_drivers_agree_with_the_card_model_on_many_seeds():
    """The model and the reference must agree: no WrongBytes, no broken invariant, no BUG in a reference run."""
    for suite, make, fn in (("ps8.pfnmap", ps8.pfnmap_scenarios, "NvramPfnmap"),
                            ("ps8.mixedmap", ps8.mixed_scenarios, "NvramMixed")):
        scenarios = make({}) + [sc for seed in range(1, 6) for sc in make({"cases": "hidden", "seed": seed})]
        for sc in scenarios:
            w = sim.play(sc, (fn,), None, {})
            bad = [(t, o) for t, o, _ in w.steps if any(b in o for b in ps8.BROKEN) or o.startswith("stopped")]
            assert not bad, (suite, sc.name, bad[0])
            reads = [o for t, o, _ in w.steps if ": read " in t]
            mapped = w.steps[0][1].startswith("returned 0x")
            assert mapped == (fn == "NvramMixed" or "shared" in w.steps[0][0]), (sc.name, w.steps[0])
            assert any(o.startswith("returned '") for o in reads) == mapped, sc.name
            assert any(o.startswith("BusError") for o in reads) == mapped, sc.name      # every card has a hole


# ---- grading a student's class ---------------------------------------------------------------

def test_solutions_pass_visible_and_hidden_seeds():
    answers = plants.answers("ps8_driver")
    for suite, cell, name in (("ps8.pfnmap", "pfnmap_driver", "NvramPfnmap"),
                              ("ps8.mixedmap", "mixed_driver", "NvramMixed")):
        for params in ({}, {"cases": "hidden", "seed": 7}):
            v = _grade(suite, answers[cell], name, **params)
            assert v["passed"], v["text"]


def _plant(student: str) -> str:
    """The driver cell the planted submission `student` hands in (tests/fixtures/submissions/plants.py)."""
    nb = next(p for p in plants.ps8_plants() if p.student == student).build()
    cell = "pfnmap_driver" if "pfnmap" in student else "mixed_driver"
    return plants.src(plants.cell(nb, cell))


def test_feedback_of_a_wrong_driver_names_scenario_step_and_invariant():
    v = _grade("ps8.mixedmap", _plant("w_leak"), "NvramMixed")
    assert not v["passed"] and v["failed"] == v["cases"] == 7
    assert v["first"].startswith("scenario 'private mapping, fork, child writes' (2.6.26/x86) step 3 "
                                 "(parent: read 0x40001000): returned '4231'; then k.check() fails: page ")
    assert "a reference was leaked (with a right driver: returned '4231')" in v["first"]
    assert "your NvramMixed.fault(pgoff 1, read) called get_page(1), vm_insert_mixed(0x40001000, 1)" in v["first"]
    v = _grade("ps8.pfnmap", _plant("w_pfnmap_private"), "NvramPfnmap")
    assert 0 < v["failed"] < v["cases"]
    assert ("step 1 (parent: mmap private, 5 pages at 0x40000000): returned 0x40000000 (with a right driver: "
            "KernelError: mmap: nvram->mmap refused the mapping (-EINVAL))") in v["first"]
    assert "then step 2 (parent: read 0x40000000): KernelBug: vm_insert_pfn: BUG_ON: VM_PFNMAP vma is a COW" in v["first"]
    v = _grade("ps8.mixedmap", _plant("w_mixed_vmf_page"), "NvramMixed")
    assert "BadPageMap: pfn_to_page: pfn 65538 has no struct page" in v["first"]
    v = _grade("ps8.mixedmap", _plant("w_zero_holes"), "NvramMixed")
    assert "WrongBytes: read 0000 at page 2, a hole of the card" in v["first"]
    assert "(with a right driver: BusError:" in v["first"]


def test_both_designs_are_right():
    """Eager (remap_pfn_range at mmap time) and vmf.page for cache blocks: ptes differ, outcomes do not."""
    for suite, cell, name in (("ps8.pfnmap", _plant("a_eager_pfnmap"), "NvramPfnmap"),
                              ("ps8.mixedmap", _plant("a_cache_as_vmf_page"), "NvramMixed")):
        for params in ({}, {"cases": "hidden", "seed": 8}):
            v = _grade(suite, cell, name, **params)
            assert v["passed"], v["text"]


def test_calling_the_reference_driver_does_not_count():
    cell = ("from vmlib.drivers.nvram import NvramMixed as Ref\n\n"
            "class NvramMixed(Driver):\n    def __init__(self, nv):\n        self.ref = Ref(nv)\n\n"
            "    def mmap(self, k, vma):\n        return self.ref.mmap(k, vma)\n\n"
            "    def fault(self, k, vma, vmf):\n        return self.ref.fault(k, vma, vmf)\n")
    v = _grade("ps8.mixedmap", cell, "NvramMixed")
    assert v["failed"] == v["cases"]
    assert "called vmlib.drivers.nvram.NvramMixed, the reference you are asked to write" in v["first"]


def test_a_driver_that_raises_or_returns_nonsense_fails_its_scenarios_only():
    bad = ("class NvramMixed(Driver):\n    def __init__(self, nv):\n        self.nv = nv\n\n"
           "    def mmap(self, k, vma):\n        vma.vm_flags |= VM_MIXEDMAP\n        return 0\n\n"
           "    def fault(self, k, vma, vmf):\n        return 'NOPAGE'\n")
    v = _grade("ps8.mixedmap", bad, "NvramMixed")
    assert v["failed"] == v["cases"] and "must return VM_FAULT_* bits (an int), got 'NOPAGE'" in v["first"]


def test_forged_answers_are_failures():
    good = {"actions": [["vm_insert_pfn", 0x40000000, 65536]], "ret": 0x100, "page": None, "raised": None,
            "fault": True}
    assert sim.driver_answer_ok(good)
    for forged in ({**good, "actions": [["os.system", 1]]}, {**good, "actions": [["vm_insert_pfn", "x", 1]]},
                   {**good, "ret": 1 << 70}, {**good, "extra": 1}, {**good, "actions": [["get_page", 1, 2]]},
                   {**good, "raised": 3}, [good]):
        assert not sim.driver_answer_ok(forged), forged
        assert sim._event_answer("NvramMixed", {"i": 0, "result": forged}, "ok") == {
            "failed": "sent an answer of the wrong form"}


def test_replay_ends_a_call_at_a_failing_kernel_call():
    """A recorded call that fails on the real kernel ends the fault (SIGBUS) or mmap (its errno)."""
    k = Kernel("2.6.26", "x86", ram_pages=32)
    nv = Nvram.attach(k, "D")
    p = k.spawn("p")
    f = k.open(NvramMixed(nv))
    a = p.mmap(PAGE_SIZE, "r", "shared", file=f)
    vma = p.find_vma(a)
    outside = {"actions": [["vm_insert_mixed", a + PAGE_SIZE, nv.pfn(0)], ["vm_insert_mixed", a, nv.pfn(0)]],
               "ret": 0x100, "page": None, "raised": None, "fault": True}
    vmf = type("Vmf", (), {"address": a, "pgoff": 0, "write": False, "page": None})()
    assert ps8.replay(k, vma, vmf, outside) == ps8.VM_FAULT_SIGBUS
    assert p.follow_pte(a) is None
    assert ps8.replay(k, vma, None, {**outside, "ret": 0}) == -14


def test_stripped_vmlib_has_only_stubs_of_the_reference_drivers():
    lib = sandbox.student_lib(REFERENCES)
    text = (lib / "vmlib" / "drivers" / "nvram.py").read_text()
    assert "class NvramMixed" not in text and "class NvramPfnmap" not in text
    assert "def NvramMixed(*args, **kwargs)" in text and "not_provided('vmlib.drivers.nvram.NvramMixed')" in text
    assert "class Nvram:" in text and "vm_insert_mixed(vma" not in text


def test_notebook_setup_gives_what_the_grader_gives():
    nb = plants.load(ROOT / "solutions" / "ps8_driver" / "ps8_driver.ipynb")
    assert plants.src(plants.cell(nb, "setup")).startswith(ps8.PRELUDE)
    design = plants.cell(nb, "design")
    assert design["cell_type"] == "markdown" and design["metadata"]["nbgrader"]["points"] > 0


# ---- issue 20: the holes a wrong driver slipped through --------------------------------------------

HOLES = [
    # VM_RESERVED on every version: 0x80000 is VM_LOCKONFAULT in v6.12 (include/linux/mm.h @ v6.12:305;
    # VM_RESERVED 0x00080000 in include/linux/mm.h @ v2.6.26:101)
    ("ps8.pfnmap", "NvramPfnmap", plants.pfnmap_reserved_612, 2608),
    ("ps8.mixedmap", "NvramMixed", plants.mixed_ignores_pgoff, 2627),
    ("ps8.pfnmap", "NvramPfnmap", lambda: plants.whole_card_on_first_fault("pfnmap_driver"), 2608),
    ("ps8.mixedmap", "NvramMixed", lambda: plants.whole_card_on_first_fault("mixed_driver"), 2627),
]


@pytest.mark.parametrize("suite, name, source, seed", HOLES, ids=[f"{s}-{i}" for i, (s, *_) in enumerate(HOLES)])
def test_wrong_drivers_that_used_to_pass_fail_visible_and_hidden_scenarios(suite, name, source, seed):
    for params in ({}, {"cases": "hidden", "seed": seed}):
        v = _grade(suite, source(), name, **params)
        assert not v["passed"], (params, v["text"])


def test_vm_reserved_on_612_shows_as_lock_on_fault_in_smaps():
    """fs/proc/task_mmu.c:show_smap_vma_flags @ v6.12 prints VM_LOCKONFAULT (0x80000) as 'lf'; v2.6.26's
    VM_RESERVED had that value (kernel-facts §3a row 20, §3b row 2)."""
    from vmlib.flags import VM_IO, VM_PFNMAP, VM_READ, VM_RESERVED, VM_SHARED
    assert VM_RESERVED == 0x80000 and (0x80000, "lf") in ps8.SMAPS_612
    k = Kernel("6.12", "x86", ram_pages=16)
    p = k.spawn("parent")
    f = k.open(NvramPfnmap(Nvram.attach(k, "DC.")), "rw")
    p.mmap(3 * PAGE_SIZE, "rw", "shared", file=f, addr=ps8.BASE)
    vma = p.find_vma(ps8.BASE)
    assert vma.vm_flags & (VM_READ | VM_SHARED | VM_PFNMAP | VM_IO) and "lf" not in ps8.vmflags_612(p).split()
    vma.vm_flags |= VM_RESERVED
    assert "lf" in ps8.vmflags_612(p).split()


def test_hidden_scenarios_fault_after_munmap_splits():
    """Every hidden seed has faults in a vma a munmap left starting past block 0 (vm_pgoff > 0), before
    and after fork, so a driver that ignores vm_pgoff cannot keep its hidden points."""
    for make, fn in ((ps8.pfnmap_scenarios, "NvramPfnmap"), (ps8.mixed_scenarios, "NvramMixed")):
        for seed in range(10):
            calls = [c for sc in make({"cases": "hidden", "seed": seed})
                     for c in sim.play(sc, (fn,), None, {}).calls]
            split = [c for c in calls if c["q"]["op"] == "fault" and c["q"]["vma"]["vm_pgoff"] > 0]
            assert split, (fn, seed)


def test_grading_code_has_one_shape():
    """Issue 20 item 7: ps8's drivers plug into sim through their scenarios' asker (ps8.Drivers), not
    through special cases in sim; a verdict counts its own unit instead of having its text patched;
    runner and sim do not import each other."""
    import inspect

    source = inspect.getsource(sim)
    assert "DRIVER_REFS" not in source and ".replace(\" cases" not in source
    assert "vmlib.grading.runner" not in source
    assert all(sc.asker is ps8.DRIVERS for sc in ps8.pfnmap_scenarios({}))
    from vmlib.grading import ps2
    assert all(sc.asker is sim.DECISIONS for sc in ps2.normal_page_scenarios({}))
    quiet = sim.Decisions(cite_rows=False)              # a suite whose feedback must name no row (ps9)
    sc = sim.scenario("shared framebuffer", "2.6.25/x86", "fb-ram", 2, "shared",
                      [("parent", "read", 0), ("parent", "fork", "child")],
                      asker=quiet)
    ref = sim.play(sc, ("vm_normal_page",), None, {})
    got = sim.play(sc, ("vm_normal_page",), {sim.key_of(c["q"]): {"page": c["q"]["pte"]["pfn"]} for c in ref.calls}, {})
    assert sc.asker.judge(sc, ref, got) and "kernel-facts" not in sc.asker.judge(sc, ref, got)
    assert "kernel-facts §1a" in sim.DECISIONS.judge(sc, ref, got)
    v = _grade("ps8.pfnmap", plants.answers("ps8_driver")["pfnmap_driver"], "NvramPfnmap")
    assert v["text"].startswith("ps8.pfnmap: 6 of 6 scenarios agree with the kernel"), v["text"]
    from vmlib.grading import runner, verdicts
    assert runner.verdict is verdicts.verdict and "import" not in inspect.getsource(verdicts).split("suites import")[1]
