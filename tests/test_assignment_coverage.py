"""ps1-ps5: the visible checks reach every decision row the hidden ones reach (issue 12).

A student learns from a failing visible check; the hidden seeded scenarios only add variety. So for
each simulator-graded suite, the set of decision rows its hidden scenarios (seeds 0-9 and the seed
the notebook uses) reach must be a subset of the rows its visible scenarios reach.

A "row" is the kernel-facts row the reference recorded for the question (sim.World.calls, see
sim.ask_reference) together with the facts about the question a decision can turn on (the vma
is COW or not, VM_SHARED, VM_WRITE, VM_MAYSHARE; the pfn is RAM, the zero page or has no struct
page; the pte is special, linear, writable; the page is anonymous, exclusive, its counts are 1).
insert_mixed_decision and gup_fast_pte_ok record no row of their own, so for them the facts alone tell
the rows apart; so do they for remap_pfn_range_check (which records §4 row 1 or row 2).

Then wrong answers that only the hidden scenarios (or none) used to catch must fail the visible check.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest

from vmlib.flags import (
    PAGE_SHIFT,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_SHARED,
    VM_WRITE,
    is_cow_mapping,
)
from vmlib.grading import sim
from vmlib.grading.notebook import checking_cells
from vmlib.grading.suites import get_suite
from vmlib.profiles import make_profile
from vmlib.pte import Pte

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
import plants

# suite -> (module, scenario function, overridden functions, notebook)
SUITES = {
    "ps2.vm_normal_page": ("ps2", "normal_page_scenarios", ("vm_normal_page",), "ps2_pfnmap"),
    "ps2.remap_pfn_range_check": ("ps2", "remap_scenarios", ("remap_pfn_range_check",), "ps2_pfnmap"),
    "ps3.vm_normal_page": ("ps3", "normal_page_scenarios", ("vm_normal_page",), "ps3_mixedmap"),
    "ps3.insert_mixed_decision": ("ps3", "insert_mixed_scenarios", ("insert_mixed_decision",), "ps3_mixedmap"),
    "ps4.do_wp_page_decision": ("ps4", "wp_scenarios", ("do_wp_page_decision",), "ps4_cow"),
    "ps4.do_wp_page_decision_612": ("ps4", "modern_scenarios", ("do_wp_page_decision",), "ps4_cow"),
    "ps5.vm_normal_page": ("ps5", "normal_page_scenarios", ("vm_normal_page",), "ps5_special"),
    "ps5.gup_fast_pte_ok": ("ps5", "gup_fast_scenarios", ("gup_fast_pte_ok",), "ps5_special"),
}


def _vma_facts(fl: int) -> tuple:
    return ("COW" if is_cow_mapping(fl) else "not COW", "VM_SHARED" if fl & VM_SHARED else "not VM_SHARED",
            "VM_WRITE" if fl & VM_WRITE else "not VM_WRITE")


def row_of(call: dict) -> tuple:
    """The decision row a recorded call reached, with the facts that tell rows apart (see the docstring)."""
    q = call["q"]
    fn, w = q["fn"], q["world"]

    def pfn_kind(pfn):
        return "zero page" if pfn == w["zero_pfn"] else "RAM" if 0 <= pfn < w["ram_pages"] else "no struct page"

    special_arch = "pte_special" if make_profile(w["version"], w["arch"]).HAVE_PTE_SPECIAL else "no pte_special"
    if fn == "vm_normal_page":
        v, pte = q["vma"], Pte(q["pte"]["pfn"], q["pte"]["bits"])
        fl = v["vm_flags"]
        linear = v["vm_pgoff"] + ((q["addr"] - v["vm_start"]) >> PAGE_SHIFT) == pte.pfn
        kind = "VM_MIXEDMAP" if fl & VM_MIXEDMAP else "VM_PFNMAP" if fl & VM_PFNMAP else "plain vma"
        return (call["row"], special_arch, kind, *_vma_facts(fl)[:2], pfn_kind(pte.pfn),
                "special pte" if pte.special else "normal pte", "linear" if linear else "not linear")
    if fn == "remap_pfn_range_check":
        v = q["vma"]
        return (fn, *_vma_facts(v["vm_flags"]), "from vm_start" if q["addr"] == v["vm_start"] else "not from vm_start",
                "to vm_end" if q["end"] == v["vm_end"] else "short of vm_end")
    if fn == "insert_mixed_decision":
        return (fn, special_arch, pfn_kind(q["pfn"]))
    if fn == "do_wp_page_decision":
        p, fl = q["page"], q["vma"]["vm_flags"]
        facts = (call["row"], *_vma_facts(fl), "VM_MAYSHARE" if fl & VM_MAYSHARE else "not VM_MAYSHARE")
        if p is None:
            return (*facts, "no page", pfn_kind(q["pte"]["pfn"]))
        return (*facts, "anon" if p["anon"] else "file", "exclusive" if p["exclusive"] else "not exclusive",
                "refcount 1" if p["count"] == 1 else "refcount > 1",
                "mapcount 1" if p["mapcount"] == 1 else "mapcount > 1")
    assert fn == "gup_fast_pte_ok", fn
    p = q["pte"]
    if p is None or not Pte(p["pfn"], p["bits"]).present:
        return (fn, "no pte")
    pte = Pte(p["pfn"], p["bits"])
    return (fn, "write" if q["write"] else "read", "writable pte" if pte.write else "read-only pte",
            "special pte" if pte.special else "normal pte", pfn_kind(pte.pfn))


def _scenarios(suite_id: str, params: dict) -> list:
    mod, make, _, _ = SUITES[suite_id]
    return getattr(importlib.import_module(f"vmlib.grading.{mod}"), make)(params)


def rows_reached(suite_id: str, params: dict) -> set:
    """The rows the reference reaches in the scenarios of `suite_id` with `params`."""
    fns = SUITES[suite_id][2]
    rows = set()
    for sc in _scenarios(suite_id, params):
        w = sim.play(sc, fns, None, {})
        broken = [s for s in w.steps if s[1].startswith(("not run", "stopped")) or sim.FAILED in s[1]]
        assert not broken, f"{sc.name}: does not run with the reference: {broken[0]}"
        rows |= {row_of(c) for c in w.calls}
    return rows


def _notebook_seeds(suite_id: str) -> set:
    name = SUITES[suite_id][3]
    nb = json.loads((ROOT / "solutions" / name / f"{name}.ipynb").read_text())
    return {c["params"]["seed"] for _, checks in checking_cells(nb) for c in checks
            if c["suite"] == suite_id and c["params"].get("cases") == "hidden"}


@pytest.mark.parametrize("suite_id", sorted(SUITES))
def test_visible_scenarios_reach_every_row_the_hidden_ones_reach(suite_id):
    seeds = set(range(10)) | _notebook_seeds(suite_id)
    assert len(seeds) == 11, f"{suite_id}: the notebook's hidden check has no seed of its own"
    visible = rows_reached(suite_id, {})
    hidden = set().union(*(rows_reached(suite_id, {"cases": "hidden", "seed": s}) for s in sorted(seeds)))
    missing = sorted(hidden - visible)
    assert not missing, f"{suite_id}: rows only hidden scenarios reach:\n" + "\n".join(map(str, missing))


# ps8: a driver's mmap and fault are asked about a profile family, a COW or shared vma, a vma that starts
# at block 0 or past it (after a munmap split), and a block on the device, in the RAM cache or a hole

def driver_row_of(call: dict) -> tuple:
    """The decision a driver question asks (see the comment above)."""
    q = call["q"]
    v = q["vma"]
    row = (q["fn"], q["op"], "6.12" if make_profile(q["world"]["version"], q["world"]["arch"]).MODERN else "2.6",
           "COW" if is_cow_mapping(v["vm_flags"]) else "not COW", "vm_pgoff 0" if v["vm_pgoff"] == 0 else "vm_pgoff > 0")
    if q["op"] == "mmap":
        return row
    pgoff = q["vmf"]["pgoff"]
    block = q["device"][pgoff] if pgoff < len(q["device"]) else None
    return (*row, "hole" if block is None else block[0])


@pytest.mark.parametrize("suite_id, fn", [("ps8.pfnmap", "NvramPfnmap"), ("ps8.mixedmap", "NvramMixed")])
def test_ps8_visible_scenarios_reach_every_driver_question_the_hidden_ones_ask(suite_id, fn):
    get_suite(suite_id)

    def rows(params):
        return {driver_row_of(c) for sc in sim.SCENARIOS[suite_id](params) for c in sim.play(sc, (fn,), None, {}).calls}
    visible = rows({})
    hidden = set().union(*(rows({"cases": "hidden", "seed": s}) for s in [*range(10), 2608, 2627]))
    assert not sorted(hidden - visible), f"{suite_id}: questions only hidden scenarios ask: {sorted(hidden - visible)}"
    assert (fn, "fault", "2.6", "not COW", "vm_pgoff > 0", "device") in visible


# The ones the issue names (§ refs: docs/kernel-facts.md): the visible scenarios must reach them.
NAMED_ROWS = {
    # a shared mapping of a file opened read-only: VM_MAYSHARE kept, VM_SHARED and VM_MAYWRITE cleared
    "ps2.remap_pfn_range_check": [("remap_pfn_range_check", "not COW", "not VM_SHARED", "not VM_WRITE",
                                   "not from vm_start", "short of vm_end"),
                                  # a private read-only mapping: VM_MAYWRITE without VM_WRITE, still COW
                                  ("remap_pfn_range_check", "COW", "not VM_SHARED", "not VM_WRITE",
                                   "not from vm_start", "short of vm_end"),
                                  # the end check: a COW remap from vm_start that stops short of vm_end
                                  ("remap_pfn_range_check", "COW", "not VM_SHARED", "VM_WRITE",
                                   "from vm_start", "short of vm_end")],
    # a driver's partial remap of a shared mapping of a file opened 'r': raw pfns off the linear position
    # in a vma that is neither COW nor VM_SHARED (VM_MAYSHARE only)
    "ps2.vm_normal_page": [("§1a row 4", "no pte_special", "VM_PFNMAP", "not COW", "not VM_SHARED", "no struct page",
                            "normal pte", "not linear")],
    "ps3.insert_mixed_decision": [("insert_mixed_decision", "pte_special", "RAM"),
                                  ("insert_mixed_decision", "no pte_special", "RAM"),
                                  ("insert_mixed_decision", "pte_special", "no struct page"),
                                  ("insert_mixed_decision", "no pte_special", "no struct page")],
    "ps4.do_wp_page_decision_612": [("§6b 6.12", "COW", "not VM_SHARED", "VM_WRITE", "not VM_MAYSHARE", "no page",
                                     "zero page"),
                                    ("§6b 6.12", "COW", "not VM_SHARED", "VM_WRITE", "not VM_MAYSHARE", "anon",
                                     "not exclusive", "refcount > 1", "mapcount 1")],
}


@pytest.mark.parametrize("suite_id", sorted(NAMED_ROWS))
def test_visible_scenarios_reach_the_rows_the_issue_names(suite_id):
    visible = rows_reached(suite_id, {})
    assert [r for r in NAMED_ROWS[suite_id] if r not in visible] == []


# ---- wrong answers the visible checks must now catch ----------------------------------------------

def grade_here(suite_id: str, source: str, params: dict | None = None) -> dict:
    """The verdict of `source` (trusted test code, run in this process) on suite_id's scenarios."""
    suite = get_suite(suite_id)
    ns: dict = {}
    exec(suite.prelude + source, ns)  # noqa: S102 - the test's own fixed sources
    bound = {fn: ns[fn if fn in ns else next(n for n in ns if n.startswith(fn))] for fn in suite.names}

    def ask(cases):
        events = [{"setup": {"errors": [], "missing": {}}}]
        for i, case in enumerate(cases):
            try:
                events.append({"i": i, "result": sim.call_student(bound, case)})
            except Exception as e:  # noqa: BLE001 - the answer is then the failure
                events.append({"i": i, "raised": f"{type(e).__name__}: {e}"})
        return events, "ok"

    return suite.grade(suite, params or {}, ask)


