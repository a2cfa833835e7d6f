"""ps2 pfnmap: vm_normal_page of 2.6.25 (VM_PFNMAP: the linear rule, the not-COW rule) and
remap_pfn_range's check on a COW vma (kernel-facts §1a rows 3-6, §4).

Graded by the simulator: the student's function is plugged into the kernel with k.override and
the scenarios below run on the clean side (vmlib.grading.sim).
"""

from __future__ import annotations

import random

from vmlib.flags import PAGE_SHIFT
from vmlib.grading.sim import BASE, DEV_PFN, Scenario, mapping, play_ops, random_ops, register_sim, scenario
from vmlib.mm import Driver

PRELUDE = (
    "import errno\n"
    "from vmlib.flags import PAGE_SHIFT, VM_PFNMAP, VM_SHARED, VM_MAYWRITE, VM_WRITE, is_cow_mapping\n"
)
P = "2.6.25/x86"
COW_OPS = [("parent", "write", 1), ("parent", "read", 0), ("parent", "fork", "child"), ("child", "write", 2),
           ("child", "write", 1), ("child", "read", 0), ("child", "exit", None), ("parent", "munmap", 1),
           ("parent", "exit", None)]
SHARED_OPS = [("parent", "read", 0), ("parent", "write", 1), ("parent", "fork", "child"), ("child", "read", 2),
              ("child", "exit", None), ("parent", "exit", None)]
KINDS = [("devmem-dev", "private"), ("devmem-ram", "private"), ("devmem-dev", "shared"), ("devmem-ram", "shared"),
         ("fb-ram", "shared"), ("fb-dev", "shared"), ("anon", "private")]
WORDS = {"devmem-dev": "/dev/mem of device memory", "devmem-ram": "/dev/mem of kernel RAM",
         "fb-ram": "framebuffer on RAM (->nopfn on 2.6.25, ->fault from 2.6.26)",
         "fb-dev": "framebuffer on device memory (->nopfn on 2.6.25, ->fault from 2.6.26)",
         "anon": "anonymous memory"}


READ_OPS = [("parent", "read", 0), ("parent", "read", 1), ("parent", "fork", "child"), ("child", "read", 2),
            ("child", "exit", None), ("parent", "munmap", 1), ("parent", "exit", None)]


def normal_page_scenarios(params: dict) -> list[Scenario]:
    """Visible: every kind of mapping the hidden ones use, from the simplest (anonymous memory) to a
    private /dev/mem where raw pfns and copies sit side by side; hidden: seeded operation sequences."""
    if params.get("cases") != "hidden":
        return [scenario("anonymous memory: write, fork, copy-on-write, exit", P, "anon", 4, "private", COW_OPS),
                scenario("shared /dev/mem of device memory: touch, fork, child exits", P, "devmem-dev", 4, "shared",
                         SHARED_OPS),
                scenario("shared /dev/mem of kernel RAM: touch, fork, child exits", P, "devmem-ram", 4, "shared",
                         SHARED_OPS),
                scenario("shared /dev/mem of kernel RAM, read-only: fd opened 'r', prot 'r'", P, "devmem-ram", 4,
                         "shared", READ_OPS, prot="r", mode="r"),
                scenario("shared framebuffer on RAM: touch, fork, child exits", P, "fb-ram", 4, "shared",
                         SHARED_OPS),
                scenario("shared framebuffer on device memory: touch, fork, child exits", P, "fb-dev", 4, "shared",
                         SHARED_OPS),
                scenario("private /dev/mem of device memory: write, fork, child writes, exits", P, "devmem-dev", 4,
                         "private", COW_OPS),
                scenario("private /dev/mem of kernel RAM: write, fork, child writes, exits", P, "devmem-ram", 4,
                         "private", COW_OPS),
                partial("shared read-only mapping of a file opened 'r', the driver remaps pages 1-2 of 4", P, 4,
                        "shared", 1, 2, [("parent", "read", 1), ("parent", "read", 2), ("parent", "fork", "child"),
                                        ("child", "read", 2), ("child", "exit", None), ("parent", "exit", None)],
                        prot="r", mode="r")]
    rng = random.Random(params.get("seed", 0))
    out = []
    for i in range(14):
        kind, flags = KINDS[i % len(KINDS)]
        profile = rng.choice(("2.6.25/x86", "2.6.25/powerpc", "2.6.26/x86"))
        npages = rng.randrange(2, 6)
        ops = random_ops(rng, npages, n=rng.randrange(5, 10), gup=("gup", "gupw"))
        out.append(scenario(f"{flags} {WORDS[kind]}, {npages} pages, sequence {i + 1}", profile, kind, npages,
                            flags, ops))
    for i in range(2):                   # a driver's partial remap of a shared mapping of a file opened 'r'
        npages = rng.randrange(3, 6)
        first = rng.randrange(npages - 1)
        n = rng.randrange(1, npages - first + 1)
        profile = rng.choice(("2.6.25/x86", "2.6.25/powerpc", "2.6.26/x86"))
        ops = [("parent", "read", first), ("parent", "fork", "child"), ("child", "read", first + n - 1),
               ("child", "exit", None), ("parent", "munmap", first), ("parent", "exit", None)]
        out.append(partial(f"shared read-only file, pages {first}..{first + n - 1} of {npages} remapped "
                           f"(#{15 + i})", profile, npages, "shared", first, n, ops, prot="r", mode="r"))
    return out


register_sim("ps2.vm_normal_page", ("vm_normal_page",), normal_page_scenarios,
             ("vmlib.memory:vm_normal_page",), PRELUDE)


