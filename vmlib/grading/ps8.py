"""ps8 driver: write the mmap and fault of an NVRAM card's driver, as VM_PFNMAP and as VM_MIXEDMAP.

Graded by the simulator (vmlib.grading.sim), with the student's class kept out of the kernel:
the scenario runs on the clean side with a real Kernel and a `Replay` driver. Each time the
kernel calls Replay.mmap or Replay.fault, the call is a question (the vma, the fault, the card's
layout, as data); the student's class answers it in the sandbox on stand-ins (sim.RecKernel)
that write down the kernel calls it makes; Replay then makes those calls, in order, on the real
kernel. A call that fails there ends the driver's mmap (with its -errno) or fault (VM_FAULT_OOM
for -ENOMEM, else VM_FAULT_SIGBUS); -EBUSY (a pte already there) is not a failure.

Judged by outcomes, not by pte states: eager (mmap time) and lazy (fault time) designs are both
right. A step agrees when its outcome (ok, SIGBUS, -errno, the bytes read) is the reference
driver's; k.check() runs after every step; every read is compared with a model of the card
(`CardModel`): a block's pattern, the card's bytes after shared writes, a process's own copy after
its private writes (fork copies them). get_user_pages may give a page or an error: a RAM-cache page
mapped with a refcount can be pinned, one mapped raw cannot (-EFAULT; -EEXIST for a raw pte of a
VM_MIXEDMAP vma on 6.12, kernel-facts §9b rows 8-9), and both designs are right.
"""

from __future__ import annotations

import errno
import importlib
import random
import re

from vmlib.drivers.nvram import Nvram, pattern
from vmlib.errors import VmError
from vmlib.flags import PAGE_SHIFT, SMAPS_CODES, VM_FAULT_NOPAGE, VM_FAULT_OOM, VM_FAULT_SIGBUS, flag_names
from vmlib.grading import sim
from vmlib.grading.sim import BASE, DEV_PFN, FAILED, Scenario, play_ops, register_sim
from vmlib.mm import Driver

PRELUDE = (
    "import errno\n"
    "from vmlib import Driver\n"
    "from vmlib.flags import (PAGE_SHIFT, PAGE_SIZE, VM_SHARED, VM_MAYWRITE, VM_WRITE, VM_IO, VM_RESERVED,\n"
    "                         VM_PFNMAP, VM_MIXEDMAP, VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, VM_FAULT_OOM, is_cow_mapping)\n"
)
CLASSES = {"NvramPfnmap": "vmlib.drivers.nvram:NvramPfnmap", "NvramMixed": "vmlib.drivers.nvram:NvramMixed"}


class WrongBytes(VmError):
    """A process read bytes the card does not hold at that place."""


# ---- the driver the kernel sees: it replays the student's answers ---------------------------------

class Replay(Driver):
    """A real driver whose mmap and fault do what the graded class answered (sim.driver_answer)."""

    name = "nvram"

    def __init__(self, w, cls: str, nv: Nvram):
        self.w, self.cls, self.nv = w, cls, nv

    def mmap(self, k, vma) -> int:
        ans = self.w.ask[self.cls](k, "mmap", self.nv, vma, None)
        if not ans["fault"]:
            self.fault = None            # no ->fault: a missing pte does what the version does (§6a row 7)
        return replay(k, vma, None, ans)

    def fault(self, k, vma, vmf) -> int:
        return replay(k, vma, vmf, self.w.ask[self.cls](k, "fault", self.nv, vma, vmf))


def replay(k, vma, vmf, ans: dict) -> int:
    """Make the recorded calls on the real kernel; the driver's return value, or the first failure's."""
    for name, *args in ans["actions"]:
        err = _call(k, vma, name, args)
        if err and err != -errno.EBUSY:
            if vmf is None:
                return err if err < 0 else -errno.EINVAL
            if name.startswith("vmf_"):
                return err
            return VM_FAULT_OOM if err == -errno.ENOMEM else VM_FAULT_SIGBUS
    if ans["raised"]:
        raise sim._reraise(ans["raised"])
    if vmf is not None and ans["page"] is not None:
        vmf.page = k.pfn_to_page(ans["page"])
    return ans["ret"]


