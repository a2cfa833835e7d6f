"""ps9 debug: a kernel with one decision rule mutated; find the row it breaks and write the fix.

Each student gets one broken kernel of the pool (vmlib.grading.ps9_mutations), drawn from the student
id nbgrader files the submission under (the autograder passes it in; in the student's own session it
is what `nbgrader submit` would use, see `student_id`). The draw is stable and spread evenly: see
`mutation_for`. The broken kernel traces its own wrong decision and never names the row the right
rule follows (that is the answer).

The answer key (which row each mutation breaks) is not in the package: it lives in the hidden test
cell of the notebook (the nbgrader gradebook) as literal check() parameters, as in ps7. A row the
student names must exist in docs/kernel-facts.md (vmlib.grading.kernel_rows, generated from it). The
fix is graded by the simulator (vmlib.grading.sim) on the mutation's own scenario and on seeded ones
over the profiles where that rule decides; the row citations of that feedback are left out, since
they would name the answer.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from vmlib.errors import BusError, InvariantError, KernelError, VmError
from vmlib.flags import PAGE_SHIFT
from vmlib.grading.kernel_rows import ROWS
from vmlib.grading.ps9_mutations import BY_ID, DECIDERS, MUTATIONS, Mutation, broken_kernel
from vmlib.grading.sim import BASE, DEV_PFN, call_only, grade, mapping, random_ops, scenario
from vmlib.grading.suites import Case, Suite, plain_value, register

__all__ = ["BY_ID", "DECIDERS", "MUTATIONS", "Mutation", "Task", "assignment", "mutation_for", "normalize_row"]

REFERENCES = ("vmlib.memory:vm_normal_page", "vmlib.memory:insert_mixed_decision",
              "vmlib.memory:do_wp_page_decision", "vmlib.memory:remap_pfn_range_check",
              "vmlib.gup:gup_fast_pte_ok", "vmlib.memory:copy_one_pte_decision", "vmlib.memory:zap_pte_decision",
              "vmlib.memory:do_fault_decision")
PRELUDE = (
    "import errno\n"
    "from vmlib.flags import PAGE_SHIFT, VM_PFNMAP, VM_MIXEDMAP, VM_SHARED, VM_MAYSHARE, VM_MAYWRITE, VM_WRITE, "
    "is_cow_mapping\n"
    "from vmlib.flags import VM_FAULT_ERROR, VM_FAULT_NOPAGE, VM_FAULT_OOM, VM_FAULT_SIGBUS\n"
)


# ---- who gets which mutation -----------------------------------------------------------------------

def student_id() -> str:
    """The id `nbgrader submit` files this user's work under (nbgrader.utils.get_username, 0.9):
    the login name, or $JUPYTERHUB_USER when the login name is 'jovyan' (a JupyterHub container)."""
    import pwd
    name = pwd.getpwuid(os.getuid())[0]
    return os.environ.get("JUPYTERHUB_USER", "jovyan") if name == "jovyan" else name


_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


def _h(*parts) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(("ps9",) + tuple(map(str, parts))).encode()).digest()[:8], "big")


def mutation_for(student: str) -> Mutation:
    """The mutation of `student`, computed from the id alone (the student's notebook and the autograder
    agree without a roster).

    A numbered id ("s017", "u1234567", "student42": the last run of digits, with what is around it as
    its family) is placed by a keyed permutation: the numbers of a family are cut into blocks of
    len(MUTATIONS) consecutive numbers, and each block deals every mutation exactly once, in an order
    drawn from a hash of (family, block). So in a class of N consecutive numbers, which touches at most
    ceil(N / len(MUTATIONS)) + 1 blocks, no mutation goes to more than ceil(N / 24) + 1 students, and
    neighbours in the roster never share one. An id without digits falls back to a hash, which is even
    only on average (300 made-up names: the fullest mutation got about twice the mean): an instructor
    who wants the guarantee gives students numbered ids.
    """
    if not isinstance(student, str) or not student:
        raise ValueError(f"ps9: a student id is a non-empty string, got {student!r}")
    n = len(MUTATIONS)
    m = _NUMBERED.match(student)
    if m is None:
        return MUTATIONS[_h("name", student) % n]
    family, number = (m.group(1), m.group(3)), int(m.group(2))
    block, place = divmod(number, n)
    order = sorted(range(n), key=lambda i: _h("block", family, block, i))
    return MUTATIONS[order[place]]


def _of_params(params: dict) -> Mutation:
    """The mutation a check grades: of params['student'] (put there by the grader), else of this user."""
    return mutation_for(params.get("student") or student_id())


def prelude(params: dict) -> str:
    """What the student's cells find defined when graded: the imports, MUTATION (their mutation's id) and
    DECISION (the name of the decision function it breaks), as the notebook's setup cell defines them."""
    m = _of_params(params)
    return PRELUDE + f"MUTATION = {m.id!r}\nDECISION = {m.fn!r}\n"


