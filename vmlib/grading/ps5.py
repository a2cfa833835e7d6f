"""ps5 special: one vm_normal_page for every 2.6.26 and 2.6.27 arch, with and without a special pte
bit, and the lockless gup_fast pte test (kernel-facts §1a, §1b, §9a, §9b).

Graded by the simulator (vmlib.grading.sim) on 2.6.26 x86/s390 and 2.6.27 x86/powerpc/m68k (6.12 for
the gup test): framebuffers, /dev/mem, XIP files on RAM and on device memory, anonymous memory, with
get_user_pages and get_user_pages_fast.
"""

from __future__ import annotations

import random

from vmlib.grading.sim import Scenario, random_ops, register_sim, scenario

PRELUDE = "from vmlib.flags import VM_PFNMAP, VM_MIXEDMAP, VM_SHARED, VM_WRITE, is_cow_mapping\n"
P = "2.6.27/x86"
COW_OPS = [("parent", "read", 0), ("parent", "write", 1), ("parent", "gup", 1), ("parent", "fork", "child"),
           ("child", "write", 0), ("child", "read", 1), ("child", "exit", None), ("parent", "munmap", 0),
           ("parent", "exit", None)]
FAST_OPS = [("parent", "write", 0), ("parent", "gupfastw", 0), ("parent", "gupfast", 1), ("parent", "fork", "child"),
            ("parent", "gupfastw", 0), ("child", "gupfast", 0), ("child", "exit", None), ("parent", "gupfastw", 1),
            ("parent", "exit", None)]
READ_FIRST_OPS = [("parent", "read", 0), ("parent", "gupfast", 0), ("parent", "gupfastw", 0), ("parent", "write", 1),
                  ("parent", "gupfast", 1), ("parent", "fork", "child"), ("child", "gupfastw", 1),
                  ("child", "gupfast", 1), ("child", "exit", None), ("parent", "gupfastw", 1), ("parent", "exit", None)]
KINDS = [("fb-ram", "shared"), ("fb-dev", "shared"), ("devmem-dev", "private"), ("devmem-ram", "private"),
         ("xip-ram", "private"), ("xip-ram", "shared"), ("xip-dev", "shared"), ("anon", "private")]
WORDS = {"fb-ram": "framebuffer on RAM", "fb-dev": "framebuffer on device memory", "devmem-dev": "/dev/mem of device memory",
         "devmem-ram": "/dev/mem of kernel RAM", "xip-ram": "XIP file on RAM", "xip-dev": "XIP file on device memory",
         "anon": "anonymous memory"}


def _seeded(params: dict, profiles: tuple, gup: tuple, n: int) -> list[Scenario]:
    rng = random.Random(params.get("seed", 0))
    out = []
    for i in range(n):
        kind, flags = KINDS[i % len(KINDS)]
        profile = rng.choice(profiles)
        npages = rng.randrange(2, 5)
        ops = random_ops(rng, npages, n=rng.randrange(6, 10), gup=gup)
        out.append(scenario(f"{flags} {WORDS[kind]}, {npages} pages, sequence {i + 1}", profile, kind, npages, flags,
                            ops))
    return out