def _call(k, vma, name: str, args: list) -> int:
    """One recorded call on the real kernel: 0 or a negative errno (vmf_*: 0 for VM_FAULT_NOPAGE)."""
    if name == "vm_flags":
        vma.vm_flags = (vma.vm_flags | args[0]) & ~args[1]
        return 0
    if name == "vm_pgoff":
        vma.vm_pgoff = args[0]
        return 0
    if name in ("get_page", "put_page"):
        page = k.pfn_to_page(args[0])
        with k._transaction():          # a reference the driver takes or drops, no one else's
            (k._get_page if name == "get_page" else k._put_page)(page, f"{name} (driver)")
        return 0
    if name == "vm_insert_page":
        return k.vm_insert_page(vma, args[0], k.pfn_to_page(args[1]))
    if name == "remap_pfn_range":
        return k.remap_pfn_range(vma, *args)
    code = getattr(k, name)(vma, *args)
    return 0 if name.startswith("vmf_") and code == VM_FAULT_NOPAGE else code


# ---- how the graded classes are asked: the question is a call of mmap or fault, as data ---------------

class Drivers(sim.Decisions):
    """The asker and judge of ps8's scenarios: the deciders are driver classes, which the kernel never
    calls directly (Replay asks them through w.ask); a question is the vma, the fault and the card as
    data; an answer is the list of kernel calls the class made (sim.driver_answer), judged by outcomes
    (judge_driver)."""

    overrides = False

    def __init__(self, references: dict[str, str]):
        super().__init__(cite_rows=False)
        self.references = references          # class name -> its reference "module:Class"

    def encode(self, fn: str, k, args: tuple) -> dict:
        op, nv, vma, vmf = args
        return {"fn": fn, "world": sim.world_of(k), "op": op, "device": nv.as_data(),
                "device_kind": getattr(nv, "kind", "nvram"),
                "vma": {"vm_start": vma.vm_start, "vm_end": vma.vm_end, "vm_flags": vma.vm_flags,
                        "vm_pgoff": vma.vm_pgoff, "vm_page_prot": vma.vm_page_prot},
                "vmf": None if vmf is None else {"address": vmf.address, "pgoff": vmf.pgoff, "write": bool(vmf.write)}}

    def reference(self, k, fn: str, args: tuple) -> tuple:
        """The reference class answers on the same stand-ins as the student's, from the question as data."""
        module, _, name = self.references[fn].partition(":")
        cls, q = getattr(importlib.import_module(module), name), self.encode(fn, k, args)
        return sim.driver_answer(cls, q), ""

    def well_formed(self, fn: str, answer) -> bool:
        return sim.driver_answer_ok(answer)

    def decode(self, fn: str, k, answer, ref):
        return answer

    def judge(self, sc: Scenario, ref, got) -> str | None:
        return judge_driver(sc, ref, got, agrees=self.agrees)

    @staticmethod
    def agrees(text: str, got: str, ref: str) -> bool:
        """Whether a step's outcome agrees with the reference's (ps8: gup may pin or fail in both)."""
        return _agrees(text, got, ref)

    def tell(self, call: dict) -> str:
        return describe_call(call)


DRIVERS = Drivers(CLASSES)


# ---- scenarios and the model of the card ------------------------------------------------------------

