"""vmlib.practice: seeded problems, answers computed by the simulator, the command line.

The answers are checked against a second, independent replay: this file runs each problem's
operations through the public API itself and reads the answers from the trace's last
snapshot (not from the live objects the module reads), so a wrong answer in either fails.
"""

import contextlib
import errno
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vmlib
from vmlib import PAGE_SIZE, practice
from vmlib.practice import TOPICS, generate, main

ROOT = Path(__file__).resolve().parent.parent
FACTS = (ROOT / "docs" / "kernel-facts.md").read_text()
SECTIONS = set(re.findall(r"^#{2,3} (\d+[a-z]?)\.", FACTS, re.MULTILINE))
SEEDS = range(100)


# -- an independent replay ----------------------------------------------------------------


def replay(problem):
    """Run the problem through the public API; return (kernel, processes, addresses, results)."""
    k = vmlib.Kernel(problem.version, problem.arch, ram_pages=practice.RAM_PAGES)
    dev = k.add_device_memory(practice.DEV_PFN, practice.DEV_PAGES, "nvram")
    for i in range(practice.DEV_PAGES):
        dev.write(i * PAGE_SIZE, practice.DEV_BYTE)
    mem = k.open(vmlib.drivers.DevMem(), mode="rw")
    buf = [k.alloc_page(), k.alloc_page()]
    for page in buf:
        k._write_user(page.pfn, 0, practice.BUF_BYTE)
    f = None
    if problem.file_pages:
        fs = vmlib.drivers.XipFs(k, backing=dev)
        f = fs.create("data", size=problem.file_pages * PAGE_SIZE)
        for pg in set(range(problem.file_pages)) - set(problem.holes):
            fs.write(f, pg * PAGE_SIZE, practice.FILE_BYTE)
    k.tracer.reset()
    procs, addrs, results = {"parent": k.spawn("parent")}, {}, []
    fallbacks = {}
    for op in problem.ops:
        p = procs[op.who]
        a = addrs.get(op.name, 0) + op.page * PAGE_SIZE
        r = None
        if op.kind == "mmap":
            files = {"anon": (None, 0), "mem-dev": (mem, practice.DEV_PFN * PAGE_SIZE),
                     "mem-ram": (mem, buf[0].pfn * PAGE_SIZE), "xip": (f, 0)}
            file, offset = files[op.backing]
            addrs[op.name] = p.mmap(op.npages * PAGE_SIZE, "rw", op.flags, file=file, offset=offset)
        elif op.kind == "read":
            r = p.read(a, 1)
        elif op.kind == "write":
            p.write(a, op.data)
        elif op.kind == "fork":
            procs["child"] = p.fork("child")
        elif op.kind == "exit":
            p.exit()
            del procs[op.who]
        elif op.kind in ("mprotect", "madvise", "mremap"):
            try:
                if op.kind == "mprotect":
                    r = p.mprotect(a, op.npages * PAGE_SIZE, prot=op.prot)
                elif op.kind == "madvise":
                    r = p.madvise(a, op.npages * PAGE_SIZE, "dontneed")
                else:
                    new = p.mremap(addrs[op.name], op.npages * PAGE_SIZE, op.new_npages * PAGE_SIZE,
                                   may_move=op.may_move)
                    r = "the same address" if new == addrs[op.name] else "a new address"
                    addrs[op.name] = new
            except vmlib.KernelError as e:
                r = e
        else:
            fn = p.get_user_pages if op.kind == "gup" else p.get_user_pages_fast
            before = [p.follow_pte(a + i * PAGE_SIZE) for i in range(op.npages)]
            fallbacks[len(results)] = fast_path_stop(k, op, before)
            try:
                r = fn(a, op.npages, write=op.write)
            except vmlib.KernelError as e:
                r = e
        results.append(r)
    return k, procs, addrs, results, fallbacks


def fast_path_stop(k, op, ptes) -> str:
    """Where get_user_pages_fast leaves the lockless walk, from the ptes before the call (§9b):
    at the first pte that is missing, read-only for a write, or special."""
    if not k.profile.HAVE_GUP_FAST:
        return "no lockless walk on this profile"
    for i, pte in enumerate(ptes):
        if pte is None or (op.write and not pte.write) or pte.special:
            return f"at {op.name}[{op.page + i}]"
    return "it never falls back"