WRONG = [
    # ps2(b) testing VM_SHARED instead of is_cow_mapping: counts raw pfns of a shared mapping of a file
    # opened 'r' (VM_MAYSHARE only) that a driver remapped in part
    ("ps2.vm_normal_page", plants.np_vm_shared()),
    # ps2(a) refusing a COW remap only when it does not start at vm_start: never checks the end
    ("ps2.remap_pfn_range_check", plants.remap_no_end()),
    # testing VM_SHARED instead of is_cow_mapping: refuses a partial remap of a read-only shared file
    ("ps2.remap_pfn_range_check", plants.REMAP_VM_SHARED),
    # "COW means writable and private": lets a private read-only vma be remapped in part
    ("ps2.remap_pfn_range_check", """
def remap_pfn_range_check(k, vma, addr, end):
    cow = vma.vm_flags & VM_WRITE and not vma.vm_flags & VM_SHARED
    if cow and (addr != vma.vm_start or end != vma.vm_end):
        return -errno.EINVAL
    return 0
"""),
    # the linear rule without the not-COW rule, on 2.6.26 (the old visible ps3 scenarios had no framebuffer)
    ("ps3.vm_normal_page", """
def vm_normal_page(k, vma, addr, pte):
    if vma.vm_flags & VM_MIXEDMAP:
        return k.pfn_to_page(pte.pfn) if k.pfn_valid(pte.pfn) else None
    if vma.vm_flags & VM_PFNMAP and pte.pfn == vma.linear_pgoff(addr):
        return None
    return k.pfn_to_page(pte.pfn)
"""),
    # a file page is always copied (the old visible ps4 scenarios never wrote to a shared file page)
    ("ps4.do_wp_page_decision", plants.WP_FILE_COPY),
    # 6.12: a write to the zero page "reuses" it (the old visible scenarios never read anonymous memory first)
    ("ps4.do_wp_page_decision_612", """
def do_wp_page_decision_612(k, vma, page, pte):
    if vma.vm_flags & (VM_SHARED | VM_MAYSHARE) or (page is None and k.is_zero_pfn(pte.pfn)):
        return "reuse"
    if page is None:
        return "copy"
    if page.anon and (page.exclusive or k.page_count(page) == 1):
        return "reuse"
    return "copy"
"""),
    # 6.12: a shared file page is copied (the old visible scenarios had no shared file page)
    ("ps4.do_wp_page_decision_612", """
def do_wp_page_decision_612(k, vma, page, pte):
    if page is None:
        return "reuse" if vma.vm_flags & (VM_SHARED | VM_MAYSHARE) else "copy"
    if page.anon and (page.exclusive or k.page_count(page) == 1):
        return "reuse"
    return "copy"
"""),
    # pte_special only for PFNMAP: a shared XIP file's special RAM ptes get refcounted
    ("ps5.vm_normal_page", """
def vm_normal_page(k, vma, addr, pte):
    if pte.special and not (vma.vm_flags & VM_MIXEDMAP and vma.vm_flags & VM_SHARED):
        return None
    return k.pfn_to_page(pte.pfn)
"""),
    # a read may take any present pte: "special only matters for writes"
    ("ps5.gup_fast_pte_ok", """
def gup_fast_pte_ok(k, pte, write):
    if pte is None or not pte.present:
        return False
    return not write or (pte.write and not pte.special)
"""),
]