# ---- the broken kernel (student side: the notebook) -----------------------------------------------

@dataclass
class Task:
    """A student's assignment: the broken kernel, its scenario, the function to fix."""

    mutation: Mutation
    student: str

    @property
    def id(self) -> str:
        return self.mutation.id

    def kernel(self):
        """A fresh kernel of the broken profile (64 pages of RAM) with the mutated rule in place."""
        return broken_kernel(self.mutation)

    def play(self, k=None, quiet: bool = False) -> list[tuple[str, str]]:
        """Run the scenario on `k` (default: a fresh broken kernel), one step at a time, with
        k.check() after each; stop at the first crash, broken invariant or wrong read. Prints the
        steps unless `quiet`; returns [(step, outcome)]."""
        k = self.kernel() if k is None else k
        m = self.mutation
        run = _Run(k, m, quiet)
        try:
            procs = {"parent": mapping(run, m.kind, m.npages, m.flags)}
            for op in m.ops:
                run.op(procs, *op)
        except _Stop:
            pass
        return run.steps

    def code(self) -> str:
        """The scenario as Python code on a kernel `k` (what play() runs, without its checks)."""
        m = self.mutation
        lines = ["from vmlib import PAGE_SIZE, BusError, KernelError, drivers", "", 'parent = k.spawn("parent")']
        if m.kind.endswith("-dev"):
            lines.append(f'dev = k.add_device_memory({DEV_PFN:#x}, 32, "nvram")      # device memory: no struct pages')
        dev = m.kind.endswith("-dev")
        first = (f"{DEV_PFN:#x}    # the device's first pfn" if dev else
                 f"min(k.alloc_page().pfn for _ in range({m.npages}))    # {m.npages} pages of kernel RAM")
        lines += _SETUP[m.kind.split("-")[0]].format(n=m.npages, n1=m.npages + 1, size=m.npages - 1, first=first,
                                                     backing="dev" if dev else '"ram"').splitlines()
        lines.append(f'parent.mmap({m.npages} * PAGE_SIZE, "rw", "{m.flags}"'
                     f'{", file=f, offset=offset" if m.kind != "anon" else ""}, addr={BASE:#x})')
        for who, op, arg in m.ops:
            addr = f"{BASE + (arg << PAGE_SHIFT if isinstance(arg, int) else 0):#x}"
            if op in ("read", "write") and _beyond_eof(m, arg):
                call = f"{who}.read({addr}, 1)" if op == "read" else f"{who}.write({addr}, {who[0].encode()!r})"
                lines.append(f"try:\n    {call}\nexcept BusError as e:\n    print(e)    # beyond the end of the file")
                continue
            lines.append({"fork": f'{arg} = {who}.fork("{arg}")', "read": f"{who}.read({addr}, 1)",
                          "write": f"{who}.write({addr}, {who[0].encode()!r})",
                          "gupfast": f"try:\n    {who}.get_user_pages_fast({addr}, 1)\nexcept KernelError as e:\n"
                                     "    print(e)    # the kernel may refuse it with an errno",
                          "gup": f"try:\n    {who}.get_user_pages({addr}, 1)\nexcept KernelError as e:\n"
                                 "    print(e)    # the kernel may refuse it with an errno",
                          "munmap": f"{who}.munmap({addr}, PAGE_SIZE)", "exit": f"{who}.exit()"}[op])
        return "\n".join(lines)

    def __repr__(self):
        m = self.mutation
        return (f"ps9 for {self.student!r}: broken kernel {m.profile}, mutation {m.id}; "
                f"the decision function to fix: {m.signature}")


_SETUP = {      # the mappings of vmlib.grading.sim.mapping, as code
    "anon": "",
    "xip": ('fs = drivers.XipFs(k, backing={backing})\n'
            'fs.create("image", bytes(range(1, {n1})) * 8, size={n} * PAGE_SIZE)\n'
            'f, offset = fs.open("image", "rw"), 0'),
    "xipshort": ('fs = drivers.XipFs(k, backing={backing})\n'
                 'fs.create("image", bytes(range(1, {n1})) * 8, size={size} * PAGE_SIZE)    # one page short\n'
                 'f, offset = fs.open("image", "rw"), 0'),
    "fb": 'f, offset = k.open(drivers.FbDev(k, {n}, backing={backing}), "rw"), 0',
    "devmem": ("first = {first}\n"
               'f, offset = k.open(drivers.DevMem(), "rw"), first * PAGE_SIZE'),
}


