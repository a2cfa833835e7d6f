"""ps9 debug: each mutation breaks one kernel rule, visibly, and the grader draws it from nbgrader's student id."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest

from vmlib.grading import ps9, sim
from vmlib.grading.notebook import verify
from vmlib.grading.ps9_mutations import DECIDERS, REPORTERS, mutated, wrong_decisions
from vmlib.grading.suites import get_suite
from vmlib.kernel import Kernel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
import plants

SOLUTION = ROOT / "solutions" / "ps9_debug" / "ps9_debug.ipynb"

# mutation -> (the kernel function and version whose rule it breaks, the rows the hidden key accepts,
# what the scenario ends in). Each rule was read in that version's source (docs/kernel-facts.md cites it).
NP26, NP27, NP25, NP612 = ("mm/memory.c:vm_normal_page @ v2.6.26", "mm/memory.c:vm_normal_page @ v2.6.27",
                           "mm/memory.c:vm_normal_page @ v2.6.25", "mm/memory.c:vm_normal_page @ v6.12")
WP26 = "mm/memory.c:do_wp_page @ v2.6.26"
CHECK, BUG, BADMAP, BADSTATE, READ = "k.check() fails", "KernelBug", "BadPageMap", "BadPageState", "WRONG READ"
FOLLOWS = {
    "m1": (f"{NP26}: VM_MIXEDMAP and pfn_valid → the page", ["§1a row 2"], CHECK),
    "m2": (f"{NP25}: VM_PFNMAP, not linear, not a COW mapping → NULL", ["§1e row 2", "§1a row 4"], CHECK),
    "m3": (f"{NP25}: VM_PFNMAP and the linear rule → NULL", ["§1e row 1", "§1a row 3"], CHECK),
    "m4": (f"{NP27} (x86 has __HAVE_ARCH_PTE_SPECIAL): pte_special → NULL", ["§1b row 2"], CHECK),
    "m5": ("mm/memory.c:vm_insert_mixed @ v2.6.26: no pte special and pfn_valid → insert_page", ["§5a row 3"], CHECK),
    "m6": (f"{WP26}: an anon page is reused iff can_share_swap_page (mapcount 1)", ["§6b row 3"], READ),
    "m7": (f"{NP26}: VM_MIXEDMAP and !pfn_valid → NULL", ["§1a row 1"], BUG),
    "m8": (f"{NP26}: VM_PFNMAP, not linear, a COW mapping → on to the COWed page", ["§1a row 5"], CHECK),
    "m9": (f"{NP26} (s390 has __HAVE_ARCH_PTE_SPECIAL): not special → the page; vma flags not looked at",
           ["§1b row 1"], CHECK),
    "m10": (f"{NP26}: VM_PFNMAP, not linear, not a COW mapping → NULL", ["§1a row 4"], BADSTATE),
    "m11": (f"{NP27} (m68k has no pte special): VM_MIXEDMAP and pfn_valid → the page", ["§1a row 2"], CHECK),
    "m12": (f"{NP612} (m68k: no ARCH_HAS_PTE_SPECIAL): VM_MIXEDMAP, a valid pfn → the page", ["§1d row 3"], CHECK),
    "m13": (f"{NP612} (m68k): the zero pfn → NULL", ["§1d row 6"], BADSTATE),
    "m14": (f"{NP612} (x86 has ARCH_HAS_PTE_SPECIAL): a special pte of the zero pfn → NULL", ["§1c row 5"], BADSTATE),
    "m15": (f"{NP612} (x86): a special pte in a VM_PFNMAP/VM_MIXEDMAP vma → NULL", ["§1c row 4"], CHECK),
    "m16": (f"{NP612} (m68k): VM_PFNMAP and the linear rule → NULL", ["§1d row 4"], BADSTATE),
    "m17": (f"{NP612} (m68k): VM_PFNMAP, not a COW mapping → NULL", ["§1d row 5"], CHECK),
    "m18": ("mm/memory.c:__vm_insert_mixed @ v6.12 (m68k): no pte special and a valid pfn → insert_page",
            ["§5b row 2"], CHECK),
    "m19": ("mm/memory.c:vm_insert_mixed @ v2.6.26: a pfn that is not pfn_valid → insert_pfn", ["§5a row 3"], BADMAP),
    "m20": (f"{WP26}: no struct page in a private vma → copy (cow_user_page)", ["§6b row 2"], READ),
    "m21": ("mm/memory.c:wp_page_copy @ v6.12: no normal page in a private vma → copy", ["§6b row 12"], READ),
    "m22": (f"{WP26}: a file page in a private vma → copy", ["§6b row 5"], READ),
    "m23": (f"{WP26} (251b97f552): no struct page, VM_WRITE and VM_SHARED → reuse", ["§6b row 1"], READ),
    "m24": ("mm/memory.c:wp_pfn_shared @ v6.12: no struct page in a shared vma → made writable", ["§6b row 7"], READ),
    "m25": (f"{WP26}: a file page, VM_WRITE and VM_SHARED → reuse (page_mkwrite, dirty)", ["§6b row 4"], READ),
    "m26": ("mm/memory.c:wp_can_reuse_anon_folio @ v6.12: a not-exclusive anon folio is reused only at refcount 1",
            ["§6b row 10"], READ),
    "m27": ("arch/x86/mm/gup.c:gup_pte_range @ v2.6.27: a _PAGE_SPECIAL pte stops the lockless walk", ["§9b row 1"],
            BADMAP),
    "m28": ("mm/gup.c:gup_fast_pte_range @ v6.12: a pte_special pte stops the fast walk", ["§9b row 5"], BADMAP),
    "m29": ("mm/memory.c:remap_pfn_range @ v2.6.26: a COW vma remapped whole is accepted (vm_pgoff := pfn)",
            ["§4 row 1"], "refused the mapping"),
    "m30": ("mm/memory.c:remap_pfn_range_internal @ v6.12: a vma that is not COW may be remapped in any part",
            ["§4 row 2"], "refused the mapping"),
    "m31": ("mm/memory.c:copy_one_pte @ v2.6.26: a COW mapping's pte is write-protected in parent and child",
            ["§7 row 4"], READ),
    "m32": ("mm/memory.c:__copy_present_ptes @ v6.12: a writable pte of a COW mapping is write-protected in both",
            ["§7 row 4"], READ),
    "m33": ("mm/memory.c:copy_one_pte @ v2.6.26: a page vm_normal_page returns gets get_page, page_dup_rmap, rss +1",
            ["§7 row 7"], CHECK),
    "m34": ("mm/memory.c:zap_present_ptes @ v6.12: vm_normal_page NULL → the pte is cleared, nothing else",
            ["§8 row 1"], BADSTATE),
    "m35": ("mm/memory.c:zap_pte_range @ v2.6.26: PageAnon → anon_rss -1 (by the page, not the vma)",
            ["§8 row 2"], CHECK),
    "m36": ("mm/memory.c:__do_fault @ v2.6.26: VM_FAULT_NOPAGE → return at once, the handler installed the pte",
            ["§6a row 6"], BUG),
    "m37": ("mm/memory.c:do_fault / do_cow_fault @ v6.12: a write to a vma without VM_SHARED maps a copy",
            ["§6a row 4"], READ),
    "m38": ("mm/memory.c:__do_fault @ v2.6.27: VM_FAULT_SIGBUS is passed up, nothing mapped (do_page_fault: SIGBUS)",
            ["§6a row 11"], BUG),
}
TWO_STEP = {"m6", "m20", "m21", "m22", "m23", "m24", "m25", "m26", "m31", "m32", "m37"}     # the symptom shows an operation later
IDS = sorted(FOLLOWS, key=lambda m: int(m[1:]))


def test_every_mutation_is_described_here():
    assert set(FOLLOWS) == set(ps9.BY_ID) and len(ps9.MUTATIONS) >= 24
    assert {m.fn for m in ps9.MUTATIONS} == set(DECIDERS)


@pytest.mark.parametrize("mid", IDS)
def test_the_scenario_breaks_with_the_mutation_and_runs_without(mid):
    """The broken kernel's scenario ends in the failure FOLLOWS names; the kernel's own rule runs it clean."""
    m = ps9.BY_ID[mid]
    task = ps9.Task(m, "anyone")
    steps = task.play(task.kernel(), quiet=True)
    assert FOLLOWS[mid][2] in steps[-1][1], (FOLLOWS[mid][0], steps)
    assert all(ps9._fine(outcome) for _, outcome in steps[:-1])
    clean = task.play(Kernel(m.version, m.arch, ram_pages=64), quiet=True)
    assert len(clean) == len(m.ops) + 1 and all(ps9._fine(o) for _, o in clean), clean


def _runs(m):
    """(the broken kernel after its scenario, a kernel that is not broken after the same, the steps)."""
    task = ps9.Task(m, "anyone")
    k = task.kernel()
    steps = task.play(k, quiet=True)
    good = Kernel(m.version, m.arch, ram_pages=64)
    task.play(good, quiet=True)
    return k, good, steps


@pytest.mark.parametrize("mid", IDS)
def test_no_trace_line_of_a_mutated_decision_names_a_row(mid):
    """The broken kernel's wrong decisions are in its trace (also when the crash undid their operation), each
    reported by the function the kernel asks, and none cites a row, so never the real rule's one; a broken
    vm_normal_page cites no row at all. No other line cites the row the hidden key accepts either, except
    mmap_region's writenotify decision (m23), which §6b row 1 explains."""
    m = ps9.BY_ID[mid]
    k, good, _ = _runs(m)
    wrong = wrong_decisions(k)
    assert wrong, [str(e) for e in k.trace.events if e.kind == "decision"]
    for i in wrong:
        e = k.trace.events[i]
        assert e.func in REPORTERS[m.fn] and e.row == "" and "§" not in e.text, str(e)
        assert e.examined, f"the wrong decision keeps what the kernel examined: {e}"
    decisions = [e for e in k.trace.events if e.kind == "decision"]
    if m.fn == "vm_normal_page":
        assert all(e.row == "" for e in decisions if e.func == "vm_normal_page")
    cited = [str(e) for e in decisions if ps9.normalize_row(e.row) in FOLLOWS[mid][1] and e.func != "mmap_region"]
    assert not cited, cited
    kernel_own = [str(e) for e in good.trace.events if e.kind == "decision"]
    assert all(str(k.trace.events[i]) not in kernel_own for i in wrong)


