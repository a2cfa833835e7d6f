"""ps3 mixedmap: vm_normal_page of 2.6.26 without pte_special (VM_MIXEDMAP and VM_PFNMAP rows) and the
vm_insert_mixed decision with and without pte_special (kernel-facts §1a, §5a).

Graded by the simulator (vmlib.grading.sim): XIP files on device memory and on RAM, /dev/mem,
framebuffers and anonymous memory, with fork, copy-on-write, get_user_pages, munmap and exit.
"""

from __future__ import annotations

import random

from vmlib.grading.sim import Scenario, random_ops, register_sim, scenario

PRELUDE = (
    "import errno\n"
    "from vmlib.flags import PAGE_SHIFT, VM_PFNMAP, VM_MIXEDMAP, VM_SHARED, VM_MAYWRITE, VM_WRITE, is_cow_mapping\n"
)
P = "2.6.26/x86"
COW_OPS = [("parent", "read", 0), ("parent", "write", 1), ("parent", "fork", "child"), ("child", "read", 2),
           ("child", "write", 0), ("child", "exit", None), ("parent", "munmap", 0), ("parent", "exit", None)]
SHARED_OPS = [("parent", "read", 0), ("parent", "write", 1), ("parent", "fork", "child"), ("child", "read", 1),
              ("child", "exit", None), ("parent", "munmap", 1), ("parent", "exit", None)]
WORDS = {"xip-dev": "XIP file on device memory", "xip-ram": "XIP file on RAM", "devmem-dev": "/dev/mem of device memory",
         "devmem-ram": "/dev/mem of kernel RAM", "fb-ram": "framebuffer on RAM", "anon": "anonymous memory"}
KINDS = [("xip-dev", "private"), ("xip-ram", "private"), ("xip-dev", "shared"), ("xip-ram", "shared"),
         ("devmem-dev", "private"), ("devmem-ram", "private"), ("fb-ram", "shared"), ("anon", "private")]


def _seeded(params: dict, profiles: tuple, kinds: list, n: int) -> list[Scenario]:
    rng = random.Random(params.get("seed", 0))
    out = []
    for i in range(n):
        kind, flags = kinds[i % len(kinds)]
        npages = rng.randrange(2, 6)
        ops = random_ops(rng, npages, n=rng.randrange(5, 10), gup=("gup", "gupw"))
        profile = rng.choice(profiles)
        out.append(scenario(f"{flags} {WORDS[kind]}, {npages} pages, sequence {i + 1}", profile, kind, npages, flags,
                            ops))
    return out


def normal_page_scenarios(params: dict) -> list[Scenario]:
    """Visible: anonymous memory, XIP on device memory and on RAM (shared, then private), /dev/mem and a
    framebuffer (the ps2 rows again, on 2.6.26); hidden: seeded."""
    if params.get("cases") == "hidden":
        return _seeded(params, ("2.6.26/x86", "2.6.26/powerpc", "2.6.26/m68k"), KINDS, 16)
    return [scenario("anonymous memory: write, fork, copy-on-write, exit", P, "anon", 4, "private", COW_OPS),
            scenario("shared XIP file on device memory: read, write, fork, munmap", P, "xip-dev", 4, "shared",
                     SHARED_OPS),
            scenario("shared XIP file on RAM: read, write, fork, munmap", P, "xip-ram", 4, "shared", SHARED_OPS),
            scenario("private XIP file on device memory: read, write (COW), fork, exit", P, "xip-dev", 4, "private",
                     COW_OPS),
            scenario("private XIP file on RAM: read, write (COW), fork, exit", P, "xip-ram", 4, "private", COW_OPS),
            scenario("shared framebuffer on RAM: read, write, fork, munmap", P, "fb-ram", 4, "shared", SHARED_OPS),
            scenario("private /dev/mem of device memory on 2.6.26: write, fork, exit", P, "devmem-dev", 4, "private",
                     COW_OPS),
            scenario("private /dev/mem of kernel RAM on 2.6.26: write, fork, exit", P, "devmem-ram", 4, "private",
                     COW_OPS)]


register_sim("ps3.vm_normal_page", ("vm_normal_page",), normal_page_scenarios, ("vmlib.memory:vm_normal_page",),
             PRELUDE)


def insert_mixed_scenarios(params: dict) -> list[Scenario]:
    """Visible: XIP on RAM and on device memory, with and without pte_special; hidden: seeded, 6.12 too."""
    kinds = [("xip-ram", "private"), ("xip-ram", "shared"), ("xip-dev", "shared"), ("xip-dev", "private")]
    if params.get("cases") == "hidden":
        return _seeded(params, ("2.6.26/x86", "2.6.26/s390", "2.6.27/x86", "2.6.27/powerpc", "6.12/x86",
                                "6.12/m68k"), kinds, 14)
    return [scenario("shared XIP file on RAM, 2.6.26/x86 (no pte_special)", P, "xip-ram", 4, "shared", SHARED_OPS),
            scenario("private XIP file on RAM, 2.6.26/s390 (pte_special)", "2.6.26/s390", "xip-ram", 4, "private",
                     COW_OPS),
            scenario("shared XIP file on RAM, 2.6.27/x86 (pte_special)", "2.6.27/x86", "xip-ram", 4, "shared",
                     SHARED_OPS),
            scenario("private XIP file on device memory, 2.6.26/x86", P, "xip-dev", 4, "private", COW_OPS),
            scenario("shared XIP file on device memory, 2.6.27/x86 (pte_special)", "2.6.27/x86", "xip-dev", 4,
                     "shared", SHARED_OPS)]


register_sim("ps3.insert_mixed_decision", ("insert_mixed_decision",), insert_mixed_scenarios,
             ("vmlib.memory:insert_mixed_decision",), PRELUDE)