def expected(problem, q, world) -> str | None:
    """The answer read from the last trace snapshot (None: this file does not recompute it)."""
    k, procs, addrs, results, fallbacks = world
    snap = k.trace.state_at(len(k.trace) - 1)
    if q.kind == "read":
        return "0" if results[q.step] == b"\0" else results[q.step].decode()
    if q.kind == "gup":
        r = results[q.step]
        return errno.errorcode[r.errno] if isinstance(r, vmlib.KernelError) else f"{len(r)} pages"
    if q.kind == "fallback":
        return fallbacks[q.step]
    if q.kind == "call":
        r = results[q.step]
        return errno.errorcode[r.errno] if isinstance(r, vmlib.KernelError) else str(r)
    addr = addrs[q.name] + q.page * PAGE_SIZE
    pte = snap.pte(procs[q.who].pid, addr)
    if q.kind == "normal":        # only what holds on every profile: a pfn without struct page is never normal
        if pte is None or not k.pfn_valid(pte.pfn):
            return "no pte" if pte is None else "NULL"
        return None
    if q.kind == "pte":
        return "none" if pte is None else ("writable" if pte.write else "read-only") + (
            " special" if pte.special else "")
    if q.kind == "same":
        other = snap.pte(procs[q.other].pid, addr)
        if pte is None and other is None:
            return "neither has a pte"
        if pte is None or other is None:
            return "only one of them has a pte"
        return "yes" if pte.pfn == other.pfn else "no"
    zero = pte is not None and pte.pfn == k.zero_pfn
    if q.kind == "kind":
        return ("no pte" if pte is None else "the zero page" if zero else
                "a RAM page" if pte.pfn < practice.RAM_PAGES else
                "a device pfn with a struct page (2.6.25 XIP memmap)" if k.pfn_valid(pte.pfn) else
                "a device pfn (no struct page)")
    if q.kind == "counts":
        if pte is None or zero:
            return "no pte" if pte is None else "zero page"
        info = snap.pages.get(pte.pfn)
        return "no struct page" if not k.pfn_valid(pte.pfn) else f"{info.count}/{info.mapcount}"
    raise AssertionError(f"unknown question kind {q.kind}")


# -- the 100-seed check --------------------------------------------------------------------


@pytest.mark.parametrize("topic", TOPICS)
def test_hundred_seeds_valid_varied_and_agreeing_with_the_simulator(topic):
    texts, profiles, kinds, values = set(), set(), set(), set()
    for seed in SEEDS:
        problem = generate(topic, seed)
        texts.add(problem.text())
        profiles.add(problem.profile)
        assert len(problem.questions) >= 3, f"{topic} seed {seed}: too few questions"
        assert len({q.qid for q in problem.questions}) == len(problem.questions)
        world = replay(problem)
        world[0].check()
        for a in problem.solve().answers:
            q = a.question
            kinds.add(q.kind)
            values.add((q.kind, a.value))
            if q.choices:
                assert a.value in q.choices, f"{topic} seed {seed} {q.qid}: {a.value!r} not a choice"
            else:
                assert q.hint, f"{topic} seed {seed} {q.qid}: a free answer needs a format hint"
            want = expected(problem, q, world)
            if want is not None:
                assert practice.normalise(a.value) == practice.normalise(want), (
                    f"{topic} seed {seed} {q.qid} ({q.text}): practice says {a.value!r}, "
                    f"the replay says {want!r}\n{problem.text()}")
            for row, why in a.rows:
                section = re.match(r"§(\d+[a-z]?)", row)
                assert section and section[1] in SECTIONS, f"row {row!r} is not a kernel-facts section"
                assert why
    assert len(texts) >= 95, f"{topic}: only {len(texts)} different problems in 100 seeds"
    assert len(profiles) >= 4, f"{topic}: only profiles {profiles}"
    assert len(kinds) >= 3 and len(values) >= 8, f"{topic}: answers hardly vary: {sorted(values)}"


@pytest.mark.parametrize("topic", TOPICS)
def test_same_seed_same_problem_and_answers(topic):
    for seed in (0, 17, 2**32 - 1):
        a, b = generate(topic, seed), generate(topic, seed)
        assert a == b and a.text() == b.text()
        assert a.solve().text() == b.solve().text()
    assert generate(topic, 1) != generate(topic, 2)


def test_answers_come_with_the_rows_that_decide_them():
    solution = generate("pfnmap", 3).solve()
    with_rows = [a for a in solution.answers if a.rows]
    assert with_rows, "no answer cites a kernel-facts row"
    text = solution.text()
    for a in with_rows:
        for row, _ in a.rows:
            assert f"[{row}]" in text


def test_setup_says_whether_the_device_memory_has_struct_pages():
    """The problem text agrees with the simulator: 2.6.25 XIP gives the device memory a memmap
    (XipFs calls add_shared_memory, arch/s390/mm/vmem.c @ v2.6.25, kernel-facts §11a row 13);
    otherwise it has no struct pages (pfn_valid false)."""
    seen = set()
    for topic in ("special", "pfnmap", "gup"):
        for seed in range(60):
            p = generate(topic, seed)
            line = next((s for s in p.setup_lines() if s.startswith("Device memory")), None)
            if line is None:
                continue
            run = practice._Run(p)
            valid = run.k.pfn_valid(practice.DEV_PFN)
            assert ("no struct pages" not in line) == valid, (topic, seed, line)
            seen.add(valid)
    assert seen == {True, False}


def test_normal_answers_cite_vm_normal_page():
    for seed in range(20):
        for a in generate("special", seed).solve().answers:
            if a.question.kind == "normal" and a.value != "no pte":
                assert any("vm_normal_page" in why for _, why in a.rows), a