@pytest.mark.parametrize("suite_id, source", WRONG, ids=[f"{s}-{i}" for i, (s, _) in enumerate(WRONG)])
def test_wrong_answers_fail_the_visible_check(suite_id, source):
    v = grade_here(suite_id, source)
    assert not v["passed"], f"{suite_id}: the visible check passes a wrong answer:\n{v['text']}"
    assert v["failed"] < v["cases"], "every scenario fails: the wrong answer is not a near miss"


def test_questions_left_unasked_after_the_last_round_are_not_passed(monkeypatch):
    """sim.grade: a run whose later questions the kernel answered itself (the rounds ran out) was not
    checked there, so its scenario must not count as agreeing. An eager PFNMAP driver needs a second
    round (its mmap changes the questions); with one round, the rest was never asked."""
    assert grade_here("ps8.pfnmap", plants.pfnmap_eager("ps8_driver"))["passed"]        # right, given its two rounds
    monkeypatch.setattr(sim, "MAX_ROUNDS", 1)
    v = grade_here("ps8.pfnmap", plants.pfnmap_eager("ps8_driver"))
    assert not v["passed"] and "was not checked to the end" in v["first"], v["text"]


@pytest.mark.parametrize("suite_id", sorted(SUITES))
def test_the_reference_passes_here(suite_id):
    """grade_here is a fair judge: the solution notebook's answer passes the visible scenarios."""
    name = SUITES[suite_id][3]
    fn = get_suite(suite_id).names[0]
    sources = [s for s in plants.answers(name).values() if f"def {fn}" in s or f"def {fn}_612" in s]
    source = next(s for s in sources if ("_612" in suite_id) == ("_612(" in s))
    assert grade_here(suite_id, source)["passed"]