class CardModel:
    """The first two bytes each process must read at each page of its mapping of the card."""

    def __init__(self, layout: str, shared: bool):
        self.card = {i: bytearray(pattern(i)[:2]) for i, c in enumerate(layout) if c != "."}
        self.shared = shared
        self.copies: dict[tuple[str, int], bytearray] = {}

    def expect(self, who: str, i: int) -> bytes | None:
        """The bytes `who` reads at page i, None for a hole."""
        own = self.copies.get((who, i))
        return bytes(own) if own is not None else (bytes(self.card[i]) if i in self.card else None)

    def write(self, who: str, i: int, byte: bytes) -> None:
        if self.shared and i in self.card:
            self.card[i][:1] = byte
        elif i in self.card or (who, i) in self.copies:
            self.copies.setdefault((who, i), bytearray(self.expect(who, i)))[:1] = byte

    def fork(self, parent: str, child: str) -> None:
        for (who, i), data in list(self.copies.items()):
            if who == parent:
                self.copies[(child, i)] = bytearray(data)

    def drop(self, who: str, i: int | None = None) -> None:
        for key in [key for key in self.copies if key[0] == who and i in (None, key[1])]:
            del self.copies[key]


def _read(p, who: str, i: int, model: CardModel) -> str:
    got = p.read(BASE + (i << PAGE_SHIFT), 2)
    want = model.expect(who, i)
    if want is None:
        raise WrongBytes(f"read {got.hex()} at page {i}, a hole of the card: there is no memory behind it "
                         f"(the kernel gives SIGBUS)")
    if got != want:
        raise WrongBytes(f"read {got.hex()} at page {i}, but the card model says {want.hex()}")
    return got.hex()


def _write(p, who: str, i: int, model: CardModel) -> None:
    byte = who[0].encode()
    p.write(BASE + (i << PAGE_SHIFT), byte)
    model.write(who, i, byte)


# The bits v6.12 gives a new meaning, with their smaps codes: include/linux/mm.h @ v6.12 (VM_UFFD_MISSING
# 0x200, VM_UFFD_WP 0x1000, VM_LOCKONFAULT 0x80000, VM_NORESERVE 0x200000, VM_SYNC 0x800000, VM_ARCH_1
# 0x01000000, VM_WIPEONFORK 0x02000000, VM_SOFTDIRTY 0x08000000) and fs/proc/task_mmu.c:show_smap_vma_flags
# @ v6.12 (kernel-facts §3b row 2). 0x80000 was VM_RESERVED in v2.6.26 (include/linux/mm.h @ v2.6.26, §3a
# row 20): a driver that still sets it on 6.12 marks its vma "lock the pages on fault".
REUSED_612 = [(0x200, "um"), (0x1000, "uw"), (0x80000, "lf"), (0x200000, "nr"), (0x800000, "sf"),
              (0x01000000, "ar"), (0x02000000, "wf"), (0x08000000, "sd")]
SMAPS_612 = sorted(SMAPS_CODES + REUSED_612)
VMFLAGS_STEP = "parent: VmFlags of the mapping in /proc/self/smaps"
FREE_CODES = {"io", "de", "dd", "dc"}    # flags a driver may add or leave out here: nothing in the scenarios turns on them


def vmflags_612(p) -> str:
    """The VmFlags line v6.12 prints for the vma at BASE (show_smap_vma_flags: codes in bit order)."""
    vma = p.find_vma(BASE)
    if vma is None or vma.vm_start > BASE:
        return "no mapping at the card's address"
    return " ".join(code for bit, code in SMAPS_612 if vma.vm_flags & bit)


def scenario(name: str, profile: str, layout: str, flags: str, ops: list, cls: str, seed: int = 0) -> Scenario:
    """Attach a card of `layout` (D device, C cache, . hole), map it whole at BASE in "parent" with
    the graded class `cls` (MAP_SHARED or MAP_PRIVATE per `flags`), then perform `ops` (sim.play_ops,
    with reads and writes checked against the card model)."""
    version, arch = profile.split("/")

    def run(w):
        k = w.k
        nv = Nvram.attach(k, layout, DEV_PFN, seed)
        f = k.open(Replay(w, cls, nv), "rw")
        model = CardModel(layout, flags == "shared")
        p = k.spawn("parent")
        procs = {"parent": p}
        size = len(layout) << PAGE_SHIFT
        w.step(f"parent: mmap {flags}, {len(layout)} pages at {BASE:#x}",
               lambda: p.mmap(size, "rw", flags, file=f, offset=0, addr=BASE))
        if k.profile.MODERN:             # smaps has VmFlags from 3.8 on
            w.step(VMFLAGS_STEP, lambda: vmflags_612(p))
        play_model_ops(w, procs, ops, model)
    return Scenario(name, version, arch, run, ram_pages=64, asker=DRIVERS)


