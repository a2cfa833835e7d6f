"""Unlimited seeded practice: a problem per (topic, seed), answered by running the simulator.

    python -m vmlib.practice --topic cow --seed 7        # the problem only
    python -m vmlib.practice --topic cow --seed 7 -c     # and its answers, with the deciding rows

As in the OSTEP homework simulators, the same seed always gives the same problem and `-c`
computes the answers from the same code. A problem is a kernel profile (version x arch), a few
resources (device memory, a /dev/mem, an XIP file with holes), a list of operations by a
parent and maybe a forked child, and questions: pte states, page counts, which frame a
process maps, what a read returns, what vm_normal_page or get_user_pages says. No answer is
stored anywhere: `solve()` replays the operations on a fresh Kernel and reads the answers off
its state and its trace, together with the kernel-facts rows (`§...`) the trace cites for
the decisions that produced them. Standard library only, like the rest of the model.
"""

from __future__ import annotations

import argparse
import errno
import random
import re
import sys
from dataclasses import dataclass, field

from vmlib.errors import KernelError, VmError
from vmlib.flags import PAGE_SIZE

TOPICS = ("cow", "pfnmap", "mixedmap", "special", "gup", "protect")
TOPIC_TEXT = {
    "cow": "fork and copy on write of private anonymous memory",
    "pfnmap": "VM_PFNMAP: /dev/mem mappings of device memory and of RAM",
    "mixedmap": "VM_MIXEDMAP: an XIP file on device memory, with holes",
    "special": "special ptes: which mappings vm_normal_page refuses",
    "gup": "get_user_pages and where get_user_pages_fast falls back",
    "protect": "mprotect, madvise(MADV_DONTNEED) and mremap on anonymous, PFNMAP and MIXEDMAP mappings",
}
TOPIC_PROFILES = {
    "cow": (("2.6.25", "x86"), ("2.6.26", "x86"), ("2.6.27", "x86"), ("6.12", "x86")),
    "pfnmap": (("2.6.25", "x86"), ("2.6.26", "x86"), ("2.6.26", "s390"), ("2.6.27", "x86"),
               ("6.12", "x86"), ("6.12", "m68k")),
    "mixedmap": (("2.6.26", "x86"), ("2.6.26", "s390"), ("2.6.27", "x86"), ("6.12", "x86"),
                 ("6.12", "m68k")),
    "special": (("2.6.25", "x86"), ("2.6.26", "x86"), ("2.6.26", "s390"), ("2.6.27", "x86"),
                ("6.12", "x86"), ("6.12", "m68k")),
    "gup": (("2.6.26", "x86"), ("2.6.27", "x86"), ("2.6.27", "powerpc"), ("2.6.27", "s390"),
            ("6.12", "x86"), ("6.12", "arm64"), ("6.12", "m68k")),
    "protect": (("2.6.25", "x86"), ("2.6.26", "x86"), ("2.6.26", "s390"), ("2.6.27", "x86"),
                ("6.12", "x86"), ("6.12", "m68k")),
}
MAX_SEED = 2**32 - 1
RAM_PAGES = 64
DEV_PFN = 1000                      # device memory (no struct page) starts here
DEV_PAGES = 16
DEV_BYTE = b"d"                     # what device memory holds at the start of each page
BUF_BYTE = b"k"                     # what the kernel buffer (RAM) holds
FILE_BYTE = b"f"                    # what the XIP file holds where it has blocks

PTE_CHOICES = ("none", "read-only", "writable", "read-only special", "writable special")
KIND_CHOICES = ("no pte", "the zero page", "a device pfn (no struct page)",
                "a device pfn with a struct page (2.6.25 XIP memmap)", "a RAM page")
SAME_CHOICES = ("yes", "no", "only one of them has a pte", "neither has a pte")
NORMAL_CHOICES = ("no pte", "a struct page", "NULL")
COUNTS_HINT = "COUNT/MAPCOUNT (e.g. 2/1), or 'zero page', 'no struct page' or 'no pte'"
CALL_HINT = "0, 'the same address' or 'a new address' (mremap), or the errno name, e.g. EINVAL"