def test_a_scenario_that_asks_nothing_is_not_counted_as_agreeing():
    """sim.grade: a hidden scenario that never reaches the decision runs the same whatever the answers,
    so it is left out of "N of M scenarios agree" instead of counting as checked."""
    params = {"cases": "hidden", "seed": 0}
    get_suite("ps3.insert_mixed_decision")                     # registers its scenarios
    scenarios = sim.SCENARIOS["ps3.insert_mixed_decision"](params)
    asking = [sc for sc in scenarios if sim.play(sc, ("insert_mixed_decision",), None, {}).calls]
    assert 0 < len(asking) < len(scenarios), "this seed no longer has a scenario that asks nothing"
    [source] = [s for s in plants.answers("ps3_mixedmap").values() if "def insert_mixed_decision" in s]
    v = grade_here("ps3.insert_mixed_decision", source, params)
    assert v["passed"] and v["cases"] == len(asking), v["text"]

# ---- the notebooks: hints collapsed, one run per part, no code in them ------------------------------

HINT_TITLE = re.compile(r"^\*\*Hint (\d+) of (\d+): (a nudge|a closer look|nearly the rule)\*\* \(open it only if you are stuck\)$")


@pytest.mark.parametrize("name", ["ps2_pfnmap", "ps3_mixedmap", "ps4_cow", "ps5_special"])
def test_every_part_has_collapsed_hints_that_hold_no_code(name):
    """Before each answer cell: a failing replay, then hints from a nudge to nearly the rule, collapsed
    (JupyterLab shows only a collapsed cell's first line, which therefore names the hint and no more)."""
    for folder in ("solutions", "exercises"):
        cells = json.loads((ROOT / folder / name / f"{name}.ipynb").read_text())["cells"]
        answers = [i for i, c in enumerate(cells) if c["metadata"].get("nbgrader", {}).get("solution")]
        assert len(answers) == 2
        start = 0
        for i in answers:
            part = cells[start:i]
            hints = [c for c in part if c["metadata"].get("jupyter", {}).get("source_hidden")]
            assert len(hints) >= 2, f"{folder}/{name}: fewer than two hints before cell {i}"
            assert any("replay(" in "".join(c["source"]) for c in part if c["cell_type"] == "code")
            for n, c in enumerate(hints, 1):
                text = "".join(c["source"])
                title = HINT_TITLE.match(text.splitlines()[0])
                assert c["cell_type"] == "markdown" and title and int(title[1]) == n, text[:80]
                assert int(title[2]) == len(hints)
                assert "```" not in text and "def " not in text and "return " not in text, text
            start = i + 1