def play_model_ops(w, procs: dict, ops: list, model: CardModel) -> None:
    """sim.play_ops, with every read and write checked against `model` and the model following forks,
    munmaps and exits (ps8, ps10 and ps11 scenarios)."""
    def done(who, op, arg):
        if op == "fork":
            model.fork(who, arg)
        elif op in ("munmap", "exit"):
            model.drop(who, arg)
    play_ops(w, procs, ops, read=lambda q, who, i: _read(q, who, i, model),
             write=lambda q, who, i: _write(q, who, i, model), done=done)


SHARED_OPS = [("parent", "read", 0), ("parent", "write", 1), ("parent", "read", 1), ("parent", "fork", "child"),
              ("child", "read", 1), ("child", "write", 3), ("parent", "read", 3), ("parent", "read", 2),
              ("child", "gup", 0), ("child", "exit", None), ("parent", "munmap", 1), ("parent", "read", 4),
              ("parent", "read", 2), ("parent", "exit", None)]
PRIVATE_OPS = [("parent", "read", 0), ("parent", "read", 1), ("parent", "write", 1), ("parent", "fork", "child"),
               ("child", "read", 1), ("child", "write", 0), ("parent", "read", 0), ("child", "write", 3),
               ("child", "read", 3), ("parent", "read", 3), ("parent", "read", 2), ("child", "gupw", 4),
               ("child", "exit", None), ("parent", "munmap", 0), ("parent", "read", 4), ("parent", "read", 2),
               ("parent", "exit", None)]
# the card unmapped in pieces before the blocks behind them are touched: a split (3) and a shorter vma (0),
# faults in vmas that start at block 0 and past it (vm_pgoff > 0)
SPLIT_OPS = [("parent", "munmap", 3), ("parent", "read", 1), ("parent", "write", 0), ("parent", "read", 2),
             ("parent", "read", 5),
             ("parent", "write", 4), ("parent", "munmap", 0), ("parent", "read", 2), ("parent", "fork", "child"),
             ("child", "read", 6), ("child", "write", 2), ("child", "write", 5), ("child", "read", 1),
             ("child", "exit", None), ("parent", "read", 5), ("parent", "read", 6), ("parent", "exit", None)]
HIDDEN_PROFILES = ("2.6.26/x86", "2.6.26/s390", "2.6.27/x86", "2.6.27/powerpc", "6.12/x86", "6.12/m68k")


def _layout(rng) -> str:
    """A seeded layout of 4 to 7 blocks with at least one device block, one cache block and one hole."""
    n = rng.randrange(4, 8)
    codes = ["D", "C", "."] + [rng.choice("DDC.") for _ in range(n - 3)]
    rng.shuffle(codes)
    return "".join(codes)


def _seeded(params: dict, cls: str, n: int = 10) -> list[Scenario]:
    rng = random.Random(params.get("seed", 0))
    out = []
    for i in range(n):
        layout = _layout(rng)
        flags = "private" if i % 3 == 2 else "shared"
        ops = sim.random_ops(rng, len(layout), n=rng.randrange(6, 12), gup=("gup", "gupw"))
        end = ops.index(("child", "exit", None))       # then both read every page: the bytes each one sees
        ops[end:end] = [(who, "read", pg) for pg in range(len(layout)) for who in ("parent", "child")]
        # unmap 1-2 blocks (never the last page nor a hole) at a random offset: a split or a shorter vma,
        # with faults after it; before anything is touched or later, before the fork
        first = rng.choice([pg for pg in range(len(layout) - 1) if layout[pg] != "."])
        cut = [pg for pg in (first, first + 1)[:rng.randrange(1, 3)] if pg < len(layout) - 1 and layout[pg] != "."]
        cut = cut[:len(layout) - layout.count(".") - 1]          # a block with data stays mapped
        at = 0 if i % 2 == 0 else rng.randrange(ops.index(("parent", "fork", "child")) + 1)
        ops[at:at] = [("parent", "munmap", pg) for pg in cut]
        profile = HIDDEN_PROFILES[i % len(HIDDEN_PROFILES)]
        out.append(scenario(f"{flags} mapping of card {layout}, sequence {i + 1}", profile, layout, flags, ops, cls,
                            seed=rng.randrange(1000)))
    return out