def normal_page_scenarios(params: dict) -> list[Scenario]:
    """Visible: a framebuffer, /dev/mem, XIP on RAM and on device memory, anonymous memory; hidden: seeded."""
    if params.get("cases") == "hidden":
        return _seeded(params, ("2.6.26/s390", "2.6.27/x86", "2.6.27/powerpc", "2.6.26/x86", "2.6.27/m68k"),
                       ("gup", "gupw", "gupfast"), 18)
    return [scenario("anonymous memory: write, get_user_pages, fork, exit", P, "anon", 3, "private", COW_OPS),
            scenario("shared framebuffer on RAM: touch, fork, exit", P, "fb-ram", 3, "shared", COW_OPS),
            scenario("shared framebuffer on device memory: touch, fork, exit", P, "fb-dev", 3, "shared", COW_OPS),
            scenario("private /dev/mem of device memory: write, fork, exit", P, "devmem-dev", 3, "private", COW_OPS),
            scenario("private /dev/mem of kernel RAM: write, fork, exit", P, "devmem-ram", 3, "private", COW_OPS),
            scenario("shared XIP file on RAM (special ptes for RAM pfns)", P, "xip-ram", 3, "shared", COW_OPS),
            scenario("private XIP file on RAM (special ptes for RAM pfns)", P, "xip-ram", 3, "private", COW_OPS),
            scenario("shared XIP file on device memory on s390 (2.6.26)", "2.6.26/s390", "xip-dev", 3, "shared",
                     COW_OPS),
            scenario("2.6.27/m68k (no pte_special): anonymous memory", "2.6.27/m68k", "anon", 3, "private", COW_OPS),
            scenario("2.6.27/m68k (no pte_special): shared framebuffer on RAM", "2.6.27/m68k", "fb-ram", 3, "shared",
                     COW_OPS),
            scenario("2.6.27/m68k (no pte_special): private /dev/mem of kernel RAM", "2.6.27/m68k", "devmem-ram", 3,
                     "private", COW_OPS),
            scenario("2.6.26/x86 (no pte_special): shared XIP file on device memory", "2.6.26/x86", "xip-dev", 3,
                     "shared", COW_OPS),
            scenario("2.6.26/x86 (no pte_special): private XIP file on RAM", "2.6.26/x86", "xip-ram", 3, "private",
                     COW_OPS),
            scenario("2.6.26/x86 (no pte_special): shared XIP file on RAM", "2.6.26/x86", "xip-ram", 3, "shared",
                     COW_OPS),
            scenario("2.6.27/m68k (no pte_special): private /dev/mem of device memory", "2.6.27/m68k", "devmem-dev",
                     3, "private", COW_OPS),
            scenario("2.6.27/m68k (no pte_special): shared framebuffer on device memory", "2.6.27/m68k", "fb-dev", 3,
                     "shared", COW_OPS)]


register_sim("ps5.vm_normal_page", ("vm_normal_page",), normal_page_scenarios, ("vmlib.memory:vm_normal_page",),
             PRELUDE)


def gup_fast_scenarios(params: dict) -> list[Scenario]:
    """Visible: get_user_pages_fast on anonymous memory, a framebuffer on device memory and an XIP file on RAM."""
    if params.get("cases") == "hidden":
        return _seeded(params, ("2.6.27/x86", "2.6.27/powerpc", "6.12/x86"), ("gupfast", "gupfastw", "gupfastw"), 14)
    return [scenario("anonymous memory: write, gup_fast, fork, gup_fast for a write", P, "anon", 2, "private",
                     FAST_OPS),
            scenario("anonymous memory on powerpc (2.6.27)", "2.6.27/powerpc", "anon", 2, "private", FAST_OPS),
            scenario("shared framebuffer on device memory: gup_fast", P, "fb-dev", 2, "shared", FAST_OPS),
            scenario("shared framebuffer on RAM: gup_fast", P, "fb-ram", 2, "shared", READ_FIRST_OPS),
            scenario("private XIP file on RAM: gup_fast", P, "xip-ram", 2, "private", FAST_OPS),
            scenario("private XIP file on RAM, read first: gup_fast", P, "xip-ram", 2, "private", READ_FIRST_OPS),
            scenario("private /dev/mem of device memory, read first: gup_fast", P, "devmem-dev", 2, "private",
                     READ_FIRST_OPS),
            scenario("6.12: anonymous memory, read first (the zero page), then gup_fast", "6.12/x86", "anon", 2,
                     "private", READ_FIRST_OPS)]


register_sim("ps5.gup_fast_pte_ok", ("gup_fast_pte_ok",), gup_fast_scenarios, ("vmlib.gup:gup_fast_pte_ok",),
             PRELUDE)