class _Stop(Exception):
    pass


def _beyond_eof(m: Mutation, page) -> bool:
    """Whether `page` of m's mapping lies beyond the end of its file (a fault there is a SIGBUS)."""
    return m.kind.startswith("xipshort") and page == m.npages - 1


class _Run:
    """The student's run of a scenario: what each process should read back, and where it broke."""

    def __init__(self, k, m: Mutation, quiet: bool):
        self.k, self.m, self.quiet = k, m, quiet
        self.steps: list[tuple[str, str]] = []
        self.memory: dict = {}          # (process, page) -> the byte it should read back

    def step(self, text: str, thunk: Callable, expect: bytes | None = None, errno_ok: bool = False,
             sigbus_ok: bool = False):
        value = None
        try:
            value = thunk()
            outcome = "ok"
            if expect is not None and value != expect:
                outcome = (f"WRONG READ: read {value!r}, but what this process should see there (its last "
                           f"write, or what it read before) is {expect!r}")
            elif isinstance(value, bytes):
                outcome = f"read {value!r}"
            elif isinstance(value, list):
                outcome = f"{len(value)} page(s): " + ", ".join(f"page {pg.pfn}" for pg in value)
            self.k.check()
        except InvariantError as e:
            outcome = f"k.check() fails: {e}"
        except BusError as e:
            outcome = f"{'SIGBUS (the page is beyond the end of the file): ' if sigbus_ok else 'BusError: '}{e}"
        except KernelError as e:
            outcome = f"{'returned ' if errno_ok else ''}{type(e).__name__}: {e}"
        except VmError as e:
            outcome = f"{type(e).__name__}: {e}"
        self.steps.append((text, outcome))
        if not self.quiet:
            print(f"{len(self.steps):2}. {text:50} {outcome}")
        if not _fine(outcome):
            raise _Stop()
        return value

    def op(self, procs: dict, who: str, op: str, arg) -> None:
        p = procs[who]
        addr = BASE + (arg << PAGE_SHIFT if isinstance(arg, int) else 0)
        shared = self.m.flags == "shared"
        owner = "all" if shared else who
        if op == "fork":
            procs[arg] = self.step(f'{arg} = {who}.fork("{arg}")', lambda: p.fork(arg))
            if not shared:
                self.memory.update({(arg, pg): b for (w, pg), b in list(self.memory.items()) if w == who})
        elif op == "read":       # the first read tells what is there; later ones must agree (or see a write)
            value = self.step(f"{who}.read({addr:#x}, 1)", lambda: p.read(addr, 1), self.memory.get((owner, arg)),
                              sigbus_ok=_beyond_eof(self.m, arg))
            self.memory.setdefault((owner, arg), value)
        elif op == "write":
            data = who[0].encode()
            self.step(f"{who}.write({addr:#x}, {data!r})", lambda: p.write(addr, data), sigbus_ok=_beyond_eof(self.m, arg))
            if not _beyond_eof(self.m, arg):
                self.memory[(owner, arg)] = data
        elif op in ("gup", "gupfast"):
            name = "get_user_pages_fast" if op == "gupfast" else "get_user_pages"
            self.step(f"{who}.{name}({addr:#x}, 1)", lambda: getattr(p, name)(addr, 1), errno_ok=True)
        elif op == "munmap":
            self.step(f"{who}.munmap({addr:#x}, PAGE_SIZE)", lambda: p.munmap(addr, 1 << PAGE_SHIFT))
        elif op == "exit":
            self.step(f"{who}.exit()", p.exit)
        else:
            raise ValueError(f"unknown op {op!r}")


def _fine(outcome: str) -> bool:
    return outcome == "ok" or outcome.startswith(("read ", "1 page", "returned KernelError", "SIGBUS (the page is beyond"))


def assignment(student: str | None = None) -> Task:
    """Your ps9: the mutation of your student id (default: the id nbgrader submits under)."""
    student = student or student_id()
    return Task(mutation_for(student), student)


# ---- grading: the row -------------------------------------------------------------------------------

_ROW = re.compile(r"^§?\s*(?:section\s*)?(\d+[a-z]?)\s*[,:]?\s*(?:v?\d+\.\d+(?:\.\d+)?\s*)?(?:row|r)\.?\s*(\d+)$")


