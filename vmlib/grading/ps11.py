"""ps11 aperture: write the driver of a device with an MMIO aperture and RAM shadow pages, two modes.

Graded like ps8 (vmlib.grading.ps8): a Replay driver on the clean side asks the student's class,
in the sandbox, what to do at each mmap and fault, and makes the recorded calls on the real
kernel; steps are judged by outcomes (what mmap returns, the bytes each process reads, SIGBUS,
k.check()), and get_user_pages may pin or fail as in ps8. The scenarios map the direct mode
(the aperture page for page) and the shadow mode (shadow RAM pages where there are some, the
aperture elsewhere), shared and private, at offsets inside each mode and past their end.
Hidden devices (size, which pages are shadowed, where a mapping starts) are drawn from the seed
and the student id.
"""

from __future__ import annotations

import hashlib
import random

from vmlib.drivers.aperture import SHADOW_PGOFF, Aperture, aperture_bytes, shadow_bytes
from vmlib.flags import PAGE_SHIFT
from vmlib.grading import sim
from vmlib.grading.ps8 import CardModel, Drivers, Replay, play_model_ops
from vmlib.grading.sim import BASE, Scenario, register_sim

PRELUDE = (
    "import errno\n"
    "from vmlib import Driver\n"
    "from vmlib.flags import (PAGE_SHIFT, PAGE_SIZE, VM_SHARED, VM_WRITE, VM_IO, VM_PFNMAP, VM_MIXEDMAP,\n"
    "                         VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, VM_FAULT_OOM, is_cow_mapping)\n"
    "from vmlib.drivers.aperture import SHADOW_PGOFF\n"
)
CLASSES = {"ApertureDriver": "vmlib.drivers.aperture:ApertureDriver"}
APERTURE = Drivers(CLASSES)        # ps8's asker and judge: outcomes, gup may pin or fail


class ApertureReplay(Replay):
    """ps8's Replay, for the aperture device."""

    name = "aperture"


def scenario(name: str, profile: str, npages: int, shadowed: tuple, mode: str, flags: str, ops: list,
             first: int = 0, pages: int | None = None, refused: tuple = ()) -> Scenario:
    """Attach an aperture of `npages` pages with `shadowed` pages; try the mmaps in `refused`
    ((first page, pages) of `mode` that the reference refuses); map `pages` pages (default: the rest)
    of `mode` ("direct" or "shadow") from page `first` at BASE in "parent"; then perform `ops`
    (ps8.play_model_ops: reads and writes checked against what each page must hold)."""
    version, arch = profile.split("/")
    base = 0 if mode == "direct" else SHADOW_PGOFF
    pages = npages - first if pages is None else pages

    def run(w):
        k = w.k
        ap = Aperture.attach(k, npages, shadowed)
        f = k.open(ApertureReplay(w, "ApertureDriver", ap), "rw")
        model = CardModel("C" * pages, flags == "shared")
        for i in range(pages):
            j = first + i
            model.card[i][:] = (shadow_bytes(j) if mode == "shadow" and j in shadowed else aperture_bytes(j))[:2]
        p = k.spawn("parent")
        for start, count in refused:
            w.step(f"parent: mmap {flags} {mode} pages {start}..{start + count - 1} (the device has {npages})",
                   lambda s=start, c=count: p.mmap(c << PAGE_SHIFT, "rw", flags, file=f,
                                                   offset=(base + s) << PAGE_SHIFT, addr=BASE))
        w.step(f"parent: mmap {flags} {mode} pages {first}..{first + pages - 1} at {BASE:#x}",
               lambda: p.mmap(pages << PAGE_SHIFT, "rw", flags, file=f, offset=(base + first) << PAGE_SHIFT,
                              addr=BASE))
        play_model_ops(w, {"parent": p}, ops, model)
    return Scenario(name, version, arch, run, ram_pages=64, asker=APERTURE)


