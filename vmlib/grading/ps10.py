"""ps10 ring: write the mmap of a packet socket's rings (kernel pages handed to user space).

Graded like ps8 (vmlib.grading.ps8): the scenario runs on the clean side with a real Kernel and
a `Replay` driver, the student's class answers each mmap question in the sandbox on recording
stand-ins, and Replay makes the recorded calls on the real kernel. Judged by outcomes: what each
mmap returns, the bytes every process reads (the kernel keeps delivering frames into the ring, so
a process must map the ring's own pages, in the ring's order), what get_user_pages gives, and
k.check() after every step (a reference the driver takes and never drops is a leak).

Hidden scenarios draw the rings' shapes (blocks, pages per block, a TX ring on 6.12) from the
seed and the student id, so two students' drivers face different sockets.
"""

from __future__ import annotations

import hashlib
import random

from vmlib.drivers.ring import PacketRing
from vmlib.flags import PAGE_SHIFT, VM_FAULT_SIGBUS
from vmlib.grading import sim
from vmlib.grading.ps8 import CardModel, Drivers, Replay, kind, play_model_ops
from vmlib.grading.sim import BASE, Scenario, register_sim

PRELUDE = (
    "import errno\n"
    "from vmlib import Driver\n"
    "from vmlib.flags import PAGE_SHIFT, PAGE_SIZE, VM_SHARED, VM_WRITE, VM_PFNMAP, VM_MIXEDMAP, VM_IO\n"
)
CLASSES = {"PacketMmap": "vmlib.drivers.ring:RingMmap"}


class RingReplay(Replay):
    """ps8's Replay, for a packet socket."""

    name = "packet"


class RingDrivers(Drivers):
    """ps8's asker and judge, except that get_user_pages must agree too: a ring page is there to be
    pinned (§14d row 1); and the reference (RingMmap, like packet_mmap) maps every page at mmap time
    and has no fault(), so a fault question, which a student's on-demand driver raises, is answered
    as a vma with no page to give: VM_FAULT_SIGBUS, no calls made."""

    def reference(self, k, fn: str, args: tuple) -> tuple:
        if args[0] == "fault":                    # args: (op, device, vma, vmf), as Drivers.encode reads them
            return {"actions": [], "ret": VM_FAULT_SIGBUS, "page": None, "raised": None, "fault": False}, ""
        return super().reference(k, fn, args)

    @staticmethod
    def agrees(text: str, got: str, ref: str) -> bool:
        return kind(got) == kind(ref)


RING = RingDrivers(CLASSES)


def _deliver(k, ring: PacketRing, i: int, model: CardModel) -> str:
    """The kernel writes a frame header into page i of the rings (as a received packet would)."""
    pfn = [p for b in ring.rx + ring.tx for p in b][i]
    with k._transaction():
        k._write_user(pfn, 0, b"K")
    model.card[i][:1] = b"K"
    return "ok"


def scenario(name: str, profile: str, rx: tuple, tx: tuple, flags: str, ops: list, seed: int = 0,
             refused: tuple = (), mapped: bool = True) -> Scenario:
    """Set up the rings (`rx`, `tx`: blocks, pages per block; blocks allocated in a seeded order),
    try the mmaps in `refused` ((pages, pgoff) that the reference refuses), then (if `mapped`) map the
    rings whole at BASE in "parent" (MAP_SHARED or MAP_PRIVATE) and perform `ops`: sim.play_ops, with reads and
    writes checked against a model of the rings, and ("kernel", "deliver", i)."""
    version, arch = profile.split("/")

    def run(w):
        k = w.k
        nblocks = rx[0] + tx[0]
        order = list(range(nblocks))
        random.Random(seed).shuffle(order)
        ring = PacketRing.setup(k, rx, tx, order)
        f = k.open(RingReplay(w, "PacketMmap", ring), "rw")
        model = CardModel("C" * ring.npages, flags == "shared")     # page i holds pattern(i)
        p = k.spawn("parent")
        procs = {"parent": p}
        for pages, pgoff in refused:
            w.step(f"parent: mmap {flags}, {pages} pages at offset {pgoff} (the rings have {ring.npages} pages)",
                   lambda pages=pages, pgoff=pgoff: p.mmap(pages << PAGE_SHIFT, "rw", flags, file=f,
                                                           offset=pgoff << PAGE_SHIFT, addr=BASE))
        if not mapped:
            return
        w.step(f"parent: mmap {flags}, {ring.npages} pages at {BASE:#x}",
               lambda: p.mmap(ring.npages << PAGE_SHIFT, "rw", flags, file=f, offset=0, addr=BASE))
        for who, op, arg in ops:
            if op == "deliver":
                w.step(f"kernel: a frame arrives in ring page {arg}", lambda i=arg: _deliver(k, ring, i, model))
            else:
                play_model_ops(w, procs, [(who, op, arg)], model)
    return Scenario(name, version, arch, run, ram_pages=64, asker=RING)


SHARED_OPS = [("parent", "read", 0), ("kernel", "deliver", 1), ("parent", "read", 1), ("parent", "write", 2),
              ("parent", "fork", "child"), ("child", "read", 2), ("kernel", "deliver", 3), ("child", "read", 3),
              ("child", "gup", 0), ("child", "write", 1), ("parent", "read", 1), ("child", "exit", None),
              ("parent", "munmap", 1), ("parent", "read", 3), ("parent", "gupw", 2), ("parent", "exit", None)]
PRIVATE_OPS = [("parent", "read", 0), ("kernel", "deliver", 0), ("parent", "read", 0), ("parent", "write", 1),
               ("kernel", "deliver", 1), ("parent", "read", 1), ("parent", "fork", "child"), ("child", "read", 1),
               ("kernel", "deliver", 2), ("child", "read", 2), ("parent", "read", 2), ("child", "gup", 3),
               ("child", "exit", None), ("parent", "munmap", 0), ("parent", "read", 3), ("parent", "exit", None)]