def normalize_row(text) -> str | None:
    """The row id `text` names, spelled as kernel-facts does ("§9b row 8"), for sensible spellings
    ("9b row 8", "§9b, row 8", "§9b r8", "§7 v2.6.26 row 1"). None if `text` names no row; whether
    the sheet has that row is `row_problem`'s question."""
    if not isinstance(text, str):
        return None
    text = " ".join(text.replace("\u00a0", " ").split()).lower().strip(" .")
    m = _ROW.match(text)
    return f"§{m.group(1)} row {int(m.group(2))}" if m else None


def row_problem(row: str) -> str | None:
    """None if docs/kernel-facts.md has `row` (as normalize_row spells it), else what is wrong."""
    section, _, number = row[1:].partition(" row ")
    if section not in ROWS:
        return (f"{row} is not a row of docs/kernel-facts.md: it has no section §{section}; open the sheet "
                "and copy the section and row number of the row your broken kernel breaks")
    if not 1 <= int(number) <= ROWS[section]:
        return (f"{row} is not a row of docs/kernel-facts.md: §{section} has rows 1 to {ROWS[section]}; "
                "the number is in the first column of the row, counted on across the tables of the section")
    return None


def _row_cases(params: dict) -> list[Case]:
    m = _of_params(params)
    rows = params.get("rows")
    if rows is not None and (not isinstance(rows, dict) or set(rows) != set(BY_ID)):
        raise ValueError(f"ps9.row: rows must give a row for each of {sorted(BY_ID)}, got {rows!r}")
    expected = None if rows is None else rows[m.id]
    return [Case("the row your broken kernel breaks", "wrong_row", [], expected)]


def _row_compare(case: Case, got) -> str | None:
    row = normalize_row(got)
    if row is None:
        return f"your answer is {got!r}; write a kernel-facts row id such as \"§2 row 3\""
    problem = row_problem(row)
    if problem:
        return problem
    if case.expected is not None:
        accepted = case.expected if isinstance(case.expected, list) else [case.expected]
        if row not in {normalize_row(a) for a in accepted}:
            return f"{row} is not the row your broken kernel breaks"
    return None


register(Suite("ps9.row", ("wrong_row",), _row_cases, prelude=prelude, run_case=plain_value, compare=_row_compare,
               params=("student", "rows")))


# ---- grading: the fix ---------------------------------------------------------------------------------

HIDDEN = 8       # seeded scenarios per hidden check, besides the mutation's own


def _mappable(profile: str, kind: str) -> bool:
    """Whether sim.mapping can map `kind` on `profile`: 2.6.25 has no XIP by pfn (no VM_MIXEDMAP)."""
    return not (profile.startswith("2.6.25") and kind.startswith("xip"))


def own_scenario(m: Mutation):
    """The mutation's scenario as a sim.Scenario (what the visible fix check runs)."""
    return scenario(f"your broken kernel's scenario ({m.kind} {m.flags})", m.profile, m.kind, m.npages, m.flags,
                    list(m.ops))


def fix_scenarios(m: Mutation, params: dict) -> list:
    """Visible: the failing scenario; hidden: it and HIDDEN seeded sequences over the profiles and
    mappings of `m`."""
    if params.get("cases") != "hidden":
        return [own_scenario(m)]
    rng = random.Random(f"{m.id} {params.get('seed', 0)}")
    combos = [(p, kf) for kf in m.kinds for p in m.profiles if _mappable(p, kf[0])]
    rng.shuffle(combos)
    out = [own_scenario(m)]
    for i in range(HIDDEN):
        profile, (kind, flags) = combos[i % len(combos)]
        npages = rng.randrange(2, 5)
        ops = random_ops(rng, npages, n=rng.randrange(5, 8), gup=("gup", "gupw", "gupfast", "gupfastw"))
        out.append(scenario(f"{flags} {kind}, {npages} pages, on {profile} (#{i + 1})", profile, kind, npages,
                            flags, ops))
    return out


_CITED = re.compile(r" \(kernel-facts [^)]*\)")


def _fix_grade(suite: Suite, params: dict, ask) -> dict:
    m = _of_params(params)
    key = f"{suite.id} {m.id} {params.get('cases')} {params.get('seed')}"
    v = grade(suite, fix_scenarios(m, params), (m.fn,), ask, key)
    v["text"] = _CITED.sub("", v["text"])
    v["first"] = v["first"] and _CITED.sub("", v["first"])
    return v


register(Suite("ps9.fix", ("fixed",), lambda params: [], prelude=prelude, references=REFERENCES,
               run_case=call_only, grade=_fix_grade, params=("student", "cases", "seed")))