# ---- vmlib.grading.tryout: the notebooks' workbench ------------------------------------------------

NAIVE = "def naive(k, vma, addr, pte):\n    return None if vma.vm_flags & VM_PFNMAP else k.pfn_to_page(pte.pfn)\n"


def test_replay_shows_steps_checks_and_questions_but_not_the_answers(capsys):
    from vmlib.grading.tryout import replay
    ns: dict = {}
    exec(get_suite("ps2.vm_normal_page").prelude + NAIVE, ns)  # noqa: S102 - the test's own source
    kept = dict(sim._REFERENCE_RUNS)
    steps = replay("ps2.vm_normal_page", 8, vm_normal_page=ns["naive"])
    out = capsys.readouterr().out
    assert out.startswith("scenario 8: private /dev/mem of kernel RAM")
    assert "your vm_normal_page was asked about a pte (pfn" in out and "it returned None" in out
    assert "then k.check() fails: process 2: anon_rss is 0 but 1 ptes map anon pages" in out
    assert "kernel returns" not in out and "kernel-facts" not in out
    assert "linear" not in out and "COW" not in out, "a label that restates the rule (issue 20)"
    assert "(vm_pgoff 0x" in out and "vm_flags VM_READ" in out          # the state the rule reads
    assert [s for s, _ in steps][:2] == ["parent: mmap devmem-ram private, 4 pages at 0x40000000",
                                         "parent: write 0x40001000"]
    assert sim._REFERENCE_RUNS == kept, "a replay must not touch the grader's reference runs"
    kernel = replay("ps2.vm_normal_page", 8)
    assert not any("k.check() fails" in outcome for _, outcome in kernel)


