"""ps9's pool of broken kernels: each mutation is one wrong decision rule and the scenario that shows it.

A mutation is a wrong version of one overridable decision function (`k.override`). The broken kernel
asks the kernel's own rule first; where the mutated rule answers differently it answers wrongly.
Every decision the broken function makes is traced as the broken kernel's own decision, *without a
kernel-facts row*: the row the right rule would cite is the answer the student is asked for, so
the trace never names it (`broken_kernel`). The consequence (a crash, a `k.check()` failure, a read
of bytes nobody wrote there) comes from the unchanged rest of the kernel, often one operation later.

Which row each mutation breaks is not here: it is the answer key, kept in the hidden test cell of
the notebook (the nbgrader gradebook). tests/test_ps9.py names, per mutation, the kernel function and
version whose rule it breaks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vmlib.errors import KernelBug
from vmlib.flags import (
    VM_FAULT_ERROR,
    VM_FAULT_NOPAGE,
    VM_FAULT_SIGBUS,
    VM_MAYSHARE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_SHARED,
    VM_WRITE,
)
from vmlib.trace import NOTHING_SEEN, text_seen

DECIDERS = {
    "vm_normal_page": "vm_normal_page(k, vma, addr, pte) -> page or None",
    "insert_mixed_decision": 'insert_mixed_decision(k, vma, pfn) -> "page" or "pfn"',
    "do_wp_page_decision": 'do_wp_page_decision(k, vma, page, pte) -> "reuse" or "copy"',
    "remap_pfn_range_check": "remap_pfn_range_check(k, vma, addr, end) -> 0 or -errno",
    "gup_fast_pte_ok": "gup_fast_pte_ok(k, pte, write) -> True or False",
    "copy_one_pte_decision": "copy_one_pte_decision(k, vma, pte, page) -> (write_protect, counted): two bools",
    "zap_pte_decision": 'zap_pte_decision(k, vma, pte, page) -> None, "anon" or "file"',
    "do_fault_decision": 'do_fault_decision(k, vma, ret, write) -> "return", "map" or "cow"',
}
# the trace lines that report each decision function's answer (vm_normal_page traces its own)
REPORTERS = {
    "vm_normal_page": ("vm_normal_page",),
    "insert_mixed_decision": ("vm_insert_mixed", "vmf_insert_mixed"),
    "do_wp_page_decision": ("do_wp_page",),
    "remap_pfn_range_check": ("remap_pfn_range",),
    "gup_fast_pte_ok": ("gup_pte_range",),
    "copy_one_pte_decision": ("copy_one_pte",),
    "zap_pte_decision": ("zap_pte_range",),
    "do_fault_decision": ("__do_fault",),
}


# ---- the wrong rules --------------------------------------------------------------------------------
# Each takes (k, args, right), `right` being the kernel's answer, and returns (wrong answer, the broken
# kernel's account of its decision) where the mutated rule differs, else None. A wrong answer that is
# an exception is raised (the broken rule crashes where the right one does not).

def _page(k, pfn: int):
    return k.pfn_to_page(pfn)


def np_mixed_ram_special(k, args, right):
    vma, _, pte = args
    if right is not None and vma.vm_flags & VM_MIXEDMAP and not pte.special:
        return None, f"VM_MIXEDMAP, pfn {pte.pfn} → special (not refcounted)"
    return None


def np_mixed_nopage_normal(k, args, right):
    vma, addr, pte = args
    if right is None and vma.vm_flags & VM_MIXEDMAP and not k.pfn_valid(pte.pfn) and not pte.special:
        return (KernelBug(f"vm_normal_page: VM_BUG_ON(!pfn_valid({pte.pfn})) at {addr:#x}: a normal mapping "
                          f"of a pfn with no struct page (CONFIG_DEBUG_VM)"),
                f"VM_MIXEDMAP, pfn {pte.pfn} → a normal mapping (refcounted)")
    return None


def np_pfnmap_shared_counted(k, args, right):
    vma, addr, pte = args
    if right is None and vma.vm_flags & VM_PFNMAP and pte.pfn != vma.linear_pgoff(addr) and k.pfn_valid(pte.pfn):
        return _page(k, pte.pfn), f"VM_PFNMAP, pfn {pte.pfn} is not linear → a page (refcounted)"
    return None


def np_pfnmap_linear_counted(k, args, right):
    vma, addr, pte = args
    if right is None and vma.vm_flags & VM_PFNMAP and pte.pfn == vma.linear_pgoff(addr) and k.pfn_valid(pte.pfn):
        return _page(k, pte.pfn), f"VM_PFNMAP, pfn {pte.pfn} has a struct page → a page (refcounted)"
    return None


def np_pfnmap_cowed_special(k, args, right):
    vma, _addr, pte = args
    if right is not None and vma.vm_flags & VM_PFNMAP and not vma.vm_flags & VM_MIXEDMAP:
        return None, f"VM_PFNMAP, pfn {pte.pfn} → special (raw pfn of the remap)"
    return None


def np_special_ram_counted(k, args, right):
    _vma, _, pte = args
    if right is None and pte.special and k.pfn_valid(pte.pfn) and not k.is_zero_pfn(pte.pfn):
        return _page(k, pte.pfn), f"special pte, pfn {pte.pfn} is pfn_valid → a page (refcounted)"
    return None


def np_zero_counted(k, args, right):
    _, _, pte = args
    if right is None and k.is_zero_pfn(pte.pfn):
        return _page(k, pte.pfn), f"pfn {pte.pfn} (the zero page) has a struct page → a page (refcounted)"
    return None


def np_not_special_mixed_nopage(k, args, right):
    vma, _, pte = args
    if right is not None and not pte.special and vma.vm_flags & (VM_MIXEDMAP | VM_PFNMAP):
        return None, f"not special, but the vma is VM_MIXEDMAP/VM_PFNMAP → special (pfn {pte.pfn})"
    return None


def im_never_page(k, args, right):
    if right == "page":
        return "pfn", f"pfn {args[1]} → insert_pfn (special, not refcounted)"
    return None


def im_page_if_no_special(k, args, right):
    _, pfn = args
    if right == "pfn" and not k.profile.HAVE_PTE_SPECIAL:
        return "page", f"no pte_special → insert_page of pfn {pfn} (refcounted)"
    return None


def wp_anon_always_reused(k, args, right):
    _, page, _ = args
    if right[0] == "copy" and page is not None and page.anon:
        return (("reuse", f"anon page, mapcount {page._mapcount + 1} → reuse"),
                f"reuse: anon page, mapcount {page._mapcount + 1} → reuse")
    return None


def wp_raw_private_reused(k, args, right):
    vma, page, pte = args
    if right[0] == "copy" and page is None and not vma.vm_flags & VM_SHARED and not k.is_zero_pfn(pte.pfn):
        return (("reuse", "no struct page → make the pte writable"),
                f"reuse: no struct page (pfn {pte.pfn}) → make the pte writable")
    return None


def wp_file_private_reused(k, args, right):
    _vma, page, _ = args
    if right[0] == "copy" and page is not None and not page.anon:
        return (("reuse", f"file page {page.pfn} → make the pte writable"),
                f"reuse: file page {page.pfn} → make the pte writable")
    return None


def wp_shared_raw_copied(k, args, right):
    vma, page, pte = args
    if right[0] == "reuse" and page is None and vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
        return (("copy", "no struct page → copy"), f"copy: no struct page (pfn {pte.pfn}) → copy into a new page")
    return None


def wp_shared_file_copied(k, args, right):
    vma, page, _ = args
    if right[0] == "reuse" and page is not None and not page.anon and vma.vm_flags & VM_WRITE:
        return (("copy", f"file page {page.pfn} → copy"), f"copy: file page {page.pfn} → copy into a new page")
    return None


def wp_anon_shared_by_fork_reused(k, args, right):
    _, page, _ = args
    if right[0] == "copy" and page is not None and page.anon:
        return (("reuse", f"anon page {page.pfn} → reuse"), f"reuse: anon page {page.pfn} → reuse")
    return None


def gf_special_taken(k, args, right):
    pte, write = args
    if not right and pte is not None and pte.present and pte.special and (pte.write or not write):
        return True, f"pte of pfn {pte.pfn} is present{' and writable' if pte.write else ''} → taken without the slow path"
    return None


def remap_cow_refused(k, args, right):
    vma, _addr, _end = args
    if right == 0 and k.is_cow_mapping(vma.vm_flags):
        return -22, "COW mapping → -EINVAL"
    return None


def remap_shared_refused(k, args, right):
    vma, _addr, _end = args
    if right == 0 and not k.is_cow_mapping(vma.vm_flags):
        return -22, "not a COW mapping → -EINVAL"
    return None


def cp_cow_not_wrprotected(k, args, right):
    _vma, pte, page = args
    if right[0] and pte.write:
        return ((False, right[1]), f"pfn {pte.pfn}: pte copied as it is, writable in parent and child"
                + (f"; page {page.pfn} +1 ref +1 mapcount" if page is not None else ""))
    return None


def cp_page_not_counted(k, args, right):
    _vma, pte, page = args
    if right[1] and page is not None:
        return (right[0], False), f"pfn {pte.pfn}: pte copied; the child's mapping is not counted"
    return None


def zp_raw_ram_dropped(k, args, right):
    _vma, pte, _page = args
    if right is None and k.pfn_valid(pte.pfn) and not k.is_zero_pfn(pte.pfn):
        return "file", f"pfn {pte.pfn} has a struct page → dropped as a file page"
    return None


def zp_file_vma_file_rss(k, args, right):
    vma, _pte, page = args
    if right == "anon" and getattr(vma, "vm_file", None) is not None:
        return "file", f"page {page.pfn} in a file vma → file_rss -1, mapcount -1, ref -1"
    return None


def df_nopage_mapped(k, args, right):
    _vma, ret, _write = args
    if right == "return" and ret & VM_FAULT_NOPAGE and not ret & VM_FAULT_ERROR:
        return "map", "->fault returned VM_FAULT_NOPAGE → map vmf.page"
    return None


def df_sigbus_mapped(k, args, right):
    _vma, ret, _write = args
    if right == "return" and ret & VM_FAULT_SIGBUS and not ret & VM_FAULT_NOPAGE:
        return "map", "->fault returned VM_FAULT_SIGBUS → map vmf.page"
    return None


def df_private_write_mapped(k, args, right):
    _vma, _ret, _write = args
    if right == "cow":
        return "map", "->fault gave a page for a write → map vmf.page writable"
    return None


# ---- the pool ---------------------------------------------------------------------------------------

OLD_NP = ("2.6.25/x86", "2.6.26/x86", "2.6.26/s390", "2.6.27/x86", "2.6.27/m68k")
NEW_NP = ("6.12/x86", "6.12/m68k")
OLD_MIXED = ("2.6.26/x86", "2.6.26/s390", "2.6.27/x86", "2.6.27/m68k")
PFNMAP_KINDS = (("devmem-dev", "private"), ("devmem-ram", "private"), ("devmem-dev", "shared"),
                ("devmem-ram", "shared"), ("fb-ram", "shared"), ("anon", "private"))
MIXED_KINDS = (("xip-ram", "private"), ("xip-dev", "private"), ("xip-ram", "shared"), ("xip-dev", "shared"),
               ("anon", "private"))
ALL_KINDS = MIXED_KINDS + PFNMAP_KINDS[:-1]
FORK_KINDS = (("anon", "private"), ("xip-ram", "private"), ("devmem-ram", "private"), ("devmem-dev", "private"),
              ("devmem-ram", "shared"), ("fb-ram", "shared"))     # mappings whose ptes a 2.6 fork copies (anon_vma, PFNMAP)
SHORT_KINDS = (("xipshort-ram", "private"), ("xipshort-dev", "shared")) + MIXED_KINDS    # SIGBUS beyond EOF


@dataclass(frozen=True)
class Mutation:
    """One broken rule: its decision function, where its scenario runs and where the fix is graded."""

    id: str
    fn: str                      # the overridable decision function it breaks
    profile: str                 # "version/arch" of the broken kernel and its scenario
    wrong: Callable              # (k, args, right) -> (answer, trace text) or None
    kind: str                    # the scenario's mapping (vmlib.grading.sim.mapping)
    npages: int
    flags: str
    ops: tuple                   # the scenario's operations (vmlib.grading.sim.play_ops)
    profiles: tuple              # where the fix is graded (hidden scenarios)
    kinds: tuple = ALL_KINDS     # the mappings of the hidden scenarios (those a profile cannot map are skipped)

    @property
    def version(self) -> str:
        return self.profile.split("/")[0]

    @property
    def arch(self) -> str:
        return self.profile.split("/")[1]

    @property
    def signature(self) -> str:
        return DECIDERS[self.fn]


P, C = "parent", "child"
EXIT = ((C, "exit", None), (P, "exit", None))


def _m(id, fn, profile, wrong, kind, flags, ops, profiles, kinds=ALL_KINDS, npages=2):
    return Mutation(id, fn, profile, wrong, kind, npages, flags, tuple(ops), profiles, kinds)


NP, IM, WP, GF, RC = ("vm_normal_page", "insert_mixed_decision", "do_wp_page_decision", "gup_fast_pte_ok",
                      "remap_pfn_range_check")
CP, ZP, DF = "copy_one_pte_decision", "zap_pte_decision", "do_fault_decision"
MUTATIONS: tuple[Mutation, ...] = (
    # vm_normal_page, 2.6.x, per arch
    _m("m1", NP, "2.6.26/x86", np_mixed_ram_special, "xip-ram", "private",
       [(P, "read", 0), (P, "read", 1), (P, "write", 0), (P, "exit", None)], OLD_NP),
    _m("m2", NP, "2.6.25/x86", np_pfnmap_shared_counted, "fb-ram", "shared",
       [(P, "write", 0), (P, "fork", C), (C, "read", 0), *EXIT], OLD_NP),
    _m("m3", NP, "2.6.25/x86", np_pfnmap_linear_counted, "devmem-ram", "private",
       [(P, "read", 0), (P, "fork", C), *EXIT], OLD_NP),
    _m("m4", NP, "2.6.27/x86", np_special_ram_counted, "xip-ram", "private",
       [(P, "read", 0), (P, "write", 1), (P, "fork", C), *EXIT], OLD_NP),
    _m("m7", NP, "2.6.26/x86", np_mixed_nopage_normal, "xip-dev", "private",
       [(P, "read", 0), (P, "write", 1), (P, "fork", C), *EXIT], OLD_NP),
    _m("m8", NP, "2.6.26/x86", np_pfnmap_cowed_special, "devmem-ram", "private",
       [(P, "read", 0), (P, "write", 0), (P, "munmap", 0), (P, "exit", None)], OLD_NP),
    _m("m9", NP, "2.6.26/s390", np_not_special_mixed_nopage, "xip-ram", "private",
       [(P, "read", 0), (P, "write", 0), (P, "read", 1), (P, "exit", None)], OLD_NP),
    _m("m10", NP, "2.6.26/x86", np_pfnmap_shared_counted, "fb-ram", "shared",
       [(P, "read", 0), (P, "write", 1), (P, "munmap", 1), (P, "exit", None)], OLD_NP),
    _m("m11", NP, "2.6.27/m68k", np_mixed_ram_special, "xip-ram", "shared",
       [(P, "read", 0), (P, "read", 1), (P, "fork", C), (C, "read", 1), *EXIT], OLD_NP),
    # vm_normal_page, 6.12, with and without pte_special
    _m("m12", NP, "6.12/m68k", np_mixed_ram_special, "xip-ram", "private",
       [(P, "read", 0), (P, "write", 0), (P, "exit", None)], NEW_NP),
    _m("m13", NP, "6.12/m68k", np_zero_counted, "anon", "private",
       [(P, "read", 0), (P, "read", 1), (P, "exit", None)], NEW_NP),
    _m("m14", NP, "6.12/x86", np_zero_counted, "anon", "private",
       [(P, "read", 0), (P, "fork", C), *EXIT], NEW_NP),
    _m("m15", NP, "6.12/x86", np_special_ram_counted, "devmem-ram", "private",
       [(P, "read", 0), (P, "fork", C), *EXIT], NEW_NP),
    _m("m16", NP, "6.12/m68k", np_pfnmap_linear_counted, "devmem-ram", "shared",
       [(P, "read", 0), (P, "munmap", 0), (P, "exit", None)], NEW_NP),
    _m("m17", NP, "6.12/m68k", np_pfnmap_shared_counted, "fb-ram", "shared",
       [(P, "write", 1), (P, "fork", C), (C, "read", 1), *EXIT], NEW_NP),
    # the insert decision of vm_insert_mixed / vmf_insert_mixed
    _m("m5", IM, "2.6.26/x86", im_never_page, "xip-ram", "private",
       [(P, "read", 0), (P, "read", 1), (P, "exit", None)], OLD_MIXED, MIXED_KINDS),
    _m("m18", IM, "6.12/m68k", im_never_page, "xip-ram", "shared",
       [(P, "read", 1), (P, "fork", C), (C, "exit", None), (P, "exit", None)], NEW_NP, MIXED_KINDS),
    _m("m19", IM, "2.6.26/x86", im_page_if_no_special, "xip-dev", "private",
       [(P, "read", 0), (P, "exit", None)], OLD_MIXED, MIXED_KINDS),
    # do_wp_page: reuse or copy
    _m("m6", WP, "2.6.26/x86", wp_anon_always_reused, "anon", "private",
       [(P, "write", 0), (P, "fork", C), (C, "write", 0), (P, "read", 0), *EXIT], OLD_MIXED),
    _m("m20", WP, "2.6.26/x86", wp_raw_private_reused, "devmem-ram", "private",
       [(P, "read", 0), (P, "fork", C), (C, "read", 0), (P, "write", 0), (C, "read", 0), *EXIT], OLD_MIXED),
    _m("m21", WP, "6.12/x86", wp_raw_private_reused, "devmem-ram", "private",
       [(P, "read", 1), (P, "fork", C), (C, "read", 1), (P, "write", 1), (C, "read", 1), *EXIT], NEW_NP),
    _m("m22", WP, "2.6.26/x86", wp_file_private_reused, "xip-ram", "private",
       [(P, "read", 0), (P, "fork", C), (C, "read", 0), (P, "write", 0), (C, "read", 0), *EXIT], OLD_MIXED),
    _m("m23", WP, "2.6.26/x86", wp_shared_raw_copied, "xip-dev", "shared",
       [(P, "read", 0), (P, "fork", C), (P, "write", 0), (C, "read", 0), *EXIT], OLD_MIXED),
    _m("m24", WP, "6.12/x86", wp_shared_raw_copied, "xip-ram", "shared",
       [(P, "read", 1), (P, "fork", C), (C, "write", 1), (P, "read", 1), *EXIT], NEW_NP),
    _m("m25", WP, "2.6.26/x86", wp_shared_file_copied, "xip-ram", "shared",
       [(P, "read", 1), (P, "fork", C), (P, "write", 1), (C, "read", 1), *EXIT], OLD_MIXED),
    _m("m26", WP, "6.12/x86", wp_anon_shared_by_fork_reused, "anon", "private",
       [(P, "write", 1), (P, "fork", C), (C, "write", 1), (P, "read", 1), *EXIT], NEW_NP),
    # get_user_pages_fast: may the lockless walk take this pte?
    _m("m27", GF, "2.6.27/x86", gf_special_taken, "xip-dev", "shared",
       [(P, "read", 0), (P, "gupfast", 0), (P, "exit", None)], ("2.6.27/x86", "2.6.27/powerpc")),
    _m("m28", GF, "6.12/x86", gf_special_taken, "devmem-dev", "shared",
       [(P, "read", 1), (P, "gupfast", 1), (P, "exit", None)], ("6.12/x86",)),
    # the COW check of remap_pfn_range
    _m("m29", RC, "2.6.26/x86", remap_cow_refused, "devmem-ram", "private",
       [(P, "read", 0), (P, "exit", None)], ("2.6.25/x86", "2.6.26/x86", "2.6.27/x86"), PFNMAP_KINDS),
    _m("m30", RC, "6.12/x86", remap_shared_refused, "devmem-dev", "shared",
       [(P, "read", 0), (P, "exit", None)], NEW_NP, PFNMAP_KINDS),
    # copy_one_pte at fork: write-protect a COW mapping's ptes, count the child's mapping of a page
    _m("m31", CP, "2.6.26/x86", cp_cow_not_wrprotected, "anon", "private",
       [(P, "write", 0), (P, "fork", C), (C, "write", 0), (P, "read", 0), *EXIT], OLD_MIXED, FORK_KINDS),
    _m("m32", CP, "6.12/x86", cp_cow_not_wrprotected, "anon", "private",
       [(P, "write", 1), (P, "fork", C), (C, "write", 1), (P, "read", 1), *EXIT], NEW_NP),
    _m("m33", CP, "2.6.26/x86", cp_page_not_counted, "anon", "private",
       [(P, "write", 0), (P, "fork", C), *EXIT], OLD_MIXED, FORK_KINDS),
    # zap: what clearing a present pte drops with it
    _m("m34", ZP, "6.12/x86", zp_raw_ram_dropped, "devmem-ram", "shared",
       [(P, "read", 0), (P, "munmap", 0), (P, "exit", None)], NEW_NP),
    _m("m35", ZP, "2.6.26/x86", zp_file_vma_file_rss, "xip-ram", "private",
       [(P, "read", 0), (P, "write", 0), (P, "munmap", 0), (P, "exit", None)], OLD_MIXED),
    # __do_fault: what the kernel does with the VM_FAULT_* bits of ->fault
    _m("m36", DF, "2.6.26/x86", df_nopage_mapped, "xip-ram", "private",
       [(P, "read", 0), (P, "exit", None)], OLD_MIXED, MIXED_KINDS),
    _m("m37", DF, "6.12/x86", df_private_write_mapped, "xip-ram", "private",
       [(P, "read", 2), (P, "write", 1), (P, "read", 2), (P, "exit", None)], NEW_NP, MIXED_KINDS, npages=3),
    _m("m38", DF, "2.6.27/x86", df_sigbus_mapped, "xipshort-ram", "private",
       [(P, "read", 0), (P, "read", 1), (P, "exit", None)], OLD_MIXED, SHORT_KINDS),
)
BY_ID = {m.id: m for m in MUTATIONS}


# ---- the broken kernel ------------------------------------------------------------------------------

def right_rule(fn: str) -> Callable:
    from vmlib import gup, memory
    return getattr(gup if fn == "gup_fast_pte_ok" else memory, fn)


def mutated(m: Mutation) -> Callable:
    """The broken decision function of `m`: the kernel's rule, answered wrongly where `m` differs.
    Its decisions are traced (by itself or by the caller that reports them) without a row."""
    right_fn = right_rule(m.fn)

    def decide(k, *args):
        tracer = k.tracer
        mark = len(tracer.trace.events)
        right = right_fn(k, *args)
        wrong = m.wrong(k, args, right)
        answer, text = (right, None) if wrong is None else wrong
        if m.fn == "vm_normal_page":       # it traced itself: keep the text (or the wrong one), drop the row
            mine = [e for e in tracer.trace.events[mark:] if e.kind == "decision"]
            del tracer.trace._rows[3 * mark:]
            for e in mine[-1:]:
                if text:
                    k._ps9_wrong.add(text)
                tracer.emit("decision", e.func, text or e.text, "", None, e.examined)
        else:                              # its caller reports the answer next: see broken_kernel
            k._ps9_pending = text or ""
        if isinstance(answer, BaseException):
            raise answer
        return answer
    decide.__name__ = decide.__qualname__ = f"broken_{m.fn}"
    return decide


def broken_kernel(m: Mutation, ram_pages: int = 64):
    """A fresh kernel of `m`'s profile with the mutated rule in place; the caller's report of each
    answer of the broken function is traced as the broken kernel's decision, without a row."""
    from vmlib.kernel import Kernel
    k = Kernel(m.version, m.arch, ram_pages=ram_pages)
    setattr(k.ops, m.fn, mutated(m))
    reporters = REPORTERS[m.fn]
    plain = k.decide
    k._ps9_pending = None            # the next report of the broken function's answer: its text ("" = keep)
    k._ps9_wrong = set()             # the texts of the wrong decisions it traced (wrong_decisions)

    def decide(func, text, row="", seen=NOTHING_SEEN):
        if k._ps9_pending is not None and func in reporters and not k.tracer._quiet:
            if k._ps9_pending:
                k._ps9_wrong.add(k._ps9_pending)
                seen = seen or text_seen(text)         # the wrong words keep what was examined
            text, row, k._ps9_pending = k._ps9_pending or text, "", None
        plain(func, text, row, seen)
    k.decide = decide
    _keep_undone_decisions(k)
    return k


def wrong_decisions(k) -> list[int]:
    """The indices in the broken kernel k's trace of the decisions its broken rule got wrong."""
    return [i for i, e in enumerate(k.trace.events)
            if e.kind == "decision" and not e.row and e.text in k._ps9_wrong]


def _keep_undone_decisions(k) -> None:
    """A crash undoes its operation and drops the operation's trace events (Kernel._transaction); on the
    broken kernel the calls and decisions that led to the crash are put back in front of the error
    (not the state changes, which were undone), so that the student can step back to the wrong one."""
    tracer, trace = k.tracer, k.tracer.trace
    truncate, emit = trace._truncate, tracer.emit
    dropped: list = []

    def keep_truncated(n: int) -> None:
        dropped[:] = [trace._rows[i:i + 3] for i in range(3 * n, len(trace._rows), 3)]
        truncate(n)

    def emit_after(kind, func, text, row="", delta=None, seen=NOTHING_SEEN):
        if kind == "error" and dropped:
            trace._rows.extend(x for r in dropped if r[0][0] in ("call", "decision", "warn") for x in r)
            dropped.clear()
        emit(kind, func, text, row, delta, seen)
    trace._truncate, tracer.emit = keep_truncated, emit_after