SHARED_OPS = [("parent", "read", 0), ("parent", "write", 1), ("parent", "read", 1), ("parent", "fork", "child"),
              ("child", "read", 1), ("child", "write", 2), ("parent", "read", 2), ("child", "gup", 0),
              ("child", "exit", None), ("parent", "munmap", 1), ("parent", "read", 3), ("parent", "exit", None)]
PRIVATE_OPS = [("parent", "read", 0), ("parent", "write", 1), ("parent", "read", 1), ("parent", "fork", "child"),
               ("child", "read", 1), ("child", "write", 0), ("parent", "read", 0), ("child", "read", 2),
               ("child", "write", 3), ("parent", "read", 3), ("child", "exit", None), ("parent", "munmap", 2),
               ("parent", "exit", None)]
PROFILES = ("2.6.26/x86", "2.6.27/x86", "2.6.27/powerpc", "6.12/x86", "6.12/m68k", "2.6.26/s390")


def direct_scenarios(params: dict) -> list[Scenario]:
    """(a) the direct mode: the aperture page for page, shared and private, at an offset, past the end."""
    if params.get("cases") == "hidden":
        return _seeded(params, "direct")
    return [scenario("direct, shared, the whole aperture", "2.6.26/x86", 5, (1, 3), "direct", "shared", SHARED_OPS),
            scenario("direct, private, from page 2, after one mapping past the end", "2.6.27/x86", 7, (2,), "direct",
                     "private", PRIVATE_OPS, first=2, pages=5, refused=((3, 5),)),
            scenario("direct, private on 6.12", "6.12/x86", 4, (0,), "direct", "private", PRIVATE_OPS)]


def shadow_scenarios(params: dict) -> list[Scenario]:
    """(b) the shadow mode: shadow RAM pages and aperture pages side by side, shared and private."""
    if params.get("cases") == "hidden":
        return _seeded(params, "shadow")
    return [scenario("shadow, private, pages 1 and 3 shadowed", "2.6.26/x86", 5, (1, 3), "shadow", "private",
                     PRIVATE_OPS),
            scenario("shadow, shared, pages 0 and 2 shadowed, on powerpc", "2.6.27/powerpc", 4, (0, 2), "shadow",
                     "shared", SHARED_OPS),
            scenario("shadow, private on 6.12/m68k, from page 1, after one mapping past the end", "6.12/m68k", 6,
                     (1, 4), "shadow", "private", PRIVATE_OPS, first=1, pages=4, refused=((4, 3),))]


def _seeded(params: dict, mode: str, n: int = 4) -> list[Scenario]:
    key = f"ps11\0{mode}\0{params.get('seed', 0)}\0{params.get('student') or ''}"
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    out = []
    for i in range(n):
        npages = rng.randrange(5, 9)
        shadowed = tuple(sorted(rng.sample(range(npages), rng.randrange(1, npages - 1))))
        first = rng.randrange(0, 2)
        pages = npages - first
        flags = "private" if i % 2 else "shared"
        ops = sim.random_ops(rng, pages, n=rng.randrange(6, 10), gup=("gup",))
        end = ops.index(("child", "exit", None))
        ops[end:end] = [(who, "read", pg) for pg in range(pages) for who in ("parent", "child")]
        refused = ((first, pages + 1),) if rng.random() < 0.5 else ()
        out.append(scenario(f"{mode}, {flags}, {npages} pages, shadowed {shadowed}, from page {first}, "
                            f"sequence {i + 1}", PROFILES[(i + rng.randrange(6)) % len(PROFILES)], npages, shadowed,
                            mode, flags, ops, first=first, pages=pages, refused=refused))
    return out


SUITES = {}
for _id, _make in (("ps11.direct", direct_scenarios), ("ps11.shadow", shadow_scenarios)):
    SUITES[_id] = register_sim(_id, ("ApertureDriver",), _make, (CLASSES["ApertureDriver"],), PRELUDE)
    SUITES[_id].params = ("cases", "seed", "student")      # hidden devices are drawn per student