# -- problems ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One operation. kind: mmap, read, write, fork, exit, gup, gup_fast, mprotect, madvise,
    mremap.

    mmap: `backing` is 'anon', 'mem-dev' (/dev/mem over device memory), 'mem-ram' (/dev/mem
    over a kernel buffer in RAM) or 'xip' (the XIP file); read/write/gup name a mapping and a
    page in it; gup takes `npages` pages from there; mprotect (to `prot`) and madvise
    (MADV_DONTNEED) act on `npages` pages from there; mremap resizes the whole mapping of
    `npages` pages to `new_npages`, moving it only if `may_move`.
    """

    kind: str
    who: str = "parent"
    name: str = ""
    page: int = 0
    npages: int = 1
    flags: str = "private"
    backing: str = "anon"
    data: bytes = b""
    write: bool = False
    prot: str = ""
    new_npages: int = 0
    may_move: bool = False


@dataclass(frozen=True)
class Question:
    """What to predict. kind: pte, kind, same, counts, normal (about `who`'s pte at
    name[page] after the last step), read, gup, fallback, call (about step `step`)."""

    qid: str
    kind: str
    text: str
    who: str = "parent"
    name: str = ""
    page: int = 0
    step: int = -1
    other: str = ""
    choices: tuple = ()
    hint: str = ""


@dataclass(frozen=True)
class Problem:
    """A seeded problem: profile, resources, operations and questions (no answers)."""

    topic: str
    seed: int
    version: str
    arch: str
    holes: tuple = ()               # XIP file pages that are holes
    file_pages: int = 0             # size of the XIP file in pages (0: no file)
    ops: tuple = ()
    questions: tuple = ()

    @property
    def profile(self) -> str:
        return f"{self.version}/{self.arch}"

    def text(self) -> str:
        """The problem as a student reads it."""
        lines = [f"Practice '{self.topic}' ({TOPIC_TEXT[self.topic]}), seed {self.seed}",
                 f"Kernel {self.profile}, {RAM_PAGES} pages of RAM (pfns 0..{RAM_PAGES - 1}).",
                 *self.setup_lines(), "", "Steps:"]
        lines += [f"  {i + 1}. {describe(op)}" for i, op in enumerate(self.ops)]
        lines += ["", "Questions:"]
        for q in self.questions:
            lines.append(f"  {q.qid}. {q.text}")
            lines.append(f"      answer: {' / '.join(q.choices) if q.choices else q.hint}")
        return "\n".join(lines)

    def setup_lines(self) -> list[str]:
        used = {op.backing for op in self.ops if op.kind == "mmap"}
        out = []
        if used & {"mem-dev", "xip"}:
            pages = ("given struct pages when the XIP filesystem was set up on it (2.6.25 XIP maps "
                     "only through struct pages: add_shared_memory)" if "xip" in used and
                     self.version == "2.6.25" else "no struct pages")
            out.append(f"Device memory 'nvram': pfns {DEV_PFN}..{DEV_PFN + DEV_PAGES - 1}, {pages}.")
        if "mem-dev" in used:
            out.append(f"/dev/mem is open read-write; each nvram page starts with {DEV_BYTE!r}.")
        if "mem-ram" in used:
            out.append(f"/dev/mem is open read-write; a driver has a kernel buffer in RAM (allocated "
                       f"with alloc_page, so page_count 1) starting with {BUF_BYTE!r}.")
        if "xip" in used:
            holes = ", ".join(str(h) for h in self.holes) or "none"
            out.append(f"An XIP filesystem on nvram holds file 'data' of {self.file_pages} pages; "
                       f"each block starts with {FILE_BYTE!r}; holes at file pages: {holes}.")
        return out

    def solve(self) -> Solution:
        """Run the operations on a fresh simulator and read every answer off it."""
        return _Run(self).solve()

    def check(self, answers: dict) -> dict:
        """{qid: True/False} for the given {qid: answer text}; unknown qids raise ValueError."""
        known = {q.qid for q in self.questions}
        bad = sorted(set(answers) - known)
        if bad:
            raise ValueError(f"check: no question {', '.join(bad)}; questions are {', '.join(sorted(known))}")
        right = {a.question.qid: a.value for a in self.solve().answers}
        return {qid: normalise(text) == normalise(right[qid]) for qid, text in answers.items()}


@dataclass(frozen=True)
class Answer:
    question: Question
    value: str
    rows: tuple = ()                # (row, "func: text") pairs from the trace


@dataclass
class Solution:
    problem: Problem
    answers: list = field(default_factory=list)

    def text(self) -> str:
        lines = ["Answers (computed by running the simulator):"]
        for a in self.answers:
            lines.append(f"  {a.question.qid}. {a.value}")
            for row, why in a.rows:
                lines.append(f"      [{row}] {why}")
        return "\n".join(lines)


def normalise(text) -> str:
    """Compare answers loosely: case, spaces, quotes and a trailing 'pages' do not matter."""
    t = " ".join(str(text).lower().split())
    t = re.sub(r"^b(['\"])(.)\1$", r"\2", t)               # b'p' is the byte p
    t = re.sub(r"\s*/\s*", "/", t.replace("'", "").replace('"', "")).lstrip("-")
    return t.removesuffix(" pages").removesuffix(" page")


def describe(op: Op) -> str:
    """One line for an operation, e.g. 'child: write b'c' to a[1]'."""
    if op.kind == "mmap":
        what = {"anon": "anonymous", "mem-dev": f"/dev/mem at nvram (offset pfn {DEV_PFN})",
                "mem-ram": "/dev/mem at the kernel buffer", "xip": "the XIP file 'data'"}[op.backing]
        return f"{op.who}: mmap {op.name} = {op.npages} page(s) rw {op.flags}, {what}"
    if op.kind == "read":
        return f"{op.who}: read {op.name}[{op.page}]"
    if op.kind == "write":
        return f"{op.who}: write {op.data!r} to {op.name}[{op.page}]"
    if op.kind == "fork":
        return f"{op.who}: fork -> child"
    if op.kind == "exit":
        return f"{op.who}: exit"
    if op.kind in ("gup", "gup_fast"):
        fn = "get_user_pages" if op.kind == "gup" else "get_user_pages_fast"
        return (f"{op.who}: {fn}({op.name}[{op.page}], {op.npages} page(s), "
                f"{'write' if op.write else 'read'}) (the pages are kept)")
    if op.kind == "mprotect":
        prot = {"r": "PROT_READ", "rw": "PROT_READ|PROT_WRITE", "none": "PROT_NONE"}[op.prot]
        return f"{op.who}: mprotect({op.name}[{op.page}], {op.npages} page(s), {prot})"
    if op.kind == "madvise":
        return f"{op.who}: madvise({op.name}[{op.page}], {op.npages} page(s), MADV_DONTNEED)"
    if op.kind == "mremap":
        return (f"{op.who}: mremap({op.name}, {op.npages} -> {op.new_npages} page(s)"
                f"{', MREMAP_MAYMOVE' if op.may_move else ''})")
    raise ValueError(f"describe: unknown operation kind {op.kind!r}")


# -- running a problem on the simulator ----------------------------------------------------


class _Run:
    """One replay of a problem: builds the kernel, runs the ops, answers the questions."""

    def __init__(self, problem: Problem):
        import vmlib

        self.p = problem
        self.k = k = vmlib.Kernel(problem.version, problem.arch, ram_pages=RAM_PAGES)
        self.dev = k.add_device_memory(DEV_PFN, DEV_PAGES, "nvram")
        for i in range(DEV_PAGES):
            self.dev.write(i * PAGE_SIZE, DEV_BYTE)
        self.mem = k.open(vmlib.drivers.DevMem(), mode="rw")
        self.buf = [k.alloc_page() for _ in range(2)]
        if self.buf[1].pfn != self.buf[0].pfn + 1:
            raise RuntimeError("practice: the kernel buffer is not contiguous")
        for page in self.buf:
            k._write_user(page.pfn, 0, BUF_BYTE)
        self.file = None
        if problem.file_pages:
            fs = vmlib.drivers.XipFs(k, backing=self.dev)
            self.file = fs.create("data", size=problem.file_pages * PAGE_SIZE)
            for pg in range(problem.file_pages):
                if pg not in problem.holes:
                    fs.write(self.file, pg * PAGE_SIZE, FILE_BYTE)
        self.trace = k.tracer.reset()
        self.procs = {"parent": k.spawn("parent")}
        self.addrs: dict[str, int] = {}
        self.spans: list[tuple[int, int]] = []
        self.results: list = []
        self.undone: list[list] = []         # per operation: events a failure took out

    def solve(self) -> Solution:
        for op in self.p.ops:
            start = len(self.trace.events)
            dropped = self._keep_dropped()
            try:
                self.results.append(self.do(op))
            finally:
                del self.trace._truncate
            self.spans.append((start, len(self.trace.events)))
            self.undone.append(dropped)
            self.k.check()
        return Solution(self.p, [self.answer(q) for q in self.p.questions])

    def _keep_dropped(self) -> list:
        """A list that collects the events an operation that fails takes out of the trace.

        A failing operation leaves no events behind but its error (the state is as before);
        the decisions that led to the failure still say why, so they are kept here.
        """
        dropped: list = []
        trace, truncate = self.trace, type(self.trace)._truncate

        def keep(n: int) -> None:
            dropped.extend(trace.events[n:])
            truncate(trace, n)

        trace._truncate = keep
        return dropped

    def do(self, op: Op):
        proc = self.procs[op.who]
        if op.kind == "mmap":
            f = {"anon": None, "mem-dev": self.mem, "mem-ram": self.mem, "xip": self.file}[op.backing]
            offset = {"mem-dev": DEV_PFN * PAGE_SIZE, "mem-ram": self.buf[0].pfn * PAGE_SIZE}
            self.addrs[op.name] = proc.mmap(op.npages * PAGE_SIZE, "rw", op.flags, file=f,
                                            offset=offset.get(op.backing, 0))
            return None
        addr = self.addrs.get(op.name, 0) + op.page * PAGE_SIZE
        if op.kind == "read":
            return proc.read(addr, 1)
        if op.kind == "write":
            return proc.write(addr, op.data)
        if op.kind == "fork":
            self.procs["child"] = proc.fork("child")
            return None
        if op.kind == "exit":
            proc.exit()
            del self.procs[op.who]
            return None
        if op.kind in ("mprotect", "madvise", "mremap"):
            return self._vma_call(proc, op, addr)
        if op.kind not in ("gup", "gup_fast"):
            raise ValueError(f"practice: unknown operation kind {op.kind!r}")
        fn = proc.get_user_pages if op.kind == "gup" else proc.get_user_pages_fast
        try:
            return fn(addr, op.npages, write=op.write)
        except KernelError as e:
            return e

    def _vma_call(self, proc, op: Op, addr: int):
        """mprotect, madvise or mremap: 0, 'the same address' / 'a new address', or the
        KernelError (a refused call changes nothing)."""
        try:
            if op.kind == "mprotect":
                return proc.mprotect(addr, op.npages * PAGE_SIZE, op.prot)
            if op.kind == "madvise":
                return proc.madvise(addr, op.npages * PAGE_SIZE, "dontneed")
            old = self.addrs[op.name]
            new = proc.mremap(old, op.npages * PAGE_SIZE, op.new_npages * PAGE_SIZE, may_move=op.may_move)
        except KernelError as e:
            return e
        self.addrs[op.name] = new
        return "the same address" if new == old else "a new address"

    # -- answers ---------------------------------------------------------------------------

    def answer(self, q: Question) -> Answer:
        if q.kind in ("read", "gup", "fallback", "call"):
            value = getattr(self, f"_{q.kind}")(q)
            return Answer(q, value, self._op_rows(q.step))
        proc = self.procs[q.who]
        addr = self.addrs[q.name] + q.page * PAGE_SIZE
        pte = proc.follow_pte(addr)
        value, rows = getattr(self, f"_{q.kind}")(q, proc, addr, pte)
        return Answer(q, value, tuple(dict.fromkeys(self._pte_rows(proc, addr) + rows)))

    def _read(self, q: Question) -> str:
        byte = self.results[q.step]
        return "0" if byte == b"\0" else byte.decode()

    def _gup(self, q: Question) -> str:
        r = self.results[q.step]
        if isinstance(r, KernelError):
            return errno.errorcode[r.errno]
        return f"{len(r)} page{'s' if len(r) != 1 else ''}"

    def _call(self, q: Question) -> str:
        r = self.results[q.step]
        return errno.errorcode[r.errno] if isinstance(r, KernelError) else str(r)

    def _fallback(self, q: Question) -> str:
        base = self.addrs[self.p.ops[q.step].name]
        for e in self._op_events(q.step):
            if e.func == "get_user_pages_fast" and ("no lockless walk" in e.text
                                                    or "has no get_user_pages_fast" in e.text):
                return "no lockless walk on this profile"
            if e.func == "gup_pte_range" and "fall back" in e.text:
                addr = int(e.text.split(":")[0], 16)
                return f"at {q.name}[{(addr - base) // PAGE_SIZE}]"
        return "it never falls back"

    def _pte(self, q, proc, addr, pte):
        if pte is None:
            return "none", ()
        state = "writable" if pte.write else "read-only"
        return state + (" special" if pte.special else ""), ()

    def _kind(self, q, proc, addr, pte):
        if pte is None:
            return "no pte", ()
        if self.k.is_zero_pfn(pte.pfn):
            return "the zero page", ()
        if pte.pfn < RAM_PAGES:
            return "a RAM page", ()
        return KIND_CHOICES[3 if self.k.pfn_valid(pte.pfn) else 2], ()

    def _same(self, q, proc, addr, pte):
        other = self.procs[q.other].follow_pte(addr)
        rows = self._pte_rows(self.procs[q.other], addr)
        if pte is None and other is None:
            return "neither has a pte", rows
        if pte is None or other is None:
            return "only one of them has a pte", rows
        return ("yes" if pte.pfn == other.pfn else "no"), rows

    def _counts(self, q, proc, addr, pte):
        if pte is None:
            return "no pte", ()
        if self.k.is_zero_pfn(pte.pfn):
            return "zero page", ()
        if not self.k.pfn_valid(pte.pfn):
            return "no struct page", ()
        page = self.k.pfn_to_page(pte.pfn)
        return f"{self.k.page_count(page)}/{self.k.page_mapcount(page)}", self._page_rows(pte.pfn)

    def _normal(self, q, proc, addr, pte):
        if pte is None:
            return "no pte", ()
        start = len(self.trace.events)
        page = self.k.vm_normal_page(proc.find_vma(addr), addr, pte)
        rows = self._rows(start, len(self.trace.events))
        return ("NULL" if page is None else "a struct page"), rows

    # -- the rows that decide ----------------------------------------------------------------

    def _op_events(self, i: int) -> list:
        """The events of operation i, with those its failure (if any) took out of the trace."""
        start, end = self.spans[i]
        return self.trace.events[start:end] + self.undone[i]

    def _op_rows(self, i: int) -> tuple:
        return self._event_rows(self._op_events(i))

    def _rows(self, start: int, end: int) -> tuple:
        return self._event_rows(self.trace.events[start:end])

    @staticmethod
    def _event_rows(events) -> tuple:
        """(row, 'func: text') of every decision among events, once each."""
        out, seen = [], set()
        for e in events:
            if e.kind == "decision" and e.row and (e.row, e.func, e.text) not in seen:
                seen.add((e.row, e.func, e.text))
                out.append((e.row, f"{e.func}: {e.text}"))
        return tuple(out)

    def _last_span(self, hit) -> tuple:
        """Decision rows of the last operation with an event for which hit(event) is true."""
        for i in reversed(range(len(self.spans))):
            if any(hit(e) for e in self.trace.events[slice(*self.spans[i])]):
                return self._op_rows(i)
        return ()

    def _pte_rows(self, proc, addr: int) -> tuple:
        """Rows of the last operation that changed proc's pte at addr (or its linear run);
        the accessed and dirty bits the MMU sets do not count as a change."""
        def hit(e):
            d = e.delta
            if d is None or d[0] == "runs":
                return d is not None and d[1] == proc.pid
            return d[0] == "pte" and d[1] == (proc.pid, addr) and _pte_key(d[2]) != _pte_key(d[3])
        return self._last_span(hit)

    def _page_rows(self, pfn: int) -> tuple:
        """Rows of the last operation that changed the counts of the struct page of pfn."""
        return self._last_span(lambda e: e.delta is not None and e.delta[:2] == ("page", pfn))


def _pte_key(pte) -> tuple | None:
    """What a question can ask about a pte: its pfn and its write and special bits."""
    return None if pte is None else (pte.pfn, pte.write, pte.special)


# -- generators ------------------------------------------------------------------------------


class _Gen:
    """Builds a problem from one random source: ops first, then questions about them."""

    def __init__(self, topic: str, seed: int, rng: random.Random):
        self.topic, self.seed, self.rng = topic, seed, rng
        self.ops: list[Op] = []
        self.maps: dict[str, int] = {}        # mapping name -> npages
        self.alive = ["parent"]
        self.questions: list[Question] = []
        self.version, self.arch = rng.choice(TOPIC_PROFILES[topic])
        self.holes: tuple = ()
        self.file_pages = 0
        self.letters = iter("pqrstuvwxyz")

    def problem(self) -> Problem:
        qs = tuple(Question(**{**q.__dict__, "qid": f"q{i + 1}"}) for i, q in enumerate(self.questions))
        return Problem(self.topic, self.seed, self.version, self.arch, self.holes, self.file_pages,
                       tuple(self.ops), qs)

    # operations

    def mmap(self, name, npages, flags="private", backing="anon"):
        self.ops.append(Op("mmap", name=name, npages=npages, flags=flags, backing=backing))
        self.maps[name] = npages

    def access(self, name, who=None, write=None, page=None):
        r = self.rng
        who = who or r.choice(self.alive)
        page = r.randrange(self.maps[name]) if page is None else page
        write = r.random() < 0.5 if write is None else write
        if write:
            self.ops.append(Op("write", who, name, page, data=next(self.letters).encode()))
        else:
            self.ops.append(Op("read", who, name, page))

    def fork(self):
        self.ops.append(Op("fork"))
        self.alive.append("child")

    def exit_child(self):
        self.ops.append(Op("exit", "child"))
        self.alive.remove("child")

    # questions

    def ask(self, kind, name, page=None, who=None, **kw):
        who = who or self.rng.choice(self.alive)
        page = self.rng.randrange(self.maps[name]) if page is None else page
        where = f"{who}'s pte for {name}[{page}]"
        text, choices, hint = {
            "pte": (f"After the last step, what is {where}?", PTE_CHOICES, ""),
            "kind": (f"After the last step, what does {where} map?", KIND_CHOICES, ""),
            "counts": (f"After the last step, what are page_count/page_mapcount of the frame {where} maps?",
                       (), COUNTS_HINT),
            "normal": (f"After the last step, what does vm_normal_page return for {where}?",
                       NORMAL_CHOICES, ""),
        }[kind]
        self.questions.append(Question("", kind, text, who, name, page, choices=choices, hint=hint, **kw))

    def ask_same(self, name, page=None):
        page = self.rng.randrange(self.maps[name]) if page is None else page
        self.questions.append(Question("", "same", f"After the last step, do parent and child map "
                                       f"the same frame at {name}[{page}]?", "parent", name, page,
                                       other="child", choices=SAME_CHOICES))

    def ask_read(self):
        reads = [i for i, op in enumerate(self.ops) if op.kind == "read"]
        if reads:
            i = reads[-1] if self.rng.random() < 0.7 else self.rng.choice(reads)
            self.questions.append(Question("", "read", f"What byte does step {i + 1} read?", step=i,
                                           hint="the letter, or 0 for a zero byte"))

    def ask_call(self, i):
        self.questions.append(Question("", "call", f"What does step {i + 1} return?", step=i,
                                       name=self.ops[i].name, hint=CALL_HINT))

    def ask_gup(self, i):
        op = self.ops[i]
        self.questions.append(Question("", "gup", f"What does step {i + 1} return?", step=i, name=op.name,
                                       hint="N pages (how many), or the errno name, e.g. EFAULT"))
        if op.kind == "gup_fast":
            choices = ("no lockless walk on this profile", "it never falls back") + tuple(
                f"at {op.name}[{op.page + j}]" for j in range(op.npages))
            self.questions.append(Question("", "fallback", f"In step {i + 1}, where does "
                                           "get_user_pages_fast hand over to the slow path?", step=i,
                                           name=op.name, choices=choices))


def _gen_cow(g: _Gen) -> None:
    r = g.rng
    n = r.randint(2, 3)
    g.mmap("a", n)
    for _ in range(r.randint(1, 3)):
        g.access("a", "parent")
    g.fork()
    for _ in range(r.randint(1, 3)):
        g.access("a")
    if r.random() < 0.3:
        g.exit_child()
        g.access("a", "parent", write=True)
    if r.random() < 0.6:
        g.access("a", write=False)
    _ask_mix(g, "a", ("pte", "counts", "kind", "same"))


def _gen_pfnmap(g: _Gen) -> None:
    r = g.rng
    backing = r.choice(("mem-dev", "mem-ram"))
    g.mmap("m", r.randint(1, 2), r.choice(("private", "shared")), backing)
    for _ in range(r.randint(1, 3)):
        g.access("m", "parent")
    if r.random() < 0.6:
        g.fork()
        for _ in range(r.randint(1, 2)):
            g.access("m")
    _ask_mix(g, "m", ("pte", "normal", "kind", "counts", "same"))


def _gen_mixedmap(g: _Gen) -> None:
    r = g.rng
    g.file_pages = 3
    g.holes = tuple(sorted(r.sample(range(3), r.randint(1, 2))))
    g.mmap("x", 3, r.choice(("private", "shared")), "xip")
    for _ in range(r.randint(2, 4)):
        g.access("x", "parent")
    if r.random() < 0.5:
        g.fork()
        g.access("x")
    _ask_mix(g, "x", ("pte", "kind", "counts", "normal", "same"))


def _gen_special(g: _Gen) -> None:
    r = g.rng
    kinds = r.sample(("anon", "mem-dev", "mem-ram", "xip"), r.randint(2, 3))
    if "xip" in kinds:
        g.file_pages = 2
        g.holes = (r.randrange(2),)
    for name, backing in zip("abc", kinds):
        g.mmap(name, 2 if backing != "mem-ram" else 1, r.choice(("private", "shared")), backing)
    for name in g.maps:
        g.access(name, "parent", page=r.randrange(g.maps[name]))
    if r.random() < 0.5:
        g.access(r.choice(list(g.maps)), "parent")
    for name in g.maps:
        g.ask("normal", name, who="parent")
    for name in r.sample(list(g.maps), 2):
        g.ask("pte", name, who="parent")
    g.ask_read()


def _gen_gup(g: _Gen) -> None:
    r = g.rng
    g.mmap("a", 4)
    for page in r.sample(range(4), r.randint(1, 3)):
        g.access("a", "parent", page=page)
    if r.random() < 0.4:
        g.fork()
    if r.random() < 0.4:
        backing = r.choice(("mem-dev", "xip"))
        if backing == "xip":
            g.file_pages, g.holes = 2, (r.randrange(2),)
        g.mmap("m", 2, r.choice(("private", "shared")), backing)
        g.access("m", "parent")
    for _ in range(r.randint(1, 2)):
        name = r.choice(list(g.maps))
        start = r.randrange(g.maps[name])
        n = r.randint(1, g.maps[name] - start)
        g.ops.append(Op(r.choice(("gup", "gup_fast", "gup_fast")), "parent", name, start, n,
                        write=r.random() < 0.5))
        g.ask_gup(len(g.ops) - 1)
    taken = [op.page for op in g.ops if op.kind.startswith("gup") and op.name == "a"]
    g.ask("counts", "a", page=taken[0] if taken and r.random() < 0.7 else None, who="parent")
    if len(g.questions) < 4:
        g.ask("pte", "a", who="parent")


def _gen_protect(g: _Gen) -> None:
    """A mapping, some accesses, then mprotect, madvise(MADV_DONTNEED) or mremap on it
    (kernel-facts §16): what each call returns and what the ptes and counts are after it."""
    r = g.rng
    backing = r.choice(("anon", "mem-dev", "mem-ram", "xip"))
    n = 1 if backing == "mem-ram" else r.randint(2, 3)
    if backing == "xip":
        g.file_pages, g.holes = 4, (r.randrange(4),)
    g.mmap("m", n, r.choice(("private", "shared")), backing)
    for page in r.sample(range(n), r.randint(1, n)):
        g.access("m", "parent", page=page)
    calls = r.sample(("mprotect", "madvise", "mremap"), r.randint(1, 2))
    for call in calls:
        if call == "mprotect":
            page = r.randrange(g.maps["m"])
            prot = r.choice(("r", "r", "none"))
            g.ops.append(Op("mprotect", "parent", "m", page, r.randint(1, g.maps["m"] - page), prot=prot))
            g.ask_call(len(g.ops) - 1)
            if r.random() < 0.5:
                g.ops.append(Op("mprotect", "parent", "m", 0, g.maps["m"], prot="rw"))
        elif call == "madvise":
            page = r.randrange(g.maps["m"])
            g.ops.append(Op("madvise", "parent", "m", page, r.randint(1, g.maps["m"] - page)))
            g.ask_call(len(g.ops) - 1)
        else:
            old = g.maps["m"]
            new = r.choice([k for k in range(1, 5) if k != old] + [old + 1])
            if r.random() < 0.3:
                g.mmap("blocker", 1)            # often lands right after m: growth must move
            g.ops.append(Op("mremap", "parent", "m", 0, old, new_npages=new, may_move=r.random() < 0.5))
            g.ask_call(len(g.ops) - 1)
            g.maps["m"] = min(old, new)
    if r.random() < 0.6:
        g.access("m", "parent", write=False, page=r.randrange(g.maps["m"]))
    for kind in r.sample(("pte", "counts", "normal"), 2):
        g.ask(kind, "m", who="parent")
    g.ask_read()


def _ask_mix(g: _Gen, name: str, kinds: tuple) -> None:
    """Four or five questions of the kinds given (same only if a child is alive), and a read."""
    r = g.rng
    kinds = [k for k in kinds if k != "same" or "child" in g.alive]
    for kind in r.sample(kinds, min(len(kinds), r.randint(3, 4))):
        if kind == "same":
            g.ask_same(name)
        else:
            g.ask(kind, name)
    g.ask_read()


GENERATORS = {"cow": _gen_cow, "pfnmap": _gen_pfnmap, "mixedmap": _gen_mixedmap,
              "special": _gen_special, "gup": _gen_gup, "protect": _gen_protect}
MAX_DRAWS = 50


def check_topic(topic) -> str:
    if topic not in TOPICS:
        raise ValueError(f"unknown practice topic {topic!r}: choose one of {', '.join(TOPICS)}")
    return topic


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"practice seed must be an int, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"practice seed must be in 0..{MAX_SEED}, got {seed}")
    return seed


def generate(topic: str, seed: int) -> Problem:
    """The problem of `topic` for `seed` (the same pair always gives the same problem).

    Draws are repeated (from the same random source) until the simulator runs every step
    without an error, so every problem is one the kernel can answer.
    """
    check_topic(topic)
    check_seed(seed)
    rng = random.Random(f"vmlib.practice:{topic}:{seed}")
    for _ in range(MAX_DRAWS):
        g = _Gen(topic, seed, rng)
        GENERATORS[topic](g)
        problem = g.problem()
        try:
            problem.solve()
        except VmError:
            continue
        return problem
    raise RuntimeError(f"practice: no valid {topic} problem in {MAX_DRAWS} draws for seed {seed}")


# -- command line --------------------------------------------------------------------------


def _seed_arg(text: str) -> int:
    try:
        return check_seed(int(text))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"seed must be a whole number in 0..{MAX_SEED}, got {text!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vmlib.practice",
        description="Print a seeded practice problem about Linux memory mapping; -c adds the answers "
                    "(computed by the simulator) and the kernel-facts rows that decide them.")
    parser.add_argument("-t", "--topic", choices=TOPICS, help="what to practise (default: from the seed)")
    parser.add_argument("-s", "--seed", type=_seed_arg, help="problem number (default: a random one)")
    parser.add_argument("-c", "--compute", action="store_true", help="also print the answers")
    args = parser.parse_args(argv)
    seed = random.SystemRandom().randrange(MAX_SEED + 1) if args.seed is None else args.seed
    topic = args.topic or TOPICS[seed % len(TOPICS)]
    problem = generate(topic, seed)
    print(problem.text())
    if args.compute:
        print()
        print(problem.solve().text())
    else:
        print(f"\n(answers: python -m vmlib.practice --topic {topic} --seed {seed} -c)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
