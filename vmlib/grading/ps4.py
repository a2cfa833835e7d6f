"""ps4 cow: the do_wp_page decision of 2.6.26, reuse or copy, with and without a struct page
(kernel-facts §6b, v2.6.26 table).

Graded by the simulator (vmlib.grading.sim): writes after fork, after get_user_pages, to private
XIP files on RAM and on device memory, to private /dev/mem.
"""

from __future__ import annotations

import random

from vmlib.grading.sim import Scenario, random_ops, register_sim, scenario

PRELUDE = "from vmlib.flags import VM_SHARED, VM_MAYSHARE, VM_WRITE, VM_MAYWRITE, VM_PFNMAP, VM_MIXEDMAP, is_cow_mapping\n"
P = "2.6.26/x86"
FORK_OPS = [("parent", "write", 0), ("parent", "write", 1), ("parent", "fork", "child"), ("parent", "write", 0),
            ("child", "write", 1), ("child", "read", 0), ("child", "exit", None), ("parent", "write", 1),
            ("parent", "exit", None)]
GUP_OPS = [("parent", "write", 0), ("parent", "gupw", 0), ("parent", "fork", "child"), ("child", "exit", None),
           ("parent", "write", 0), ("parent", "fork", "child2"), ("child2", "write", 0), ("child2", "exit", None),
           ("parent", "exit", None)]
FILE_OPS = [("parent", "read", 0), ("parent", "write", 0), ("parent", "read", 1), ("parent", "fork", "child"),
            ("child", "write", 1), ("parent", "write", 1), ("child", "write", 0), ("child", "exit", None),
            ("parent", "exit", None)]
WORDS = {"anon": "anonymous memory", "xip-ram": "XIP file on RAM", "xip-dev": "XIP file on device memory",
         "devmem-dev": "/dev/mem of device memory", "devmem-ram": "/dev/mem of kernel RAM"}


def wp_scenarios(params: dict) -> list[Scenario]:
    """Visible: fork then writes, a page held by get_user_pages, private files with and without struct pages."""
    if params.get("cases") != "hidden":
        return [scenario("anonymous memory: write, fork, both write, child exits, parent writes again", P, "anon", 2,
                         "private", FORK_OPS),
                scenario("anonymous memory held by get_user_pages, then fork and writes", P, "anon", 1, "private",
                         GUP_OPS),
                scenario("private XIP file on RAM: read then write, fork, writes", P, "xip-ram", 2, "private",
                         FILE_OPS),
                scenario("private XIP file on device memory: read then write, fork, writes", P, "xip-dev", 2,
                         "private", FILE_OPS),
                scenario("private /dev/mem of device memory: write, fork, writes", P, "devmem-dev", 2, "private",
                         FORK_OPS),
                scenario("shared XIP file on device memory (write notification): read, write, fork, writes", P,
                         "xip-dev", 2, "shared", FILE_OPS),
                scenario("shared XIP file on RAM (write notification): read, write, fork, writes", P,
                         "xip-ram", 2, "shared", FILE_OPS),
                scenario("private /dev/mem of kernel RAM: write, fork, writes", P, "devmem-ram", 2, "private",
                         FORK_OPS),
                scenario("shared XIP file on RAM on s390 (pte_special): read, write, fork, writes", "2.6.26/s390",
                         "xip-ram", 2, "shared", FILE_OPS)]
    rng = random.Random(params.get("seed", 0))
    out = []
    kinds = ["anon", "xip-ram", "xip-dev", "devmem-dev", "devmem-ram", "xip-dev", "xip-ram"]
    for i in range(18):
        kind = kinds[i % len(kinds)]
        flags = "shared" if i % len(kinds) >= 5 else "private"
        npages = rng.randrange(1, 4)
        ops = random_ops(rng, npages, n=rng.randrange(6, 11), gup=("gupw", "write") if kind == "anon" else ())
        profile = rng.choice(("2.6.26/x86", "2.6.26/s390", "2.6.27/x86"))
        out.append(scenario(f"{flags} {WORDS[kind]}, {npages} pages, sequence {i + 1}", profile, kind, npages,
                            flags, ops))
    return out


register_sim("ps4.do_wp_page_decision", ("do_wp_page_decision",), wp_scenarios,
             ("vmlib.memory:do_wp_page_decision",), PRELUDE)


def modern_scenarios(params: dict) -> list[Scenario]:
    """The same kinds of scenarios on 6.12/x86, where reuse depends on PageAnonExclusive and the refcount."""
    if params.get("cases") != "hidden":
        m = "6.12/x86"
        return [scenario("6.12: anonymous memory, fork, both write, child exits, parent writes", m, "anon", 2, "private",
                         FORK_OPS),
                scenario("6.12: anonymous memory held by get_user_pages, then fork and writes", m, "anon", 1,
                         "private", GUP_OPS),
                scenario("6.12: private XIP file on device memory: read then write, fork, writes", m, "xip-dev", 2,
                         "private", FILE_OPS),
                scenario("6.12: shared XIP file on device memory (write notification): writes, fork", m, "xip-dev",
                         2, "shared", FILE_OPS),
                scenario("6.12/m68k: shared XIP file on RAM (write notification): writes, fork", "6.12/m68k",
                         "xip-ram", 2, "shared", FILE_OPS),
                scenario("6.12: anonymous memory: read (the zero page) then write, fork, writes", m, "anon", 2,
                         "private", FILE_OPS),
                scenario("6.12: private /dev/mem of kernel RAM: write, fork, writes", m, "devmem-ram", 2, "private",
                         FORK_OPS),
                scenario("6.12: shared XIP file on RAM (write notification): writes, fork", m, "xip-ram", 2, "shared",
                         FILE_OPS)]
    rng = random.Random(params.get("seed", 0))
    out = []
    kinds = ["anon", "xip-ram", "xip-dev", "devmem-dev", "anon", "xip-ram"]
    for i in range(12):
        kind = kinds[i % len(kinds)]
        flags = "shared" if i % len(kinds) == 5 else "private"
        npages = rng.randrange(1, 4)
        ops = random_ops(rng, npages, n=rng.randrange(6, 11), gup=("gupw", "write") if kind == "anon" else ())
        profile = rng.choice(("6.12/x86", "6.12/arm64", "6.12/m68k"))
        out.append(scenario(f"{flags} {WORDS[kind]}, {npages} pages, sequence {i + 1}", profile, kind, npages,
                            flags, ops))
    return out


register_sim("ps4.do_wp_page_decision_612", ("do_wp_page_decision",), modern_scenarios,
             ("vmlib.memory:do_wp_page_decision",), PRELUDE)