def test_replay_and_scenarios_print_once_in_a_notebook(capsys):
    """Their value is what they printed: IPython shows nothing more for it (issue 20)."""
    from IPython.core.formatters import DisplayFormatter

    from vmlib.grading.tryout import replay, scenarios
    names = scenarios("ps2.vm_normal_page")
    steps = replay("ps2.vm_normal_page", 1, show_changes=False)
    assert names[0].startswith("1. anonymous memory") and steps[0][0].startswith("parent: mmap anon")
    formatter = DisplayFormatter()
    assert formatter.format(names) == ({}, {}) and formatter.format(steps) == ({}, {})


def test_replay_plays_a_driver_class_and_shows_its_calls_not_the_reference_ones(capsys):
    """ps8's workbench: the student's class answers in the open; without it a right driver runs unseen."""
    from vmlib.grading.tryout import replay
    ns: dict = {}
    exec(get_suite("ps8.mixedmap").prelude + plants.mixed_ignores_pgoff(), ns)  # noqa: S102 - the test's own source
    steps = replay("ps8.mixedmap", 5, show_changes=False, NvramMixed=ns["NvramMixed"])
    out = capsys.readouterr().out
    assert "your NvramMixed.mmap called vma.vm_flags |= VM_MIXEDMAP, returned 0" in out
    assert "your NvramMixed.fault(pgoff 5, read) called vm_insert_mixed(0x40005000" in out
    assert any(outcome.startswith("WrongBytes") for _, outcome in steps)
    right = replay("ps8.mixedmap", 5, show_changes=False)
    out = capsys.readouterr().out
    assert "your " not in out and not any("WrongBytes" in outcome for _, outcome in right)
    with pytest.raises(ValueError, match="ps8.mixedmap plugs in NvramMixed, not NvramPfnmap"):
        replay("ps8.mixedmap", 1, NvramPfnmap=ns["NvramMixed"])


def test_replay_shows_what_a_function_raised(capsys):
    from vmlib.grading.tryout import replay
    steps = replay("ps5.gup_fast_pte_ok", 3, show_changes=False, gup_fast_pte_ok=lambda k, pte, write: 1 / 0)
    out = capsys.readouterr().out
    assert "it raised ZeroDivisionError: division by zero" in out
    assert any(outcome.startswith(sim.FAILED + "ZeroDivisionError") for _, outcome in steps)


