"""The instructor's reports: similarity of answer cells (tools/nbgrader/similarity.py) and where a class
first diverges (tools/nbgrader/misconceptions.py). The whole-class runs are in test_grading.py."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "fixtures" / "submissions"), str(ROOT / "tools" / "nbgrader")]

import misconceptions as mc
import plants
import similarity as sim

NAME = "ps2_pfnmap"
SOLUTION = plants.load(ROOT / "solutions" / NAME / f"{NAME}.ipynb")
RELEASE = plants.load(ROOT / "exercises" / NAME / f"{NAME}.ipynb")

DISGUISED = '''
def vm_normal_page(kern, area, address, entry):
    """My own words about what this returns."""
    # check the remap first
    if area.vm_flags & VM_PFNMAP:
        if entry.pfn == area.linear_pgoff(address):   # the linear rule
            return None
        if not is_cow_mapping(area.vm_flags):
            return None
    return kern.pfn_to_page(entry.pfn)
'''

OWN_WAY = '''
def vm_normal_page(k, vma, addr, pte):
    """Written from the lesson."""
    pfnmap = bool(vma.vm_flags & VM_PFNMAP)
    linear = vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT)
    raw = pfnmap and (pte.pfn == linear or not is_cow_mapping(vma.vm_flags))
    page = None if raw else k.pfn_to_page(pte.pfn)
    return page
'''


def _rows(**subs):
    return sim.compare({who: plants.filled(NAME, normal_page=src) for who, src in subs.items()}, SOLUTION, RELEASE)


def _pair(rows, a, b, cell="normal_page"):
    return next(r for r in rows if r["grade_id"] == cell and {r["a"], r["b"]} == {a, b})


def test_renamed_reformatted_copy_of_the_reference_is_flagged():
    rows = _rows(copycat=DISGUISED, honest=OWN_WAY)
    assert _pair(rows, "copycat", "reference")["similarity"] == 1.0
    assert _pair(rows, "copycat", "reference")["flagged"]
    assert not _pair(rows, "honest", "reference")["flagged"]
    assert _pair(rows, "honest", "reference")["similarity"] < 0.5
    assert not _pair(rows, "honest", "copycat")["flagged"]


def test_two_students_sharing_an_answer_are_flagged_whatever_their_names():
    rows = _rows(alice=OWN_WAY, bob=OWN_WAY.replace("pfnmap", "is_remap").replace("linear", "expected"))
    assert _pair(rows, "alice", "bob")["flagged"]


def test_the_starter_code_alone_makes_nobody_alike():
    rows = sim.compare({"s1": copy.deepcopy(RELEASE), "s2": copy.deepcopy(RELEASE)}, SOLUTION, RELEASE)
    assert rows == [], "an untouched release cell has nothing of the student's: it is not compared"


def test_code_that_does_not_parse_is_still_compared_and_the_page_escapes_it(tmp_path):
    broken = DISGUISED + "\n    if <script>alert(1)</script>\n"
    subs = {"x": plants.filled(NAME, normal_page=broken), "y": plants.filled(NAME, normal_page=broken)}
    for who, nb in subs.items():
        path = tmp_path / "subs" / who / NAME / f"{NAME}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(__import__("json").dumps(nb))
    link = tmp_path / "subs" / "z" / NAME
    link.parent.mkdir()
    link.symlink_to(tmp_path / "subs" / "x" / NAME)
    _, page, rows = sim.report(tmp_path / "subs", NAME, SOLUTION, RELEASE, tmp_path / "out")
    assert _pair(rows, "x", "y")["similarity"] == 1.0
    assert "z" not in {r["a"] for r in rows} | {r["b"] for r in rows}, "a linked submission is not read"
    text = page.read_text()
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)" in text


VERDICT = ("ps2.vm_normal_page: 6 of 8 scenarios agree with the kernel\n"
           "  first divergence: scenario 'shared framebuffer on RAM: touch, fork, child exits' (2.6.25/x86) "
           "step 4 (parent: fork → child): for a pte (pfn 2, RAM; bits P|W|U|A) ..., your vm_normal_page "
           "returned page 2; the kernel returns NULL (special) (kernel-facts §1a row 4); consequence: step 4 "
           "(parent: fork → child): ok; then k.check() fails: ...\n")


def _autograded(text: str, grade_id: str = "test_normal_page_visible") -> dict:
    return {"cells": [{"cell_type": "code", "metadata": {"nbgrader": {"grade": True, "grade_id": grade_id}},
                       "outputs": [{"output_type": "stream", "name": "stdout", "text": text},
                                   {"output_type": "error", "ename": "WrongAnswer", "evalue": "x", "traceback": []}]}]}


def test_first_divergence_is_read_with_its_row_scenario_and_step():
    (d,) = mc.divergences(_autograded(VERDICT))
    assert d["row"] == "§1a row 4" and d["suite"] == "ps2.vm_normal_page"
    assert d["scenario"] == "shared framebuffer on RAM: touch, fork, child exits" and d["profile"] == "2.6.25/x86"
    assert d["step"] == "step 4 (parent: fork → child)"
    versioned = VERDICT.replace("§1a row 4", "§6b v2.6.26 row 3")
    assert mc.divergences(_autograded(versioned))[0]["row"] == "§6b row 3"


def test_shares_count_each_student_once_and_rows_link_into_the_sheet():
    timeout = VERDICT.split("first divergence")[0] + "  first divergence: scenario 'x' (6.12/x86) step 1 (a): " \
        "your vm_normal_page did not finish in time (an endless loop?); the kernel returns page 5\n"
    records = {"a": mc.divergences(_autograded(VERDICT)) * 2, "b": mc.divergences(_autograded(VERDICT)),
               "c": [], "d": mc.divergences(_autograded(timeout.replace("; the kernel returns page 5", "")))}
    counted = mc.count(records)
    assert counted[0]["place"] == "§1a row 4" and counted[0]["students"] == 2
    assert abs(counted[0]["share"] - 2 / 3) < 1e-9, "a share of the students with a failing check"
    assert counted[1]["place"] == "ps2.vm_normal_page: ran out of time (no row)"
    assert mc.row_link("§1a row 4").endswith("#s1a-row-4")
    assert "VM_PFNMAP" in mc.rows_of_sheet()["§1a row 4"]


def test_a_failing_remap_check_is_counted_at_the_row_that_decides():
    """The reference remap_pfn_range_check cites the row that decides (mm/memory.c:remap_pfn_range
    @ v2.6.26: a COW vma must be remapped whole, §4 row 1; any part of another vma may be, §4 row 2),
    so a wrong check's first divergence names it and the report counts it there, not under
    "answered otherwise"."""
    from test_assignment_coverage import grade_here
    only_whole = ("def remap_pfn_range_check(k, vma, addr, end):\n"
                  "    return 0 if (addr, end) == (vma.vm_start, vma.vm_end) else -errno.EINVAL\n")
    never = "def remap_pfn_range_check(k, vma, addr, end):\n    return 0\n"
    for source, row in ((only_whole, "§4 row 2"), (never, "§4 row 1")):
        v = grade_here("ps2.remap_pfn_range_check", source)
        (d,) = mc.divergences(_autograded(v["text"], "test_remap_pfn_range_check_visible"))
        assert d["row"] == row and d["suite"] == "ps2.remap_pfn_range_check", v["text"]
        assert mc.count({"s": [d]})[0]["place"] == row