@pytest.mark.parametrize("mid", sorted(TWO_STEP, key=lambda m: int(m[1:])))
def test_two_step_mutations_show_after_the_broken_decision(mid):
    """The symptom of these shows in a later user operation than the one with the first wrong decision."""
    m = ps9.BY_ID[mid]
    k, _, steps = _runs(m)
    ops = list(k.trace.ops())
    at = wrong_decisions(k)[0]
    assert sum(1 for i in ops if i <= at) < len(ops), steps


@pytest.mark.parametrize("mid", IDS)
def test_the_broken_rule_as_a_fix_fails_its_own_scenario(mid):
    """Played in the grader's world, the broken rule diverges from the kernel on the visible scenario."""
    m = ps9.BY_ID[mid]
    sc = ps9.own_scenario(m)
    ref = sim.play(sc, (m.fn,), None, {})
    got = sim.World(sc, {m.fn: mutated(m)})
    with contextlib.suppress(sim.StopScenario):
        sc.play(got)
    assert sim.judge_scenario(sc, ref, got) is not None


def _hidden_key() -> dict:
    """The rows= key of the notebook's hidden row test, read as the autograder would pass it."""
    import ast
    nb = json.loads(SOLUTION.read_text())
    hidden = next("".join(c["source"]) for c in nb["cells"]
                  if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_row_hidden")
    call = next(n for n in ast.walk(ast.parse(hidden)) if isinstance(n, ast.Call))
    return ast.literal_eval(next(kw.value for kw in call.keywords if kw.arg == "rows"))


def test_the_solution_key_matches_the_hidden_test_cell():
    key = _hidden_key()
    assert set(key) == set(FOLLOWS)
    for mid, (_, rows, _) in FOLLOWS.items():
        assert (key[mid] if isinstance(key[mid], list) else [key[mid]]) == rows, mid
        assert all(ps9.row_problem(r) is None for r in rows), mid


def test_the_answer_key_is_not_in_the_package():
    """No row of the key is written in a module the student can import: it is only in the hidden cell."""
    import vmlib.grading.ps9_mutations as mutations
    text = Path(ps9.__file__).read_text() + Path(mutations.__file__).read_text()
    leaked = {row for _, rows, _ in FOLLOWS.values() for row in rows if row in text}
    assert not leaked, leaked


def test_students_get_stable_and_different_mutations():
    assert ps9.mutation_for("alice") == ps9.mutation_for("alice")
    assert ps9.mutation_for("s017") == ps9.mutation_for("s017")
    assert ps9.mutation_for("s017").id != ps9.mutation_for("s018").id
    drawn = {ps9.mutation_for(f"student{i}").id for i in range(len(ps9.MUTATIONS))}
    assert drawn == set(ps9.BY_ID)
    with pytest.raises(ValueError, match="non-empty string"):
        ps9.mutation_for("")


@pytest.mark.parametrize("ids", [[f"s{i:03d}" for i in range(300)], [f"student{i}" for i in range(1, 301)],
                                 [f"u{2024117 + i}" for i in range(300)], [f"s{i:03d}" for i in range(13, 313)]])
def test_the_draw_is_even_over_300_ids(ids):
    """No mutation goes to more than ceil(300/24) + 1 = 14 of 300 students with consecutive numbered ids."""
    import collections
    import math
    counts = collections.Counter(ps9.mutation_for(s).id for s in ids)
    assert set(counts) == set(ps9.BY_ID)
    assert max(counts.values()) <= math.ceil(len(ids) / 24) + 1, counts


def test_the_draw_is_even_for_any_run_of_numbers():
    """Any N consecutive numbers of one family touch at most ceil(N/len) + 1 blocks, each dealing a mutation once."""
    import collections
    import math
    for start in (0, 5, 29, 1000):
        for n in (1, 24, 29, 30, 31, 61, 97):
            counts = collections.Counter(ps9.mutation_for(f"x{i}y").id for i in range(start, start + n))
            assert max(counts.values()) <= math.ceil(n / len(ps9.MUTATIONS)) + 1, (start, n, counts)


def test_student_id_is_what_nbgrader_submits_under(monkeypatch):
    from nbgrader.utils import get_username
    assert ps9.student_id() == get_username()
    monkeypatch.setattr("pwd.getpwuid", lambda uid: ("jovyan",))
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    assert ps9.student_id() == get_username() == "alice"


@pytest.mark.parametrize("text,row", [("§1a row 4", "§1a row 4"), ("1a row 4", "§1a row 4"),
                                      ("§1A, Row 4", "§1a row 4"), ("§1a r4", "§1a row 4"),
                                      ("§6b v2.6.26 row 3", "§6b row 3"), ("section 2 row 3", "§2 row 3"),
                                      ("§5a vm_insert_mixed", None), ("§1a", None),
                                      ("row 4", None), (4, None)])
def test_row_spellings(text, row):
    assert ps9.normalize_row(text) == row


# rows the sheet does not have, spelled with \u00a7 so that test_kernel_facts does not take them for references
NO_ROW_9 = "\u00a71a row 9"


@pytest.mark.parametrize("text,problem", [(NO_ROW_9, "§1a has rows 1 to 8"), ("\u00a71a row 0", "§1a has rows 1 to 8"),
                                          ("\u00a71z row 1", "no section \u00a71z"),
                                          ("\u00a716 row 1", "no section \u00a716"),
                                          ("§6b row 13", None), ("§0 row 21", None), ("§1a row 8", None)])
def test_rows_the_sheet_does_not_have_are_refused(text, problem):
    got = ps9.row_problem(ps9.normalize_row(text))
    assert got == problem if problem is None else problem in got and "kernel-facts" in got


def test_the_row_counts_are_generated_from_the_sheet():
    """vmlib/grading/kernel_rows.py is what tools/kernel_rows.py makes of docs/kernel-facts.md now."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("kernel_rows_tool", ROOT / "tools" / "kernel_rows.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    text = tool.module_text(tool.row_counts((ROOT / "docs" / "kernel-facts.md").read_text()))
    assert (ROOT / "vmlib" / "grading" / "kernel_rows.py").read_text() == text, "run: python tools/kernel_rows.py"


def test_a_row_that_does_not_exist_fails_the_visible_check():
    """Row 9 of §1a (it has 8) was accepted as well-formed: now the visible check refuses it and says what to do."""
    nb = _notebook(f"wrong_row = {NO_ROW_9!r}", 'check("ps9.row", wrong_row)')
    v = verify(nb, trusted=True, student="alice")["test_row_visible"]
    assert not v["passed"] and "§1a has rows 1 to 8" in v["text"], v["text"]
    nb = _notebook('wrong_row = "§1a row 8"', 'check("ps9.row", wrong_row)')
    assert verify(nb, trusted=True, student="alice")["test_row_visible"]["passed"]


def test_a_key_without_every_mutation_is_refused():
    with pytest.raises(ValueError, match="a row for each of"):
        get_suite("ps9.row").make_cases({"student": "alice", "rows": {"m1": "§1a row 2"}})


def _notebook(row_cell: str, check_line: str) -> dict:
    nb = json.loads(SOLUTION.read_text())
    keep = []
    for c in nb["cells"]:
        g = c["metadata"].get("nbgrader", {}).get("grade_id")
        if g == "row":
            c["source"] = row_cell
        elif g == "test_row_visible":
            c["source"] = check_line
        elif g in ("fix", "test_row_hidden", "test_fix_visible", "test_fix_hidden"):
            continue
        keep.append(c)
    nb["cells"] = keep
    return nb


def test_the_grader_ignores_an_id_written_in_the_notebook():
    """The test cell asks for bob's mutation and the answer is bob's row: graded as alice, it fails."""
    alice, bob = ps9.mutation_for("alice"), ps9.mutation_for("bob")
    key = {mid: rows for mid, (_, rows, _) in FOLLOWS.items()}
    nb = _notebook(f"wrong_row = {key[bob.id][0]!r}",
                   f'check("ps9.row", wrong_row, student="bob", rows={key!r})')
    assert not verify(nb, trusted=True, student="alice")["test_row_visible"]["passed"]
    assert verify(nb, trusted=True, student="bob")["test_row_visible"]["passed"]
    nb = _notebook(f"wrong_row = {key[alice.id][0]!r}", f'check("ps9.row", wrong_row, rows={key!r})')
    assert verify(nb, trusted=True, student="alice")["test_row_visible"]["passed"]


def test_fix_feedback_does_not_name_the_row():
    nb = json.loads(SOLUTION.read_text())
    for c in nb["cells"]:
        if c["metadata"].get("nbgrader", {}).get("grade_id") == "fix":
            c["source"] = ('def fixed(k, *args):\n    return {"insert_mixed_decision": "pfn", "do_wp_page_decision": '
                           '"reuse", "gup_fast_pte_ok": True, "remap_pfn_range_check": -22, '
                           '"copy_one_pte_decision": (False, False), "do_fault_decision": "map"}.get(DECISION, None)\n')
    students = {}
    for i in range(len(ps9.MUTATIONS)):
        students.setdefault(ps9.mutation_for(f"s{i:03d}").fn, f"s{i:03d}")
    for fn, student in students.items():
        v = verify(nb, trusted=True, student=student)["test_fix_visible"]
        assert not v["passed"] and "kernel-facts" not in v["text"] and "§" not in v["text"], (fn, v["text"])


def test_check_in_the_notebook_ignores_a_student_id_too(monkeypatch):
    from vmlib import grading
    sent = []
    monkeypatch.setattr(grading, "run_clean", lambda checks, **kw: sent.extend(checks) or [
        {"passed": True, "first": None, "text": "ok"}])
    grading.check("ps9.row", "§9b row 8", student="bob")
    assert "student" not in sent[0]["params"]


@pytest.mark.parametrize("mid", sorted(FOLLOWS))
def test_the_scenario_as_code_is_the_scenario_played(mid):
    """task.code() performs the operations task.play() does (compared on a kernel that is not broken)."""
    m = ps9.BY_ID[mid]
    task = ps9.Task(m, "anyone")
    played, coded = Kernel(m.version, m.arch, ram_pages=64), Kernel(m.version, m.arch, ram_pages=64)
    task.play(played, quiet=True)
    exec(task.code(), {"k": coded})  # noqa: S102 - our own generated code
    ops = [[str(k.trace.events[i]) for i in k.trace.ops()] for k in (played, coded)]
    assert ops[0] == ops[1] and len(ops[0]) == len(m.ops) + 2
    assert played.snapshot().pages == coded.snapshot().pages


@pytest.mark.parametrize("mid", IDS)
def test_every_mutation_has_hidden_seeded_scenarios_that_ask_its_function(mid):
    """The hidden fix check plays the mutation's scenario and seeded ones, every one runnable with the
    kernel's own rule, and most of them ask the broken function something (those that ask nothing are
    not graded)."""
    m = ps9.BY_ID[mid]
    scenarios = ps9.fix_scenarios(m, {"cases": "hidden", "seed": 909})
    assert len(scenarios) == 1 + ps9.HIDDEN
    runs = sim.reference_runs(get_suite("ps9.fix"), scenarios, (m.fn,), f"test {mid} hidden 909")
    asking = [w for w in runs if w.calls]
    assert runs[0].calls and len(asking) >= 3, [sc.name for sc, w in zip(scenarios, runs) if not w.calls]


@pytest.mark.slow
def test_the_solution_scores_full_marks_for_every_mutation():
    """Graded as a student of each mutation, the solution passes every visible and hidden test cell."""
    nb = json.loads(SOLUTION.read_text())
    students = {}
    for i in range(len(ps9.MUTATIONS)):
        students.setdefault(ps9.mutation_for(f"s{i:03d}").id, f"s{i:03d}")
    assert set(students) == set(ps9.BY_ID)
    for mid, student in students.items():
        failed = {g: v["text"] for g, v in verify(nb, trusted=True, student=student).items() if not v["passed"]}
        assert not failed, (mid, failed)


def test_selfcheck_counts_the_row_cell(tmp_path, capsys):
    """The visible row cell (1 point) earns its point for a well-formed row, so the self-check of a release
    answered right counts it: 1 + 2 visible points (it left the row cell out: 2 of 2)."""
    from vmlib.grading.notebook import selfcheck
    path = tmp_path / "ps9_debug.ipynb"
    path.write_text(json.dumps(plants.filled("ps9_debug")))
    assert selfcheck(str(path)) == 0
    out = capsys.readouterr().out
    assert "[well-formed] test_row_visible (1 points)" in out and "visible checks: 3 of 3 points" in out, out