def test_check_scores_answers():
    problem = generate("cow", 5)
    right = {a.question.qid: a.value for a in problem.solve().answers}
    assert all(problem.check(right).values())
    assert all(problem.check({q: f"  {v.upper()} " for q, v in right.items()}).values())
    wrong = {qid: "certainly not this" for qid in right}
    assert not any(problem.check(wrong).values())
    with pytest.raises(ValueError, match="no question q99"):
        problem.check({"q99": "1/1"})


# -- bad input and the command line --------------------------------------------------------


@pytest.mark.parametrize("topic, seed, exc, words", [
    ("nope", 1, ValueError, "unknown practice topic 'nope': choose one of cow, pfnmap"),
    ("cow", -1, ValueError, "seed must be in 0.."),
    ("cow", 2**32, ValueError, "seed must be in 0.."),
    ("cow", "1", TypeError, "seed must be an int"),
    ("cow", True, TypeError, "seed must be an int"),
])
def test_generate_rejects_bad_topic_and_seed(topic, seed, exc, words):
    with pytest.raises(exc, match=words):
        generate(topic, seed)


def run_main(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv, words", [
    (("--topic", "tlb"), "invalid choice: 'tlb'"),
    (("--seed", "abc"), "seed must be a whole number"),
    (("--seed", "-5"), "seed must be a whole number"),
])
def test_command_line_rejects_bad_arguments(argv, words):
    code, out, err = run_main(*argv)
    assert code == 2 and words in err and out == ""


@pytest.mark.parametrize("topic", TOPICS)
def test_without_c_nothing_of_the_answer_is_shown(topic):
    code, out, _ = run_main("--topic", topic, "--seed", "11")
    assert code == 0
    solution = generate(topic, 11).solve()
    assert "Answers" not in out and "§" not in out
    assert "-c)" in out, "the student is told how to get the answers"
    code, full, _ = run_main("--topic", topic, "--seed", "11", "-c")
    assert full.startswith(out.rsplit("\n(answers", 1)[0])
    after = full.split("Answers (computed", 1)[1]
    for a in solution.answers:
        assert f"{a.question.qid}. {a.value}" in after


def test_default_topic_follows_the_seed():
    code, out, _ = run_main("--seed", "2")
    assert code == 0 and f"Practice '{TOPICS[2 % len(TOPICS)]}'" in out and "seed 2" in out


def test_python_dash_m_and_import_purity():
    probe = ("import sys, runpy; sys.argv = ['x', '-t', 'gup', '-s', '4', '-c']; "
             "runpy.run_module('vmlib.practice', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", probe], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Practice 'gup'" in proc.stdout and "Answers" in proc.stdout
    probe = "import json, sys, vmlib.practice; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    loaded = {m.split(".")[0] for m in json.loads(proc.stdout)}
    assert not loaded & {"ipywidgets", "IPython", "graphviz", "matplotlib", "numpy"}


@pytest.mark.parametrize("given, right", [
    ("b'p'", "p"), ("2 / 1", "2/1"), ("-EFAULT", "EFAULT"), ("3", "3 pages"), ("1 page", "1 page"),
    ("  Writable   Special ", "writable special"), ('"yes"', "yes"),
])
def test_answers_are_compared_loosely(given, right):
    assert practice.normalise(given) == practice.normalise(right)


@pytest.mark.parametrize("given, right", [("2/1", "1/2"), ("p", "q"), ("writable", "writable special"),
                                          ("EFAULT", "EEXIST"), ("0", "no pte")])
def test_different_answers_stay_different(given, right):
    assert practice.normalise(given) != practice.normalise(right)


def test_protect_answers_follow_kernel_facts_16():
    """The 'protect' topic, against the rules of kernel-facts §16 rather than a replay:
    mprotect of a mapped range returns 0 (§16a row 1; PFNMAP is not refused, row 2);
    madvise(MADV_DONTNEED) of /dev/mem (VM_PFNMAP) is EINVAL on every version (§16b rows 1-2),
    and 0 elsewhere; growing a /dev/mem mapping is EFAULT (§16c row 2), shrinking one returns
    the same address (§16c row 1)."""
    seen = set()
    for seed in SEEDS:
        problem = generate("protect", seed)
        backing = next(op.backing for op in problem.ops if op.kind == "mmap" and op.name == "m")
        pfnmap = backing.startswith("mem-")
        for a in problem.solve().answers:
            if a.question.kind != "call":
                continue
            op = problem.ops[a.question.step]
            if op.kind == "mprotect":
                want = "0"
            elif op.kind == "madvise":
                want = "EINVAL" if pfnmap else "0"
            elif op.new_npages < op.npages:
                want = "the same address"
            else:
                want = "EFAULT" if pfnmap else None
            if want is not None:
                assert a.value == want, (seed, op, a.value, problem.text())
            seen.add((op.kind, a.value))
    assert {("madvise", "EINVAL"), ("madvise", "0"), ("mremap", "EFAULT"), ("mprotect", "0"),
            ("mremap", "a new address"), ("mremap", "the same address")} <= seen, seen