@pytest.mark.parametrize("args, message", [
    (("ps9.nothing", 1), "unknown grading suite 'ps9.nothing'"),
    (("ps1.is_cow_mapping", 1), "'ps1.is_cow_mapping' is not graded by scenarios"),
    (("ps2.vm_normal_page", 0), "ps2.vm_normal_page has visible scenarios 1..9; got 0"),
    (("ps2.vm_normal_page", 10), "has visible scenarios 1..9; got 10"),
    (("ps2.vm_normal_page", "1"), "got '1'"),
])
def test_replay_refuses_bad_input_saying_what_to_do(args, message):
    from vmlib.grading.tryout import replay
    with pytest.raises(ValueError, match=re.escape(message)):
        replay(*args)


def test_replay_refuses_a_function_the_suite_does_not_plug_in():
    from vmlib.grading.tryout import replay
    with pytest.raises(ValueError, match="ps2.vm_normal_page plugs in vm_normal_page, not gup_fast_pte_ok"):
        replay("ps2.vm_normal_page", 1, gup_fast_pte_ok=lambda k, pte, write: True)


# ---- ps1: case suites, the same promise ---------------------------------------------------------

CASE_SUITES = ("ps1.memmap", "ps1.is_cow_mapping", "ps1.classify_mmap")


def _reasons(suite_id: str, params: dict) -> set[str]:
    """The kernel reasons (Case.why) and answer kinds the cases of a case-based suite turn on."""
    return {(c.fn, c.why, type(c.expected).__name__) for c in get_suite(suite_id).make_cases(params)}


@pytest.mark.parametrize("suite_id", CASE_SUITES)
def test_ps1_visible_cases_give_every_reason_the_hidden_ones_give(suite_id):
    """Every reason a hidden case is judged by (EACCES included) is one a visible case shows."""
    visible = _reasons(suite_id, {})
    hidden = set().union(*(_reasons(suite_id, {"cases": "hidden", "seed": s}) for s in range(10)))
    assert not hidden - visible, f"{suite_id}: reasons only hidden cases give: {sorted(hidden - visible)}"


def _never_refuses(share, fd, prot):
    """classify_mmap that maps a shared writable mapping of a read-only fd as if it were read-only."""
    from vmlib.grading.ps1 import classify_mmap
    answer = classify_mmap(share, fd, prot)
    return classify_mmap(share, fd, "r") if answer == "EACCES" else answer


PS1_WRONG = [
    # tests VM_MAYSHARE where the kernel tests VM_SHARED (only hidden random words caught it before)
    ("ps1.is_cow_mapping", "is_cow_mapping", lambda f: bool(f & VM_MAYWRITE) and not f & VM_MAYSHARE),
    # a driver's vma without VM_MAYWRITE: "private means COW"
    ("ps1.is_cow_mapping", "is_cow_mapping", lambda f: not f & VM_SHARED),
    # never refuses (only the hidden cases had the EACCES call before)
    ("ps1.classify_mmap", "classify_mmap", _never_refuses),
    # rounds the partial page down (only the hidden cases had one before)
    ("ps1.memmap", "memmap_bytes", lambda g, n, s=64, p=4096: g * (n // p) * s),
    # rounds the break-even point down (the visible sizes all divided the page before)
    ("ps1.memmap", "break_even_guests", lambda s, p=4096: p // s),
]


@pytest.mark.parametrize("suite_id, fn, wrong", PS1_WRONG, ids=[f"{s}-{i}" for i, (s, _, _) in enumerate(PS1_WRONG)])
def test_ps1_wrong_answers_fail_a_visible_case(suite_id, fn, wrong):
    from vmlib.grading.suites import as_json
    cases = [c for c in get_suite(suite_id).make_cases({}) if c.fn == fn]
    assert any(as_json(wrong(*c.args)) != c.expected for c in cases), f"{suite_id}: no visible case catches it"