def pfnmap_scenarios(params: dict) -> list[Scenario]:
    """Visible: shared mappings on 2.6.26, 2.6.27/powerpc and 6.12; a private mapping; hidden: seeded."""
    cls = "NvramPfnmap"
    if params.get("cases") == "hidden":
        return _seeded(params, cls)
    return [scenario("shared mapping: reads, writes, fork, a hole, gup, munmap", "2.6.26/x86", "DC.DC", "shared",
                     SHARED_OPS, cls),
            scenario("private mapping of the scattered card", "2.6.27/x86", "DCDC.", "private", PRIVATE_OPS, cls),
            scenario("shared mapping on powerpc with pte_special", "2.6.27/powerpc", "CD.CD", "shared", SHARED_OPS,
                     cls, seed=3),
            scenario("shared mapping on 6.12", "6.12/x86", "DD.CC", "shared", SHARED_OPS, cls, seed=5),
            scenario("private mapping on 6.12", "6.12/x86", "DC.DC", "private", PRIVATE_OPS, cls, seed=8),
            scenario("shared mapping on 6.12, unmapped in pieces", "6.12/x86", "CD.CDDC", "shared", SPLIT_OPS, cls,
                     seed=6)]


def mixed_scenarios(params: dict) -> list[Scenario]:
    """Visible: private and shared mappings on 2.6.26 (no pte_special), 2.6.27 x86 and powerpc, 6.12."""
    cls = "NvramMixed"
    if params.get("cases") == "hidden":
        return _seeded(params, cls)
    return [scenario("private mapping, fork, child writes", "2.6.26/x86", "DC.CD", "private", PRIVATE_OPS, cls),
            scenario("shared mapping: reads, writes, fork, a hole, gup, munmap", "2.6.27/x86", "CD.DC", "shared",
                     SHARED_OPS, cls, seed=1),
            scenario("private mapping on powerpc with pte_special", "2.6.27/powerpc", "DC.DC", "private",
                     PRIVATE_OPS, cls, seed=2),
            scenario("private mapping on 6.12", "6.12/x86", "CD.CD", "private", PRIVATE_OPS, cls, seed=4),
            scenario("shared mapping, unmapped in pieces", "2.6.26/x86", "CD.DCCD", "shared", SPLIT_OPS, cls, seed=7),
            scenario("private mapping on 6.12, unmapped in pieces", "6.12/x86", "DC.CDDC", "private", SPLIT_OPS, cls,
                     seed=9),
            scenario("shared mapping on 6.12, unmapped in pieces", "6.12/x86", "DC.DCCD", "shared", SPLIT_OPS, cls,
                     seed=10)]


# ---- judging: outcomes and bytes, not pte states ---------------------------------------------------------

def kind(outcome: str) -> str:
    """What must agree in a step's outcome: the value returned, or the error's type and errno; and
    whether k.check() held after it."""
    head = outcome.split("; then k.check()")[0]
    if not head.startswith(("returned", "ok")):
        errno_name = re.search(r"-E[A-Z]+", head)
        head = head.split(":")[0] + (f" {errno_name.group(0)}" if errno_name else "")
    return head + (" + k.check() fails" if "; then k.check()" in outcome else "")


def _pinnable(k: str) -> bool:
    return k == "returned 1 page(s)" or (k.startswith("KernelError") and "check()" not in k)


def _codes(outcome: str) -> set[str]:
    return set(outcome.removeprefix("returned ").strip("'").split()) - FREE_CODES