OLD_PROFILES = ("2.6.26/x86", "2.6.27/x86", "2.6.27/powerpc", "2.6.26/s390")   # an RX ring only (TX: 2.6.31)
NEW_PROFILES = ("6.12/x86", "6.12/m68k")


def _rng(params: dict, part: str) -> random.Random:
    """The seeded draw of one student's hidden sockets: two students face different rings."""
    key = f"ps10\0{part}\0{params.get('seed', 0)}\0{params.get('student') or ''}"
    return random.Random(hashlib.sha256(key.encode()).digest())


def refuse_scenarios(params: dict) -> list[Scenario]:
    """(a) mmaps that must be refused: a size other than the rings', an offset other than 0."""
    if params.get("cases") != "hidden":
        return [scenario("one page short, one too many, two too many, offset 1 (RX ring 4 x 1)", "2.6.26/x86",
                         (4, 1), (0, 0), "shared", [], refused=((3, 0), (5, 0), (6, 0), (4, 1)), mapped=False),
                scenario("a private mapping at offset 2, and half the rings (RX 2 x 2, TX 1 x 2)", "6.12/x86",
                         (2, 2), (1, 2), "private", [], refused=((6, 2), (3, 0)), mapped=False)]
    rng, out = _rng(params, "refuse"), []
    for i, profile in enumerate(OLD_PROFILES[:2] + NEW_PROFILES):
        rx, tx = _shape(rng, profile)
        npages = rx[0] * rx[1] + tx[0] * tx[1]
        tries = [(npages + d, 0) for d in rng.sample((-2, -1, 1, 2, npages), 2) if npages + d > 0]
        tries.append((npages, rng.randrange(1, 5)))
        out.append(scenario(f"refusals for rings rx {rx[0]}x{rx[1]}, tx {tx[0]}x{tx[1]}, set {i + 1}", profile, rx,
                            tx, rng.choice(("shared", "private")), [], seed=rng.randrange(1000),
                            refused=tuple(tries), mapped=False))
    return out


def _shape(rng, profile: str) -> tuple[tuple, tuple]:
    rx = (rng.randrange(1, 4), rng.randrange(1, 3))
    tx = (rng.randrange(0, 3), rng.randrange(1, 3)) if profile.startswith("6.") else (0, 0)
    return rx, tx


def rx_scenarios(params: dict) -> list[Scenario]:
    """(b) an RX ring on 2.6.26 and 2.6.27: shared and private mappings, deliveries, fork, gup, munmap."""
    if params.get("cases") == "hidden":
        return _seeded(_rng(params, "rx"), OLD_PROFILES)
    return [scenario("RX ring of 2 blocks x 2 pages, shared: reads, deliveries, fork, gup, munmap",
                     "2.6.26/x86", (2, 2), (0, 0), "shared", SHARED_OPS, seed=1),
            scenario("RX ring of 4 blocks x 1 page, private: own writes, the kernel's deliveries",
                     "2.6.27/x86", (4, 1), (0, 0), "private", PRIVATE_OPS, seed=3),
            scenario("RX ring of 1 block x 4 pages on 2.6.27/powerpc, shared", "2.6.27/powerpc", (1, 4), (0, 0),
                     "shared", SHARED_OPS, seed=6)]


def rxtx_scenarios(params: dict) -> list[Scenario]:
    """(c) RX and TX rings on 6.12: one mapping, the RX ring's blocks first."""
    if params.get("cases") == "hidden":
        return _seeded(_rng(params, "rxtx"), NEW_PROFILES)
    return [scenario("RX and TX rings (2 x 1 and 1 x 2) on 6.12, shared", "6.12/x86", (2, 1), (1, 2), "shared",
                     SHARED_OPS, seed=4),
            scenario("RX and TX rings (1 x 2 and 2 x 1) on 6.12/m68k (no pte_special), private", "6.12/m68k",
                     (1, 2), (2, 1), "private", PRIVATE_OPS, seed=5)]


def _seeded(rng, profiles: tuple, n: int = 4) -> list[Scenario]:
    out = []
    for i in range(n):
        profile = profiles[i % len(profiles)]
        rx, tx = _shape(rng, profile)
        npages = rx[0] * rx[1] + tx[0] * tx[1]
        flags = "private" if i % 3 == 2 else "shared"
        ops = sim.random_ops(rng, npages, n=rng.randrange(6, 11), gup=("gup",) if flags == "private" else ("gup", "gupw"))
        for _ in range(rng.randrange(1, 4)):      # the kernel delivers frames while the processes run
            ops.insert(rng.randrange(len(ops) - 2), ("kernel", "deliver", rng.randrange(npages)))
        end = ops.index(("child", "exit", None))  # then both read every page: the bytes each one sees
        ops[end:end] = [(who, "read", pg) for pg in range(npages) for who in ("parent", "child")]
        out.append(scenario(f"{flags} mapping of rings rx {rx[0]}x{rx[1]}, tx {tx[0]}x{tx[1]}, sequence {i + 1}",
                            profile, rx, tx, flags, ops, seed=rng.randrange(1000)))
    return out


SUITES = {}


def _register(suite_id: str, make) -> None:
    suite = register_sim(suite_id, ("PacketMmap",), make, (CLASSES["PacketMmap"],), PRELUDE)
    suite.params = ("cases", "seed", "student")      # hidden sockets are drawn per student
    SUITES[suite_id] = suite


_register("ps10.refuse", refuse_scenarios)
_register("ps10.rx", rx_scenarios)
_register("ps10.rxtx", rxtx_scenarios)