class PartRemap(Driver):
    """A driver whose mmap remaps pieces of the vma to device pfns: pages [first, first + n) for each
    (first, n) in `pieces`, in that order, stopping at the first remap that fails."""

    name = "partremap"

    def __init__(self, pieces: list[tuple[int, int]]):
        self.pieces = pieces

    def mmap(self, k, vma) -> int:
        for first, n in self.pieces:
            n = min(n, vma.npages - first)
            start = vma.vm_start + (first << PAGE_SHIFT)
            err = k.remap_pfn_range(vma, start, DEV_PFN + vma.vm_pgoff + first, n << PAGE_SHIFT)
            if err:
                return err
        return 0


def partial(name: str, profile: str, npages: int, flags: str, first: int, n: int, ops: list, prot: str = "rw",
            mode: str = "rw", then: tuple[int, int] | None = None) -> Scenario:
    """Map a PartRemap driver (opened with `mode`) remapping [first, first + n) of an npages vma with
    protection `prot` (and then the pages `then` = (first, n), if given), then perform ops."""
    version, arch = profile.split("/")
    pieces = [(first, n)] + ([then] if then else [])
    what = " then ".join(f"{a}..{a + b - 1}" for a, b in pieces)

    def run(w):
        k = w.k
        k.add_device_memory(DEV_PFN, 32, "nvram")
        p = k.spawn("parent")
        f = k.open(PartRemap(pieces), mode)
        how = "" if (prot, mode) == ("rw", "rw") else f" (prot {prot!r}, the file opened {mode!r})"
        w.step(f"parent: mmap {flags}{how}, {npages} pages; the driver remaps pages {what}",
               lambda: p.mmap(npages << PAGE_SHIFT, prot, flags, file=f, addr=BASE))
        play_ops(w, {"parent": p}, ops)
    return Scenario(name, version, arch, run)


def remap_scenarios(params: dict) -> list[Scenario]:
    """Visible: whole and partial remaps of private and shared vmas; hidden: seeded sizes and ranges."""
    touch = [("parent", "read", 1), ("parent", "fork", "child"), ("child", "read", 1), ("child", "exit", None)]
    touch3 = [("parent", "read", 3), ("parent", "fork", "child"), ("child", "read", 3), ("child", "exit", None)]
    if params.get("cases") != "hidden":
        return [scenario("private /dev/mem, the whole vma", P, "devmem-dev", 4, "private", COW_OPS),
                scenario("shared /dev/mem, the whole vma", P, "devmem-dev", 4, "shared", SHARED_OPS),
                scenario("private read-only /dev/mem (prot 'r'), the whole vma", P, "devmem-dev", 4, "private",
                         READ_OPS, prot="r"),
                scenario("shared read-only /dev/mem of a file opened 'r', the whole vma", P, "devmem-dev", 4, "shared",
                         READ_OPS, prot="r", mode="r"),
                partial("shared mapping, the driver remaps pages 1-2 of 4", P, 4, "shared", 1, 2, touch),
                partial("private mapping, the driver remaps all 3 pages itself", P, 3, "private", 0, 3, touch),
                partial("private mapping, the driver remaps pages 1-2 of 4", P, 4, "private", 1, 2, touch),
                partial("private read-only mapping (prot 'r'), the driver remaps pages 1-2 of 4", P, 4, "private",
                        1, 2, touch, prot="r"),
                partial("shared read-only mapping of a file opened 'r', the driver remaps pages 1-2 of 4", P, 4,
                        "shared", 1, 2, touch, prot="r", mode="r"),
                partial("private mapping, the driver remaps pages 0-1 of 4", P, 4, "private", 0, 2, touch),
                partial("private mapping, the driver remaps pages 2-3 of 4", P, 4, "private", 2, 2, touch3),
                partial("private read-only mapping (prot 'r'), the driver remaps pages 0-1 of 4", P, 4, "private",
                        0, 2, touch, prot="r"),
                partial("private read-only mapping (prot 'r'), the driver remaps pages 2-3 of 4", P, 4, "private",
                        2, 2, touch3, prot="r"),
                partial("shared mapping, the driver remaps pages 0-1, then pages 2-3 of 4", P, 4, "shared", 0, 2,
                        touch3, then=(2, 2)),
                partial("shared read-only mapping of a file opened 'r', the driver remaps pages 0-1, then 2-3 of 4",
                        P, 4, "shared", 0, 2, touch3, prot="r", mode="r", then=(2, 2))]
    rng = random.Random(params.get("seed", 0))
    out = []
    for i in range(12):
        npages = rng.randrange(2, 7)
        first = rng.choice((0, 0, rng.randrange(npages)))
        n = rng.choice((npages - first, rng.randrange(1, npages - first + 1)))
        flags = ("private", "shared")[i % 2]
        profile = rng.choice(("2.6.25/x86", "2.6.26/x86", "2.6.26/s390"))
        prot = "r" if i % 6 >= 4 else "rw"            # a read-only private vma, a shared one of a file opened 'r'
        mode = "r" if prot == "r" and flags == "shared" else "rw"
        ops = [("parent", "read", first), ("parent", "write" if prot == "rw" else "read", first),
               ("parent", "fork", "child"), ("child", "read", first), ("child", "exit", None), ("parent", "exit", None)]
        ro = "" if prot == "rw" else f", read-only{' file' if mode == 'r' else ''}"
        out.append(partial(f"{flags}{ro}, pages {first}..{first + n - 1} of {npages} remapped (#{i + 1})", profile,
                           npages, flags, first, n, ops, prot=prot, mode=mode))
    return out


register_sim("ps2.remap_pfn_range_check", ("remap_pfn_range_check",), remap_scenarios,
             ("vmlib.memory:remap_pfn_range_check",), PRELUDE)

__all__ = ["PRELUDE", "mapping"]
