"""Simulator-graded suites: the student's function decides inside a kernel that runs on the clean side.

The scenarios (mmap /dev/mem, fork, write, exit, ...) run in the clean runner, never in the
student's process. Each time the kernel asks one of the overridden decision functions
(`k.override(vm_normal_page=...)`), the question is written down as plain data: the world (profile,
RAM, device memory), the vma, the address, the pte, the struct page behind it. The student's
function answers those questions in the child process (vmlib.grading.child), on stand-ins
(SimKernel, SimVma, SimPage) rebuilt from that data; only the answers come back, as JSON.
The runner then replays each scenario with the student's answers plugged in, asks again for
questions it had not seen (a wrong answer leads the kernel somewhere new), and compares step by
step with a run of the reference: the first call whose answer differs, and the first step whose
outcome or state (k.snapshot(), k.check()) differs, which is where the wrong answer shows its
consequence (BadPageState, BadPageMap, KernelBug, InvariantError).

A student function must be a function of its arguments (no state kept between calls).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from vmlib.errors import BadPageMap, InvariantError, VmError
from vmlib.flags import (
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    flag_names,
    is_cow_mapping,
)
from vmlib.grading.suites import Case, Suite, register
from vmlib.profiles import make_profile
from vmlib.pte import Pte

MAX_ROUNDS = 5           # worker runs per check at most: asking again for questions a wrong answer raised


# ---- questions as data ------------------------------------------------------------------------

def world_of(k) -> dict:
    """The facts about a kernel a decision function may ask: profile, RAM, device memory."""
    return {"version": k.profile.version, "arch": k.profile.arch, "ram_pages": k.phys.ram_pages,
            "zero_pfn": k.zero_pfn, "devices": [[d.name, d.start_pfn, d.npages] for d in k.phys.devices]}


def _vma(vma) -> dict:
    return {"vm_start": vma.vm_start, "vm_end": vma.vm_end, "vm_flags": vma.vm_flags, "vm_pgoff": vma.vm_pgoff}


def _pte(pte) -> dict | None:
    return None if pte is None else {"pfn": pte.pfn, "bits": pte.bits}


def _page(k, pfn) -> dict | None:
    """The struct page of pfn as data, or None if the pfn has none."""
    if pfn is None or not k.pfn_valid(pfn):
        return None
    p = k.phys.page(pfn)
    return {"pfn": pfn, "count": p._count, "mapcount": p._mapcount + 1, "anon": p.anon,
            "exclusive": p.exclusive, "reserved": p.reserved,
            "mapping": p.mapping.name if p.mapping is not None else None, "index": p.index}


def encode_call(fn: str, k, args: tuple) -> dict:
    """The question `fn(k, *args)` as JSON data (what the student's function will be shown)."""
    q = {"fn": fn, "world": world_of(k)}
    if fn == "vm_normal_page":
        vma, addr, pte = args
        q.update(vma=_vma(vma), addr=addr, pte=_pte(pte), page=_page(k, pte.pfn))
    elif fn == "remap_pfn_range_check":
        vma, addr, end = args
        q.update(vma=_vma(vma), addr=addr, end=end)
    elif fn == "insert_mixed_decision":
        vma, pfn = args
        q.update(vma=_vma(vma), pfn=pfn, page=_page(k, pfn))
    elif fn == "do_wp_page_decision":
        vma, page, pte = args
        q.update(vma=_vma(vma), pte=_pte(pte), page=None if page is None else _page(k, page.pfn))
    elif fn == "gup_fast_pte_ok":
        pte, write = args
        q.update(pte=_pte(pte), write=bool(write), page=_page(k, pte.pfn if pte else None))
    elif fn in ("copy_one_pte_decision", "zap_pte_decision"):
        vma, pte, page = args
        q.update(vma=_vma(vma), pte=_pte(pte), page=None if page is None else _page(k, page.pfn))
    elif fn == "do_fault_decision":
        vma, ret, write = args
        q.update(vma=_vma(vma), ret=ret, write=bool(write))
    else:
        raise ValueError(f"no question format for {fn!r}")
    return q


def key_of(q: dict) -> str:
    return json.dumps(q, sort_keys=True)


# ---- stand-ins the student's function sees (student side) ---------------------------------------

class SimPage:
    """A struct page as data: pfn, refcount (_count), _mapcount (-1 = unmapped), anon, ..."""

    def __init__(self, pfn, count=None, mapcount=None, anon=False, exclusive=False, reserved=False,
                 mapping=None, index=None):
        self.pfn, self.anon, self.exclusive, self.reserved = pfn, anon, exclusive, reserved
        self._count = count
        self._mapcount = None if mapcount is None else mapcount - 1
        self.mapping, self.index = mapping, index

    def __repr__(self):
        return f"<page {self.pfn}>"


class SimVma:
    """A vma as data: vm_start, vm_end, vm_flags, vm_pgoff, linear_pgoff(addr)."""

    def __init__(self, vm_start, vm_end, vm_flags, vm_pgoff):
        self.vm_start, self.vm_end, self.vm_flags, self.vm_pgoff = vm_start, vm_end, vm_flags, vm_pgoff

    @property
    def npages(self) -> int:
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT

    def linear_pgoff(self, addr: int) -> int:
        """vm_pgoff + page offset of addr in the vma (the linear rule)."""
        return self.vm_pgoff + ((addr - self.vm_start) >> PAGE_SHIFT)

    def __repr__(self):
        return f"<vma {self.vm_start:#x}-{self.vm_end:#x} {flag_names(self.vm_flags)} pgoff={self.vm_pgoff:#x}>"


class SimKernel:
    """The kernel as a decision function may ask it: profile, pfn_valid, pfn_to_page, ..."""

    def __init__(self, world: dict, pages: list):
        self.profile = make_profile(world["version"], world["arch"])
        self.zero_pfn = world["zero_pfn"]
        self._ram = world["ram_pages"]
        self._devices = world["devices"]
        self._pages = {p["pfn"]: p for p in pages if p}

    def pfn_valid(self, pfn: int) -> bool:
        """True iff pfn has a struct page (it is RAM)."""
        return isinstance(pfn, int) and 0 <= pfn < self._ram

    def pfn_to_page(self, pfn: int) -> SimPage:
        """The struct page of pfn; BadPageMap if there is none (device memory)."""
        if not self.pfn_valid(pfn):
            dev = next((d for d in self._devices if d[1] <= pfn < d[1] + d[2]), None)
            what = f"device memory {dev[0]!r}" if dev else "no memory at all"
            raise BadPageMap(f"pfn_to_page: pfn {pfn} has no struct page (pfn_valid is false: {what})")
        info = self._pages.get(pfn, {"pfn": pfn})
        return SimPage(**info)

    def page_count(self, page) -> int:
        return page._count

    def page_mapcount(self, page) -> int:
        return page._mapcount + 1

    def is_zero_pfn(self, pfn: int) -> bool:
        return pfn == self.zero_pfn

    def is_cow_mapping(self, vm_flags: int) -> bool:
        return is_cow_mapping(vm_flags)


# ---- drivers as the student side sees them: a kernel that writes down the calls --------------------

MAX_ACTIONS = 64
ACTIONS = {"vm_flags": 2, "vm_pgoff": 1, "remap_pfn_range": 4, "vm_insert_pfn": 2, "vm_insert_mixed": 2,
           "vm_insert_page": 2, "vmf_insert_pfn": 2, "vmf_insert_mixed": 2, "get_page": 1, "put_page": 1}


class SimVmf:
    """A fault as data: address, pgoff, write; a handler may set .page (to a page from k.pfn_to_page)."""

    def __init__(self, address, pgoff, write):
        self.address, self.pgoff, self.write, self.page = address, pgoff, write, None

    def __repr__(self):
        return f"<vmf {self.address:#x} pgoff {self.pgoff} {'write' if self.write else 'read'}>"


class RecKernel(SimKernel):
    """SimKernel that also takes a driver's kernel calls and writes them down, in order, as data
    (`actions`): the clean side replays them on the real kernel. Each call here succeeds (0, or
    VM_FAULT_NOPAGE from vmf_*); what it really returns is known only in the replay."""

    def __init__(self, world: dict, vma: SimVma):
        super().__init__(world, [])
        self.actions: list[list] = []
        self._vma = vma
        self._seen = (vma.vm_flags, vma.vm_pgoff)

    def sync(self) -> None:
        """Write down what the driver changed in vma.vm_flags (bits set, bits cleared) and vm_pgoff."""
        flags, pgoff = self._vma.vm_flags, self._vma.vm_pgoff
        if type(flags) is not int or type(pgoff) is not int:
            raise TypeError(f"vma.vm_flags and vma.vm_pgoff must stay ints, got {flags!r} and {pgoff!r}")
        old_flags, old_pgoff = self._seen
        if flags != old_flags:
            self.actions.append(["vm_flags", flags & ~old_flags, old_flags & ~flags])
        if pgoff != old_pgoff:
            self.actions.append(["vm_pgoff", pgoff])
        self._seen = (flags, pgoff)

    def _record(self, name: str, vma, *args) -> None:
        if vma is not None and vma is not self._vma:
            raise ValueError(f"{name}: pass the vma your mmap/fault was given")
        bad = [a for a in args if type(a) is not int or abs(a) >= 1 << 64]
        if bad:
            raise TypeError(f"{name}: addresses, pfns and sizes are ints, got {bad[0]!r}")
        self.sync()
        self.actions.append([name, *args])
        if len(self.actions) > MAX_ACTIONS:
            raise RuntimeError(f"more than {MAX_ACTIONS} kernel calls in one mmap or fault")

    @staticmethod
    def _pfn_of(page) -> int:
        pfn = getattr(page, "pfn", None)
        if type(pfn) is not int:
            raise TypeError(f"expected a page from k.pfn_to_page, got {page!r}")
        return pfn

    def remap_pfn_range(self, vma, addr, pfn, size, prot=None) -> int:
        self._record("remap_pfn_range", vma, addr, pfn, size, vma.vm_page_prot if prot is None else prot)
        return 0

    def vm_insert_pfn(self, vma, addr, pfn) -> int:
        self._record("vm_insert_pfn", vma, addr, pfn)
        return 0

    def vm_insert_mixed(self, vma, addr, pfn) -> int:
        self._record("vm_insert_mixed", vma, addr, pfn)
        return 0

    def vm_insert_page(self, vma, addr, page) -> int:
        self._record("vm_insert_page", vma, addr, self._pfn_of(page))
        return 0

    def vmf_insert_pfn(self, vma, addr, pfn) -> int:
        self._record("vmf_insert_pfn", vma, addr, pfn)
        return VM_FAULT_NOPAGE

    def vmf_insert_mixed(self, vma, addr, pfn) -> int:
        self._record("vmf_insert_mixed", vma, addr, pfn)
        return VM_FAULT_NOPAGE

    def get_page(self, page) -> None:
        self._record("get_page", None, self._pfn_of(page))

    def put_page(self, page) -> None:
        self._record("put_page", None, self._pfn_of(page))


def device_of(q: dict):
    """The device a driver question is about, rebuilt from its data (an Nvram, a PacketRing, an Aperture)."""
    from vmlib.drivers.aperture import Aperture
    from vmlib.drivers.nvram import Nvram
    from vmlib.drivers.ring import PacketRing
    kinds = {"nvram": Nvram, "ring": PacketRing, "aperture": Aperture}
    if q.get("device_kind", "nvram") not in kinds:
        raise ValueError(f"unknown device kind {q.get('device_kind')!r}")
    return kinds[q.get("device_kind", "nvram")](q["device"])


def driver_answer(cls, q: dict) -> dict:
    """Run `cls(nv).mmap` or `.fault` on stand-ins built from question q; what it did, as JSON.

    A kernel error the driver ran into (BadPageMap from pfn_to_page of a device pfn) is part of
    the answer ("raised"): the replay raises it in the real kernel after the calls made before it.
    """
    v = q["vma"]
    vma = SimVma(v["vm_start"], v["vm_end"], v["vm_flags"], v["vm_pgoff"])
    vma.vm_page_prot = v["vm_page_prot"]
    k = RecKernel(q["world"], vma)
    vmf = None if q["vmf"] is None else SimVmf(**q["vmf"])
    drv = cls(device_of(q))
    fault = getattr(drv, "fault", None)
    if q["op"] == "fault" and not callable(fault):
        raise TypeError(f"{cls.__name__} has no fault method")
    ret, raised = 0, None
    try:
        ret = drv.mmap(k, vma) if q["op"] == "mmap" else fault(k, vma, vmf)
    except VmError as e:
        raised = f"{type(e).__name__}: {e}"[:300]
    k.sync()
    if type(ret) is not int:
        want = "0 or a negative errno" if q["op"] == "mmap" else "VM_FAULT_* bits (an int)"
        raise TypeError(f"{cls.__name__}.{q['op']} must return {want}, got {ret!r}")
    page = None if vmf is None or vmf.page is None else RecKernel._pfn_of(vmf.page)
    return {"actions": k.actions, "ret": ret, "page": page, "raised": raised, "fault": callable(fault)}


def driver_answer_ok(a) -> bool:
    """Whether `a` (untrusted) has the form driver_answer gives."""
    def action_ok(x):
        return (isinstance(x, list) and x and x[0] in ACTIONS and len(x) == ACTIONS[x[0]] + 1
                and all(type(v) is int and abs(v) < 1 << 64 for v in x[1:]))
    return (isinstance(a, dict) and set(a) == {"actions", "ret", "page", "raised", "fault"}
            and isinstance(a["actions"], list) and len(a["actions"]) <= MAX_ACTIONS + 2
            and all(action_ok(x) for x in a["actions"]) and type(a["ret"]) is int and abs(a["ret"]) < 1 << 32
            and (a["page"] is None or type(a["page"]) is int) and type(a["fault"]) is bool
            and (a["raised"] is None or isinstance(a["raised"], str) and len(a["raised"]) <= 300))


def _sim_args(q: dict) -> tuple:
    k = SimKernel(q["world"], [q.get("page")])
    vma = SimVma(**q["vma"]) if "vma" in q else None
    pte = Pte(q["pte"]["pfn"], q["pte"]["bits"]) if q.get("pte") else None
    fn = q["fn"]
    if fn == "vm_normal_page":
        return k, vma, q["addr"], pte
    if fn == "remap_pfn_range_check":
        return k, vma, q["addr"], q["end"]
    if fn == "insert_mixed_decision":
        return k, vma, q["pfn"]
    if fn == "do_wp_page_decision":
        return k, vma, SimPage(**q["page"]) if q["page"] else None, pte
    if fn in ("copy_one_pte_decision", "zap_pte_decision"):
        return k, vma, pte, SimPage(**q["page"]) if q["page"] else None
    if fn == "do_fault_decision":
        return k, vma, q["ret"], q["write"]
    return k, pte, q["write"]


def _answer(fn: str, result):
    """The student's result as JSON; TypeError saying what to return when it has the wrong shape."""
    if fn == "vm_normal_page":
        if result is None:
            return None
        if isinstance(getattr(result, "pfn", None), int):
            return {"page": result.pfn}
        raise TypeError(f"vm_normal_page must return a page (from k.pfn_to_page) or None, got {result!r}")
    if fn == "remap_pfn_range_check":
        if isinstance(result, int) and not isinstance(result, bool):
            return result
        raise TypeError(f"remap_pfn_range_check must return 0 or a negative errno, got {result!r}")
    if fn == "insert_mixed_decision":
        if result in ("page", "pfn"):
            return result
        raise TypeError(f"insert_mixed_decision must return \"page\" or \"pfn\", got {result!r}")
    if fn == "do_wp_page_decision":
        way = result[0] if isinstance(result, tuple) and result else result
        if way in ("reuse", "copy"):
            return way
        raise TypeError(f"do_wp_page_decision must return \"reuse\" or \"copy\", got {result!r}")
    if fn == "copy_one_pte_decision":
        if isinstance(result, (tuple, list)) and len(result) == 2 and all(type(x) is bool for x in result):
            return list(result)
        raise TypeError(f"copy_one_pte_decision must return (write_protect, counted), two bools, got {result!r}")
    if fn == "zap_pte_decision":
        if result in (None, "anon", "file"):
            return result
        raise TypeError(f"zap_pte_decision must return None, \"anon\" or \"file\", got {result!r}")
    if fn == "do_fault_decision":
        if result in ("return", "map", "cow"):
            return result
        raise TypeError(f"do_fault_decision must return \"return\", \"map\" or \"cow\", got {result!r}")
    if isinstance(result, bool):
        return result
    raise TypeError(f"gup_fast_pte_ok must return True or False, got {result!r}")


def call_student(bound: dict, case: Case):
    """Student side: answer one question with the student's function (Suite.run_case)."""
    q = case.args[0]
    if "op" in q:
        return driver_answer(bound[case.fn], q)
    return _answer(q["fn"], bound[case.fn](*_sim_args(q)))


def call_only(bound: dict, case: Case):
    """Student side: answer with the suite's one function, whichever decision is asked (ps9's `fixed`)."""
    if not bound:
        raise NameError("the function is not defined: run the cell that defines it, and make sure it raises nothing")
    [fn] = bound.values()
    q = case.args[0]
    return _answer(q["fn"], fn(*_sim_args(q)))


# ---- scenarios (clean side) ---------------------------------------------------------------------

class StudentFailed(Exception):
    """The student's function could not answer (raised, called the reference, was missing)."""


class StopScenario(Exception):
    pass


@dataclass
class Scenario:
    """A named run: `play(w)` builds a world on w.k and performs steps with w.step(text, thunk)."""

    name: str
    version: str
    arch: str
    play: Callable
    ram_pages: int = 64
    asker: Decisions | None = None     # how its deciders are asked and judged (None: DECISIONS)

    def __post_init__(self):
        self.asker = self.asker or DECISIONS


class World:
    """One run of a scenario: the kernel, its steps and every question its deciders were asked."""

    def __init__(self, sc: Scenario, overrides: dict):
        from vmlib.kernel import Kernel
        self.k = Kernel(sc.version, sc.arch, ram_pages=sc.ram_pages)
        self.overrides = overrides
        self.steps: list[tuple[str, str, dict]] = []     # (text, outcome, state)
        self.calls: list[dict] = []
        self.text = "setting up"

    def step(self, text: str, thunk: Callable):
        """Perform one step; record its outcome, k.check() and the state after it.

        Whatever the step raises is its outcome: a wrong answer can take the kernel where the
        scenario did not expect to go (an mmap refused, then an munmap of nothing), and that must
        show in the feedback as this step, never end the grading.
        """
        self.text = text
        value, outcome = None, "ok"
        try:
            with self.k.override(**self.overrides):
                value = thunk()
        except StudentFailed as e:
            self.steps.append((text, f"stopped: {e}", {}))
            raise StopScenario() from None
        except VmError as e:
            outcome = f"{type(e).__name__}: {e}"
        except (TypeError, AttributeError):
            outcome = "not run: an earlier step failed"
        except Exception as e:  # noqa: BLE001 - see the docstring
            outcome = f"{FAILED}{type(e).__name__}: {e}"
        if outcome == "ok" and isinstance(value, (int, bool, str)) and not isinstance(value, bool):
            outcome = f"returned {value:#x}" if isinstance(value, int) and value > 4096 else f"returned {value!r}"
        if isinstance(value, list):
            outcome = f"returned {len(value)} page(s)"
        try:
            self.k.check()
        except InvariantError as e:
            outcome += f"; then k.check() fails: {e}"
        except Exception as e:  # noqa: BLE001 - a kernel left half-way by a failed step
            outcome += f"; then k.check() cannot run: {type(e).__name__}: {e}"
        try:
            state = state_of(self.k)
        except Exception as e:  # noqa: BLE001
            state = {"the kernel's state": f"unreadable: {type(e).__name__}: {e}"}
        self.steps.append((text, outcome, state))
        return value


FAILED = "failed: "     # outcome prefix of a step that raised something the kernel never raises


def state_of(k) -> dict:
    """The visible state as comparable data: page counts, ptes (by process name), rss."""
    snap = k.snapshot()
    state = {}
    for pfn, info in snap.pages.items():
        if not info.pgtable:
            state[f"page {pfn}"] = f"refcount {info.count}, mapcount {info.mapcount}"
    names = snap.mms
    for (pid, addr), pte in snap.ptes.items():
        state[f"{names[pid]}'s pte at {addr:#x}"] = "none" if pte is None else f"pfn {pte.pfn} {pte.flags_str()}"
    for pid, runs in snap.runs.items():
        for r in runs:
            state[f"{names[pid]}'s linear run at {r.start:#x}"] = f"pfns {r.pfn0}.. {Pte(r.pfn0, r.bits).flags_str()}"
    for (pid, kind), n in snap.rss.items():
        state[f"{names[pid]}'s {kind}_rss"] = str(n)
    return state


def _reference(fn: str) -> Callable:
    from vmlib import gup, memory
    return getattr(gup if fn == "gup_fast_pte_ok" else memory, fn)


def ask_reference(k, fn: str, args: tuple):
    """(answer as JSON, kernel-facts row) of the reference on the real objects; the trace is left as it was."""
    tr = k.tracer
    mark, quiet = len(tr.trace.events), tr._quiet
    tr._quiet = 0
    try:
        try:
            result = _reference(fn)(k, *args)
            answer = _answer(fn, result)
        except VmError as e:
            answer = {"raised": f"{type(e).__name__}: {e}"}
        rows = [e.row for e in tr.trace.events[mark:] if e.kind == "decision" and e.row]
    finally:
        tr.trace._truncate(mark)
        tr._quiet = quiet
    if fn == "do_wp_page_decision" and "raised" not in answer:
        rows = [result[1][result[1].rfind("(") + 1:-1]] if "(" in result[1] else rows
    return answer, rows[-1] if rows else ""


def _decode(fn: str, k, answer):
    """The student's JSON answer as the kernel needs it."""
    if fn == "vm_normal_page" and answer is not None:
        return k.pfn_to_page(answer["page"])
    if fn == "do_wp_page_decision":
        return answer, "your do_wp_page_decision"
    if fn == "copy_one_pte_decision":
        return tuple(answer)
    return answer


class Decisions:
    """How a scenario's deciders are asked and judged, in one object per kind of suite. This one, the
    default: decision functions the kernel calls through k.override (vm_normal_page, ...), a kernel
    error the reference raises is raised again when the student's answer is the same, and the
    feedback cites the kernel-facts row of the kernel's answer. A suite with other deciders (ps8's
    driver classes) gives its scenarios its own subclass; sim.py knows none of them."""

    overrides = True             # the deciders are k.override names (else: the scenario calls w.ask[fn])

    def __init__(self, cite_rows: bool = True, unit: str = "scenarios"):
        self.cite_rows = cite_rows   # feedback names the kernel-facts row the kernel's answer followed
        self.unit = unit             # what a verdict counts

    def encode(self, fn: str, k, args: tuple) -> dict:
        """The question fn(k, *args) as JSON data."""
        return encode_call(fn, k, args)

    def reference(self, k, fn: str, args: tuple) -> tuple:
        """(the reference's answer as JSON, its kernel-facts row or "")."""
        return ask_reference(k, fn, args)

    def well_formed(self, fn: str, answer) -> bool:
        """Whether an untrusted answer has the form the student side gives."""
        return well_formed(fn, answer)

    def decode(self, fn: str, k, answer, ref):
        """The answer as the kernel takes it (raising what the reference raised, if it is the same)."""
        if isinstance(ref, dict) and "raised" in ref and answer == ref:
            raise _reraise(ref["raised"])
        return _decode(fn, k, answer)

    def judge(self, sc: Scenario, ref: World, got: World) -> str | None:
        """None if the two runs agree, else the feedback (see judge_scenario)."""
        return judge_scenario(sc, ref, got, self.cite_rows)

    def tell(self, call: dict) -> str:
        """A recorded call {"q", "ans"} in words, for the student who gave the answer."""
        fn = call["q"]["fn"]
        return f"your {fn} was asked about {describe(call['q'])}; it returned {show(fn, call['ans'])}"


DECISIONS = Decisions()


def deciders(world: World, fns: tuple, answers: dict | None, unknown: dict, asker: Decisions = DECISIONS) -> dict:
    """Decider functions for `fns`: record each question; answer with `answers` (None: the reference)."""
    def make(fn):
        def decide(k, *args):
            q = asker.encode(fn, k, args)
            key = key_of(q)
            ref, row = asker.reference(k, fn, args)
            if answers is None:
                ans = ref
            elif key in answers:
                ans = answers[key]
            else:
                unknown[key] = q
                ans = ref            # a guess, to find the questions after this one; asked next round
            steps_done = len(world.steps) + 1
            world.calls.append({"step": steps_done, "text": world.text, "q": q, "ans": ans, "ref": ref,
                                "row": row, "known": answers is None or key in answers})
            if isinstance(ans, dict) and "failed" in ans:
                raise StudentFailed(ans["failed"])
            return asker.decode(fn, k, ans, ref)
        return decide
    return {fn: make(fn) for fn in fns}


def _reraise(text: str) -> VmError:
    from vmlib import errors
    name, _, msg = text.partition(": ")
    return getattr(errors, name, VmError)(msg)


def play(sc: Scenario, fns: tuple, answers: dict | None, unknown: dict) -> World:
    """Run scenario `sc` with `fns` decided by `answers` (None: by the reference)."""
    w = World(sc, {})
    w.ask = deciders(w, fns, answers, unknown, sc.asker)
    w.overrides = w.ask if sc.asker.overrides else {}
    try:
        sc.play(w)
    except StopScenario:
        pass
    except Exception as e:  # noqa: BLE001 - outside a step (setting up, between steps): this step's outcome
        w.steps.append((w.text, f"{FAILED}{type(e).__name__}: {e}", {}))
    return w


# ---- judging ----------------------------------------------------------------------------------

def describe(q: dict) -> str:
    """A question in words: the state it is about, never a label that restates a rule (issue 20: no
    "linear", no "COW"; the student works those out from vm_pgoff, vm_flags and the pfn), e.g.
    'a pte (pfn 65537, device memory 'nvram'; bits P|U|A) at 0x40001000 in a vma [...) (vm_pgoff 0x0, ...)'."""
    w = q["world"]

    def pfn_words(pfn):
        if 0 <= pfn < w["ram_pages"]:
            return f"pfn {pfn}, RAM" + (", the zero page" if pfn == w["zero_pfn"] else "")
        dev = next((d for d in w["devices"] if d[1] <= pfn < d[1] + d[2]), None)
        return f"pfn {pfn}, device memory {dev[0]!r}" if dev else f"pfn {pfn}, no memory"

    def vma_words(v):
        return (f"a vma [{v['vm_start']:#x}, {v['vm_end']:#x}) (vm_pgoff {v['vm_pgoff']:#x}, "
                f"vm_flags {flag_names(v['vm_flags'])})")

    def pte_words(p):
        if p is None:
            return "no pte"
        pte = Pte(p["pfn"], p["bits"])
        kind = "special pte" if pte.special else "pte"
        return f"a {kind} ({pfn_words(pte.pfn)}; bits {pte.flags_str()})"

    fn = q["fn"]
    if fn == "vm_normal_page":
        return f"{pte_words(q['pte'])} at {q['addr']:#x} in {vma_words(q['vma'])}"
    if fn == "remap_pfn_range_check":
        return f"[{q['addr']:#x}, {q['end']:#x}) of {vma_words(q['vma'])}"
    if fn == "insert_mixed_decision":
        return f"{pfn_words(q['pfn'])} into {vma_words(q['vma'])} on {w['version']}/{w['arch']}"
    if fn == "do_wp_page_decision":
        p = q["page"]
        page = ("page None (vm_normal_page said special)" if p is None else
                f"{'an anonymous' if p['anon'] else 'a file'} page {p['pfn']} with refcount {p['count']} "
                f"and mapcount {p['mapcount']}")
        return f"a write to {pte_words(q['pte'])}: {page}, in {vma_words(q['vma'])}"
    if fn in ("copy_one_pte_decision", "zap_pte_decision"):
        p = q["page"]
        page = ("page None (vm_normal_page said special)" if p is None else
                f"{'an anonymous' if p['anon'] else 'a file'} page {p['pfn']} with refcount {p['count']} "
                f"and mapcount {p['mapcount']}")
        what = "fork copying" if fn == "copy_one_pte_decision" else "zapping"
        return f"{what} {pte_words(q['pte'])}: {page}, in {vma_words(q['vma'])}"
    if fn == "do_fault_decision":
        bits = " | ".join(n for b, n in ((VM_FAULT_OOM, "VM_FAULT_OOM"), (VM_FAULT_SIGBUS, "VM_FAULT_SIGBUS"),
                                         (VM_FAULT_NOPAGE, "VM_FAULT_NOPAGE")) if q["ret"] & b) or str(q["ret"])
        return (f"a {'write' if q['write'] else 'read'} fault whose ->fault returned {bits} in "
                f"{vma_words(q['vma'])}")
    return f"a {'write' if q['write'] else 'read'} gup_fast of {pte_words(q['pte'])} on {w['version']}/{w['arch']}"


def show(fn: str, ans) -> str:
    if isinstance(ans, dict) and "failed" in ans:
        return ans["failed"]
    if isinstance(ans, dict) and "raised" in ans:
        return f"raises {ans['raised']}"
    if fn == "vm_normal_page":
        return "NULL (special)" if ans is None else f"page {ans['page']}"
    if fn == "remap_pfn_range_check":
        return "0" if ans == 0 else {-22: "-EINVAL"}.get(ans, str(ans))
    return repr(ans)


def changed_keys(old: dict, new: dict) -> list:
    """The keys whose values differ between two states (state_of), in `new`'s order, then `old`'s own."""
    return [k for k in list(new) + [k for k in old if k not in new] if old.get(k) != new.get(k)]


def _state_diff(got: dict, ref: dict) -> str:
    keys = changed_keys(got, ref)
    parts = [f"{k}: {got.get(k, 'none')} (kernel: {ref.get(k, 'none')})" for k in keys[:3]]
    return "; ".join(parts) + (f"; and {len(keys) - 3} more differences" if len(keys) > 3 else "")


def judge_scenario(sc: Scenario, ref: World, got: World, cite_rows: bool = True) -> str | None:
    """None if the runs agree; else the first diverging call and the first step it shows in (with the
    kernel-facts row of the kernel's answer if `cite_rows`)."""
    first = next((c for c in got.calls if c["ans"] != c["ref"]), None)
    bad_step = None
    for i, (text, outcome, state) in enumerate(got.steps):
        _, routcome, rstate = ref.steps[i] if i < len(ref.steps) else (text, "(no such step)", {})
        if outcome != routcome:
            bad_step = f"step {i + 1} ({text}): {outcome} (kernel: {routcome})"
            if outcome.startswith("stopped: "):
                bad_step = None
            break
        if state != rstate:
            bad_step = f"step {i + 1} ({text}): {_state_diff(state, rstate)}"
            break
    if first is None and bad_step is None:
        return None
    parts = [f"scenario '{sc.name}' ({sc.version}/{sc.arch})"]
    if first is not None:
        fn = first["q"]["fn"]
        row = f" (kernel-facts {first['row']})" if first["row"] and cite_rows else ""
        verb = "" if isinstance(first["ans"], dict) and "failed" in first["ans"] else "returned "
        parts.append(f"step {first['step']} ({first['text']}): for {describe(first['q'])}, your {fn} "
                     f"{verb}{show(fn, first['ans'])}; the kernel returns {show(fn, first['ref'])}{row}")
    if bad_step is not None:
        parts.append(f"consequence: {bad_step}")
    return "; ".join(parts) if first is None else parts[0] + " " + "; ".join(parts[1:])


# ---- the grade hook the runner calls --------------------------------------------------------------

def well_formed(fn: str, answer) -> bool:
    """Whether `answer` (from the untrusted student side) has the form _answer gives `fn`'s answers."""
    if fn == "vm_normal_page":
        return answer is None or (isinstance(answer, dict) and set(answer) == {"page"}
                                  and type(answer["page"]) is int)
    if fn == "remap_pfn_range_check":
        return type(answer) is int
    if fn == "insert_mixed_decision":
        return answer in ("page", "pfn")
    if fn == "do_wp_page_decision":
        return answer in ("reuse", "copy")
    if fn == "copy_one_pte_decision":
        return isinstance(answer, list) and len(answer) == 2 and all(type(x) is bool for x in answer)
    if fn == "zap_pte_decision":
        return answer in (None, "anon", "file")
    if fn == "do_fault_decision":
        return answer in ("return", "map", "cow")
    return type(answer) is bool


def _event_answer(fn: str, event: dict | None, ended: str, asker: Decisions = DECISIONS):
    if event is None:
        what = {"timeout": "did not finish in time (an endless loop?)", "flood": "sent the grader too much output",
                "budget": "was not run: time budget used (the submission's checks took all their time)"}
        return {"failed": what.get(ended, "ended the grading process")}
    if "result" in event:
        return event["result"] if asker.well_formed(fn, event["result"]) else {"failed": "sent an answer of the wrong form"}
    if "stopped" in event:
        return {"failed": event["stopped"]}
    if "missing" in event:
        return {"failed": f"is not defined ({event['missing']}): run the cell that defines it"}
    if "reference" in event:
        return {"failed": f"called {event['reference']}, the reference you are asked to write; this does not count"}
    return {"failed": f"{event['raised']}"}


_REFERENCE_RUNS: dict[str, list[World]] = {}     # the same for every submission: kept for the next one
MAX_KEPT = 16     # least recently used first out: the per-student runs of ps10/ps11 pass, the shared ones stay


def reference_runs(suite: Suite, scenarios: list[Scenario], fns: tuple, key: str) -> list[World]:
    """The runs of `scenarios` with the reference deciding (read-only: their steps and calls; the
    kernel is let go), computed once per `key`."""
    if key in _REFERENCE_RUNS:
        _REFERENCE_RUNS[key] = _REFERENCE_RUNS.pop(key)
        return _REFERENCE_RUNS[key]
    refs = [play(sc, fns, None, {}) for sc in scenarios]
    for sc, w in zip(scenarios, refs):
        bad = [s for s in w.steps if s[1].startswith(("not run", "stopped")) or FAILED in s[1]]
        if bad:
            raise RuntimeError(f"{suite.id}: scenario {sc.name!r} does not run with the reference: {bad[0]}")
        w.k = w.ask = w.overrides = None
    if len(_REFERENCE_RUNS) >= MAX_KEPT:
        _REFERENCE_RUNS.pop(next(iter(_REFERENCE_RUNS)))
    _REFERENCE_RUNS[key] = refs
    return refs


def same_answers(ref: World, answers: dict) -> bool:
    """Whether `answers` give every question of the reference run `ref` the reference's own answer.
    Then a run with them is `ref` itself: the model is deterministic, so it asks the same questions in
    the same order and, answered alike, takes the same steps (most submissions, so most of the
    grader's time, were spent playing these runs again)."""
    return all(answers.get(key_of(c["q"]), _NO_ANSWER) == c["ref"] for c in ref.calls)


_NO_ANSWER = object()


def grade(suite: Suite, scenarios: list[Scenario], fns: tuple, ask, runs_key: str,
          judge: Callable | None = None) -> dict:
    """Play every scenario that asks the student's function something with the reference and with the
    student's answers; the verdict. A scenario whose reference run asks nothing would run the same
    whatever the answers, so it checks nothing and is not counted. `runs_key` names the scenarios
    (suite and parameters) so that their reference runs are reused. The scenarios' asker judges
    (`judge`, if given, instead)."""
    from vmlib.grading.verdicts import verdict  # clean side only: the sandbox's copy of sim never grades
    asking = [(sc, w) for sc, w in zip(scenarios, reference_runs(suite, scenarios, fns, runs_key)) if w.calls]
    if not asking:
        raise RuntimeError(f"{suite.id}: no scenario asks {', '.join(fns)} anything")
    scenarios, refs = [sc for sc, _ in asking], [w for _, w in asking]
    asker = scenarios[0].asker
    judge = judge or asker.judge
    pending = {key_of(c["q"]): c["q"] for w in refs for c in w.calls}
    answers: dict = {}
    errors: list[str] = []
    runs = refs
    for _ in range(MAX_ROUNDS):
        if not pending:
            break
        items = sorted(pending.items())
        cases = [Case("question", q["fn"], [q]) for _, q in items]
        events, ended = ask(cases)
        setup = next((e["setup"] for e in events if "setup" in e), {"errors": [], "missing": {}})
        errors = setup["errors"]
        by_case = {e["i"]: e for e in events if "i" in e}
        for i, (key, q) in enumerate(items):
            answers[key] = _event_answer(q["fn"], by_case.get(i), ended, asker)
        pending = {}
        runs = [ref if same_answers(ref, answers) else play(sc, fns, answers, pending)
                for sc, ref in zip(scenarios, refs)]
    failures = []
    for sc, ref, got in zip(scenarios, refs, runs):
        problem = judge(sc, ref, got)
        if problem is None and not all(c["known"] for c in got.calls):   # the kernel answered some itself
            problem = (f"scenario '{sc.name}' ({sc.version}/{sc.arch}) was not checked to the end: your answers "
                       f"kept leading the kernel to new questions, and after {MAX_ROUNDS} rounds some were still "
                       "not put to your function (a decision function must depend on its arguments only)")
        if problem:
            failures.append(problem)
    cases = [Case(sc.name, fns[0], []) for sc in scenarios]
    return verdict(suite, cases, failures, errors, unit=asker.unit)


SCENARIOS: dict[str, Callable[[dict], list[Scenario]]] = {}     # suite id -> its scenarios (vmlib.grading.tryout)


def register_sim(suite_id: str, fns: tuple, make_scenarios: Callable[[dict], list[Scenario]],
                 references: tuple, prelude: str = "", judge: Callable | None = None) -> Suite:
    """Register a simulator-graded suite whose deciders are `fns`, asked and judged as its scenarios'
    asker says (Scenario.asker: decision functions by default); `judge(sc, ref, got)`, if given,
    tells a scenario's divergence instead."""
    SCENARIOS[suite_id] = make_scenarios

    def grade_hook(suite, params, ask):
        return grade(suite, make_scenarios(params), fns, ask, f"{suite.id} {json.dumps(params, sort_keys=True)}",
                     judge)

    return register(Suite(suite_id, fns, lambda params: [], prelude=prelude, references=references,
                          run_case=call_student, grade=grade_hook))


# ---- building blocks for scenarios ----------------------------------------------------------------

BASE = 0x40000000          # where every scenario maps its first mapping (MAP_FIXED)
DEV_PFN = 0x10000          # device memory ("nvram") starts here: no struct pages


def mapping(w, kind: str, npages: int, flags: str = "private", who: str = "parent", prot: str = "rw",
            mode: str = "rw"):
    """Map `npages` of `kind` at BASE in a new process `who` (protection `prot`, the file opened
    with `mode`); return the process.

    kind: "anon", "devmem-dev", "devmem-ram" (/dev/mem of device memory, or of RAM the kernel uses),
    "fb-ram", "fb-dev" (FbDev: a shared PFNMAP filled on demand, ->nopfn on 2.6.25, ->fault later), "xip-dev", "xip-ram" (an XIP file),
    "xipshort-dev", "xipshort-ram" (an XIP file one page shorter than the mapping: its last page is beyond
    EOF, and a fault there is a SIGBUS).
    """
    from vmlib.drivers import DevMem, FbDev, XipFs
    k = w.k
    dev = k.add_device_memory(DEV_PFN, 32, "nvram") if kind.endswith("-dev") else None
    p = k.spawn(who)
    file, offset = None, 0
    if kind.startswith("devmem"):
        first = DEV_PFN if dev else min(k.alloc_page().pfn for _ in range(npages))   # kernel RAM
        file, offset = k.open(DevMem(), mode), first << PAGE_SHIFT
    elif kind.startswith("fb"):
        file = k.open(FbDev(k, npages, backing=dev or "ram"), mode)
    elif kind.startswith("xip"):
        fs = XipFs(k, backing=dev or "ram")
        size = npages - 1 if kind.startswith("xipshort") else npages
        fs.create("image", bytes(range(1, npages + 1)) * 8, size=size << PAGE_SHIFT)
        file = fs.open("image", mode)
    what = f"mmap {kind} {flags}, {npages} pages at {BASE:#x}"
    if (prot, mode) != ("rw", "rw"):
        what += f", prot {prot!r}" + (f", the file opened {mode!r}" if file is not None else "")
    w.step(f"{who}: {what}", lambda: p.mmap(npages << PAGE_SHIFT, prot, flags, file=file, offset=offset,
                                            addr=BASE))
    return p


def _read(p, who: str, page: int):
    return p.read(BASE + (page << PAGE_SHIFT), 1)


def _write(p, who: str, page: int):
    return p.write(BASE + (page << PAGE_SHIFT), who[0].encode())


def play_ops(w, procs: dict, ops: list, read: Callable = _read, write: Callable = _write,
             done: Callable | None = None) -> None:
    """Perform ops: (who, "read"|"write"|"gup"|"gupw"|"gupfast"|"gupfastw", page), (who, "fork", child),
    (who, "munmap", page), (who, "exit", None). A read or write is `read(p, who, page)` or
    `write(p, who, page)` (one byte; a suite may check what it reads, as ps8 does against its card),
    and `done(who, op, arg)` hears of each op after its step."""
    for who, op, arg in ops:
        p = procs.get(who)
        addr = BASE + ((arg or 0) << PAGE_SHIFT) if isinstance(arg, int) else BASE
        if op == "fork":
            procs[arg] = w.step(f"{who}: fork → {arg}", lambda p=p, c=arg: p.fork(c))
        elif op in ("read", "write"):
            act = read if op == "read" else write
            w.step(f"{who}: {op} {addr:#x}", lambda p=p, who=who, i=arg, act=act: act(p, who, i))
        elif op.startswith("gup"):
            wr = op.endswith("w")
            fast = op.startswith("gupfast")
            name = f"get_user_pages{'_fast' if fast else ''}({addr:#x}, 1, {'write' if wr else 'read'})"
            w.step(f"{who}: {name}", lambda p=p, a=addr, f=fast, wr=wr:
                   (p.get_user_pages_fast if f else p.get_user_pages)(a, 1, write=wr))
        elif op == "munmap":
            w.step(f"{who}: munmap {addr:#x}", lambda p=p, a=addr: p.munmap(a, PAGE_SIZE))
        elif op == "exit":
            w.step(f"{who}: exit", lambda p=p: p.exit())
        else:
            raise ValueError(f"unknown op {op!r}")
        if done is not None:
            done(who, op, arg)


def scenario(name: str, profile: str, kind: str, npages: int, flags: str, ops: list, prot: str = "rw",
             mode: str = "rw", asker: Decisions | None = None) -> Scenario:
    """A scenario: map `kind` in "parent" (see mapping), then perform `ops` (see play_ops); its
    deciders are asked and judged by `asker` (default DECISIONS; e.g. Decisions(cite_rows=False))."""
    version, arch = profile.split("/")

    def run(w):
        procs = {"parent": mapping(w, kind, npages, flags, prot=prot, mode=mode)}
        play_ops(w, procs, ops)
    return Scenario(name, version, arch, run, asker=asker)


def random_ops(rng, npages: int, n: int = 8, gup: tuple = ()) -> list:
    """A seeded sequence: parent touches pages, forks, both touch pages, the child exits, parent unmaps."""
    ops, who = [], ["parent"]
    fork_at = rng.randrange(1, n - 2)
    for i in range(n):
        if i == fork_at:
            ops.append(("parent", "fork", "child"))
            who.append("child")
        kind = rng.choice(("read", "write", "write") + gup)
        ops.append((rng.choice(who), kind, rng.randrange(npages)))
    ops.append(("child", "exit", None))
    ops.append(("parent", "munmap", rng.randrange(npages)))
    ops.append(("parent", "exit", None))
    return ops