def _agrees(text: str, got: str, ref: str) -> bool:
    if text == VMFLAGS_STEP:
        return _codes(got) == _codes(ref) and ("k.check()" in got) == ("k.check()" in ref)
    if kind(got) == kind(ref):
        return True
    return "get_user_pages" in text and _pinnable(kind(got)) and _pinnable(kind(ref))


BROKEN = ("KernelBug", "BadPage", "k.check() fails", "WrongBytes", FAILED)


FAULT_CODES = (("VM_FAULT_OOM", VM_FAULT_OOM), ("VM_FAULT_SIGBUS", VM_FAULT_SIGBUS),
               ("VM_FAULT_NOPAGE", VM_FAULT_NOPAGE))


def _action_text(name: str, args: list) -> str:
    if name == "vm_flags":
        return " and ".join(([f"vma.vm_flags |= {flag_names(args[0])}"] if args[0] else [])
                            + ([f"vma.vm_flags &= ~({flag_names(args[1])})"] if args[1] else []))
    if name == "vm_pgoff":
        return f"vma.vm_pgoff = {args[0]:#x}"
    return f"{name}({', '.join(hex(v) if v > 4096 else str(v) for v in args)})"


def describe_call(c: dict) -> str:
    """A recorded driver call in words: 'fault(pgoff 2, write) called vm_insert_pfn(...), returned 0x100'."""
    q, a = c["q"], c["ans"]
    if not isinstance(a, dict) or "actions" not in a:
        return f"{q['fn']}.{q['op']}: {a.get('failed', a) if isinstance(a, dict) else a}"
    where = "mmap" if q["op"] == "mmap" else (f"fault(pgoff {q['vmf']['pgoff']}, "
                                              f"{'write' if q['vmf']['write'] else 'read'})")
    calls = [_action_text(n, args) for n, *args in a["actions"]]
    did = f" called {', '.join(calls)}" if calls else " made no kernel call"
    ret = (errno.errorcode.get(-a["ret"], str(a["ret"])) if a["ret"] < 0 else
           "|".join(n for n, bit in FAULT_CODES if a["ret"] & bit) or str(a["ret"]))
    end = f", raised {a['raised']}" if a["raised"] else f", returned {ret}"
    page = f" with vmf.page = page {a['page']}" if a["page"] is not None else ""
    return f"your {q['fn']}.{where}{did}{end}{page}"


def judge_driver(sc: Scenario, ref, got, agrees=_agrees) -> str | None:
    """None if every step agrees (`agrees(text, outcome, reference outcome)`); else the first step that
    does not, what the driver did last before it, and the first step after it where an invariant broke
    (if it was not that step)."""
    for i, (text, outcome, _) in enumerate(got.steps):
        routcome = ref.steps[i][1] if i < len(ref.steps) else "(no such step)"
        if agrees(text, outcome, routcome):
            continue
        head = f"scenario '{sc.name}' ({sc.version}/{sc.arch}) step {i + 1} ({text}): {outcome}"
        parts = [f"{head} (with a right driver: {routcome})"]
        calls = [c for c in got.calls if c["step"] <= i + 1]
        if calls and not outcome.startswith("stopped: "):
            parts.append(describe_call(calls[-1]))
        if not any(b in outcome for b in BROKEN):
            later = next(((j, t, o) for j, (t, o, _) in enumerate(got.steps[i + 1:], i + 2)
                          if any(b in o for b in BROKEN)), None)
            if later:
                parts.append(f"then step {later[0]} ({later[1]}): {later[2]}")
        return "; ".join(parts)
    if len(got.steps) < len(ref.steps):
        return f"scenario '{sc.name}' ({sc.version}/{sc.arch}) stopped after step {len(got.steps)}"
    return None


register_sim("ps8.pfnmap", ("NvramPfnmap",), pfnmap_scenarios, (CLASSES["NvramPfnmap"],), PRELUDE)
register_sim("ps8.mixedmap", ("NvramMixed",), mixed_scenarios, (CLASSES["NvramMixed"],), PRELUDE)
