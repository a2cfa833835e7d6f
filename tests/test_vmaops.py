"""kernel-facts §16: mprotect, madvise(MADV_DONTNEED) and mremap, row by row, per profile.

Tests mirror vmlib/mprotect.py, vmlib/madvise.py and vmlib/mremap.py; docstrings name the
kernel function and version followed. Bad arguments and refused calls (state unchanged) are
also covered by tests/test_bad_inputs.py.
"""

import dataclasses
import errno

import pytest
from helpers_drivers import FlagsDriver, MixedDriver, RemapDriver, kernel, mark, profiles, rows

import vmlib
from vmlib import PAGE_SIZE, VM_DONTEXPAND, VM_MIXEDMAP, VM_PFNMAP
from vmlib.drivers import DevMem

DEV = 1000
SPECIAL = ("2.6.26/s390", "2.6.27/x86", "6.12/x86")
OLD = ("2.6.25/x86", "2.6.26/x86", "2.6.26/s390", "2.6.27/x86")
MIXED = ("2.6.26/x86", "2.6.26/s390", "2.6.27/x86", "6.12/x86", "6.12/m68k")


def setup(profile, ram_pages=128):
    k = kernel(profile, ram_pages)
    k.add_device_memory(DEV, 32, "nvram")
    return k, k.spawn("P")


def devmem(k, p, pfn, npages=1, flags="shared", prot="rw"):
    return p.mmap(npages * PAGE_SIZE, prot=prot, flags=flags, file=k.open(DevMem(), "rw"),
                  offset=pfn * PAGE_SIZE)


def state(k):
    return k.snapshot(), k.nr_free_pages(), dict(k.held), {pid: list(p.mm.vmas) for pid, p in k.procs.items()}


# -- §16a mprotect ---------------------------------------------------------------------------

@profiles()
def test_s16a_rows2_3_mprotect_pfnmap_keeps_pfn_and_special_bit(profile):
    """mm/mprotect.c mprotect_fixup()/change_pte_range() and the arch's pte_modify()
    (_PAGE_CHG_MASK), v2.6.26/v2.6.27/v6.12, kernel-facts §16a rows 2-3: mprotect of a PFNMAP
    is allowed, the pfn stays, and the special bit stays where the arch has one."""
    k, p = setup(profile)
    a = devmem(k, p, DEV, 4)
    p.write(a, b"dev")
    before = p.follow_pte(a)
    m = mark(k)
    assert p.mprotect(a, PAGE_SIZE, prot="r") == 0
    pte = p.follow_pte(a)
    assert pte.pfn == before.pfn and not pte.write and pte.special == before.special
    assert pte.special == (profile in SPECIAL)
    assert "§16a row 2" in rows(k, m)
    assert [(v.vm_start, v.vm_end) for v in p.vmas] == [(a, a + PAGE_SIZE), (a + PAGE_SIZE, a + 4 * PAGE_SIZE)]
    assert p.find_vma(a).vm_flags & VM_PFNMAP and p.find_vma(a + PAGE_SIZE).vm_pgoff == DEV + 1
    with pytest.raises(vmlib.Segfault):
        p.write(a, b"x")
    assert p.read(a, 3) == b"dev"
    k.check()
    p.mprotect(a, PAGE_SIZE, prot="rw")
    assert p.follow_pte(a).write and p.follow_pte(a).special == before.special
    k.check()


@profiles("2.6.27/x86")
def test_s16a_row3_without_special_in_chg_mask_the_pte_turns_normal(profile):
    """include/asm-x86/pgtable.h _PAGE_CHG_MASK, v2.6.27 (a0a8f5364a), kernel-facts §16a row 3
    and §10 row 3: x86 put _PAGE_SPECIAL into _PAGE_CHG_MASK when it got the bit. Flip the
    profile switch off and mprotect turns a special pte of remapped RAM normal: vm_normal_page
    then counts a page no pte took a reference on, and k.check() names the broken count."""
    k, p = setup(profile)
    page = k.alloc_page()
    a = p.mmap(PAGE_SIZE, prot="rw", flags="shared", file=k.open(RemapDriver(page.pfn)))
    assert p.follow_pte(a).special
    k.profile = dataclasses.replace(k.profile, PTE_CHG_MASK_SPECIAL=False)
    m = mark(k)
    p.mprotect(a, PAGE_SIZE, prot="r")
    assert not p.follow_pte(a).special and "§16a row 3" in rows(k, m)
    assert k.vm_normal_page(p.find_vma(a), a, p.follow_pte(a)) is page
    with pytest.raises(vmlib.InvariantError, match="file_rss is 0 but 1 ptes map"):
        k.check()


@profiles(*MIXED)
def test_s16a_row3_mprotect_mixedmap_counts_unchanged(profile):
    """mm/mprotect.c change_pte_range(), kernel-facts §16a row 3 with §5a row 3 / §5b row 2: a
    MIXEDMAP keeps its pfns, refcounts and mapcounts across mprotect (pte_modify touches no
    struct page)."""
    k, p = setup(profile)
    page = k.alloc_page()
    a = p.mmap(2 * PAGE_SIZE, prot="rw", flags="shared", file=k.open(MixedDriver([page.pfn, DEV])))
    p.read(a, 1)
    p.read(a + PAGE_SIZE, 1)
    counts = (k.page_count(page), k.page_mapcount(page))
    ptes = [p.follow_pte(a), p.follow_pte(a + PAGE_SIZE)]
    p.mprotect(a, 2 * PAGE_SIZE, prot="r")
    p.mprotect(a, 2 * PAGE_SIZE, prot="rw")
    assert (k.page_count(page), k.page_mapcount(page)) == counts
    assert [(t.pfn, t.special) for t in (p.follow_pte(a), p.follow_pte(a + PAGE_SIZE))] == \
        [(t.pfn, t.special) for t in ptes]
    k.check()


@profiles(*OLD)
def test_s16a_row4_private_write_after_mprotect_faults_and_reuses(profile):
    """mm/mprotect.c change_pte_range() and mm/memory.c do_wp_page(), v2.6.26, kernel-facts
    §16a row 4 and §6b row 3: after mprotect(r) then mprotect(rw) a private pte stays read-only;
    the write faults and do_wp_page reuses the page (mapcount 1), same pfn."""
    k, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"one")
    pfn = p.follow_pte(a).pfn
    p.mprotect(a, PAGE_SIZE, prot="r")
    p.mprotect(a, PAGE_SIZE, prot="rw")
    assert not p.follow_pte(a).write
    m = mark(k)
    p.write(a, b"two")
    assert p.follow_pte(a).pfn == pfn and p.follow_pte(a).write
    assert "§6b v2.6.26 row 3" in rows(k, m)
    k.check()


@profiles("6.12/x86", "6.12/m68k")
def test_s16a_row5_anon_exclusive_upgraded_on_mprotect(profile):
    """mm/mprotect.c can_change_pte_writable()/change_pte_range(), v6.12, kernel-facts §16a row 5:
    a PageAnonExclusive page is writable again right after mprotect(rw), with no fault; after a
    fork (the page is shared, not exclusive) it stays read-only and the write takes do_wp_page,
    which reuses it by refcount once the child is gone (§6b row 10)."""
    k, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"one")
    p.mprotect(a, PAGE_SIZE, prot="r")
    m = mark(k)
    p.mprotect(a, PAGE_SIZE, prot="rw")
    assert p.follow_pte(a).write and "§16a row 5" in rows(k, m)
    c = p.fork()
    c.exit()
    p.mprotect(a, PAGE_SIZE, prot="r")
    p.mprotect(a, PAGE_SIZE, prot="rw")
    assert not p.follow_pte(a).write
    pfn = p.follow_pte(a).pfn
    m = mark(k)
    p.write(a, b"two")
    assert p.follow_pte(a).pfn == pfn and any("§6b" in r for r in rows(k, m))
    k.check()


@profiles()
def test_s16a_row1_prot_none_then_back(profile):
    """mm/mprotect.c sys_mprotect(), kernel-facts §16a row 1: PROT_NONE makes every access a
    SIGSEGV; the data is still there when the rights come back."""
    k, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE)
    p.write(a, b"kept")
    p.mprotect(a, 2 * PAGE_SIZE, prot="none")
    with pytest.raises(vmlib.Segfault):
        p.read(a, 1)
    k.check()
    p.mprotect(a, 2 * PAGE_SIZE, prot="r")
    assert p.read(a, 4) == b"kept"
    assert p.mprotect(a, 0, prot="rw") == 0 and not p.follow_pte(a).write
    k.check()


@profiles("2.6.26/x86", "6.12/x86")
def test_s16a_row1_refused_mprotect_changes_nothing(profile):
    """mm/mprotect.c sys_mprotect(), kernel-facts §16a row 1: -EACCES (no VM_MAYWRITE) and
    -ENOMEM (a hole) leave every state as it was."""
    k, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    ro = p.mmap(PAGE_SIZE, prot="r", flags="shared", file=k.open(DevMem(), "r"), offset=DEV * PAGE_SIZE,
                addr=a + PAGE_SIZE)
    p.read(ro, 1)
    before = state(k)
    with pytest.raises(vmlib.KernelError) as e:
        p.mprotect(a, 2 * PAGE_SIZE, prot="rw")
    assert e.value.errno == errno.EACCES and state(k) == before
    with pytest.raises(vmlib.KernelError) as e:
        p.mprotect(a, 3 * PAGE_SIZE, prot="r")
    assert e.value.errno == errno.ENOMEM and state(k) == before
    k.check()


# -- §16b madvise(MADV_DONTNEED) -------------------------------------------------------------

@profiles()
def test_s16b_rows1_2_dontneed_refuses_pfnmap(profile):
    """mm/madvise.c madvise_dontneed(), v2.6.26, and madvise_dontneed_free_valid_vma(), v6.12,
    kernel-facts §16b rows 1-2: VM_PFNMAP → -EINVAL, nothing changes."""
    k, p = setup(profile)
    a = devmem(k, p, DEV, 2)
    p.write(a, b"x")
    before = state(k)
    m = mark(k)
    with pytest.raises(vmlib.KernelError) as e:
        p.madvise(a, 2 * PAGE_SIZE, "dontneed")
    assert e.value.errno == errno.EINVAL and state(k) == before
    assert rows(k, m) == []            # the refused call's events are dropped with its changes
    k.check()


@profiles(*MIXED)
def test_s16b_row1_vm_io_is_not_refused(profile):
    """mm/madvise.c madvise_dontneed(), v2.6.26 / madvise_dontneed_free_valid_vma(), v6.12,
    kernel-facts §16b rows 1-2: VM_IO (without VM_PFNMAP) is not in the refused flags."""
    k, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(FlagsDriver(vmlib.VM_IO | VM_MIXEDMAP)))
    m = mark(k)
    assert p.madvise(a, PAGE_SIZE, "dontneed") == 0
    assert ("§16b row 2" if profile.startswith("6.12") else "§16b row 1") in rows(k, m)
    k.check()


@profiles(*MIXED)
def test_s16b_row3_dontneed_on_mixedmap_drops_only_normal_references(profile):
    """mm/madvise.c madvise_dontneed() + mm/memory.c zap_pte_range(), v2.6.26 (zap_present_ptes,
    v6.12), kernel-facts §16b row 3: a RAM pfn mapped as a normal pte (no pte special) loses its
    reference and mapcount; a special one and a device pfn are only cleared; the next read
    faults to the driver again."""
    k, p = setup(profile)
    page = k.alloc_page()
    a = p.mmap(2 * PAGE_SIZE, prot="r", flags="shared", file=k.open(MixedDriver([page.pfn, DEV])))
    p.read(a, 1)
    p.read(a + PAGE_SIZE, 1)
    normal = not p.follow_pte(a).special
    assert k.page_mapcount(page) == (1 if normal else 0)
    p.madvise(a, 2 * PAGE_SIZE)
    assert p.follow_pte(a) is None and p.follow_pte(a + PAGE_SIZE) is None
    assert (k.page_count(page), k.page_mapcount(page)) == (1, 0) and p.rss["file"] == 0
    p.read(a, 1)
    assert p.follow_pte(a).pfn == page.pfn
    k.check()


@profiles(*MIXED)
def test_s16b_dontneed_private_drops_cow_copies(profile):
    """mm/madvise.c madvise_dontneed(), kernel-facts §16b rows 1-2 with §8: anonymous memory
    reads zeroes again; a private MIXEDMAP of device memory loses its COWed copy and reads the
    device again."""
    k, p = setup(profile)
    dev_addr = p.mmap(PAGE_SIZE, flags="private", file=k.open(MixedDriver([DEV])))
    k.phys.devices[0].write(0, b"DEV")
    p.write(dev_addr, b"cow")
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"anon")
    free = k.nr_free_pages()
    p.madvise(dev_addr, PAGE_SIZE)
    p.madvise(a, PAGE_SIZE)
    assert k.nr_free_pages() >= free + 2
    assert p.read(dev_addr, 3) == b"DEV" and p.read(a, 4) == bytes(4)
    k.check()


# -- §16c mremap -----------------------------------------------------------------------------

@profiles()
def test_s16c_row2_growing_pfnmap_efault(profile):
    """mm/mremap.c do_mremap(), v2.6.26 / vma_to_resize(), v6.12, kernel-facts §16c row 2:
    growing a VM_PFNMAP vma is -EFAULT even with may_move; nothing changes."""
    k, p = setup(profile)
    a = devmem(k, p, DEV, 2)
    p.read(a, 1)
    before = state(k)
    m = mark(k)
    with pytest.raises(vmlib.KernelError) as e:
        p.mremap(a, 2 * PAGE_SIZE, 4 * PAGE_SIZE, may_move=True)
    assert e.value.errno == errno.EFAULT and state(k) == before and rows(k, m) == []
    k.check()


@profiles(*MIXED)
def test_s16c_row2_growing_dontexpand_efault_but_mixedmap_may_grow(profile):
    """mm/mremap.c do_mremap(), v2.6.26 / vma_to_resize(), v6.12, kernel-facts §16c rows 2-3:
    VM_DONTEXPAND refuses growth; a VM_MIXEDMAP without it grows in place."""
    k, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(FlagsDriver(VM_MIXEDMAP | VM_DONTEXPAND)))
    with pytest.raises(vmlib.KernelError) as e:
        p.mremap(a, PAGE_SIZE, 2 * PAGE_SIZE, may_move=True)
    assert e.value.errno == errno.EFAULT
    b = p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([DEV, DEV + 1])), addr=0x5000_0000)
    assert p.mremap(b, PAGE_SIZE, 2 * PAGE_SIZE) == b and p.find_vma(b).vm_end == b + 2 * PAGE_SIZE
    p.read(b + PAGE_SIZE, 1)
    assert p.follow_pte(b + PAGE_SIZE).pfn == DEV + 1
    k.check()


@profiles()
def test_s16c_row5_moving_a_pfnmap_moves_ptes_and_pgoff(profile):
    """mm/mremap.c move_vma()/move_page_tables(), v2.6.26 and v6.12, kernel-facts §16c row 5: a
    private /dev/mem mapping moved with MREMAP_FIXED keeps its pfns, special bits and the COWed
    page; vm_pgoff follows the moved part, so the linear rule still tells raw pfns from the
    COWed copy (k.check() checks it)."""
    k, p = setup(profile)
    a = devmem(k, p, DEV, 3, flags="private")
    p.read(a, 1)
    p.write(a + PAGE_SIZE, b"cow")
    ptes = [p.follow_pte(a + i * PAGE_SIZE) for i in range(3)]
    counts = (p.rss, k.nr_free_pages())
    m = mark(k)
    new = p.mremap(a + PAGE_SIZE, 2 * PAGE_SIZE, 2 * PAGE_SIZE, may_move=True, new_addr=0x6000_0000)
    assert new == 0x6000_0000 and "§16c row 5" in rows(k, m)
    assert p.find_vma(new).vm_pgoff == DEV + 1 and p.find_vma(a).vm_end == a + PAGE_SIZE
    assert [p.follow_pte(new), p.follow_pte(new + PAGE_SIZE)] == ptes[1:]
    assert p.follow_pte(a + PAGE_SIZE) is None and (p.rss, k.nr_free_pages())[0] == counts[0]
    assert p.read(new, 3) == b"cow"
    assert k.vm_normal_page(p.find_vma(new), new + PAGE_SIZE, p.follow_pte(new + PAGE_SIZE)) is None
    k.check()


@profiles()
def test_s16c_row3_grow_in_place_or_move_or_enomem(profile):
    """mm/mremap.c do_mremap(), v2.6.26 / vma_expandable(), mremap_to(), v6.12, kernel-facts
    §16c rows 1 and 3: anonymous memory grows in place when the space above is free; with a vma
    in the way it is -ENOMEM without may_move and a move with it (data and counts kept); a
    shrink unmaps the tail."""
    k, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE)
    p.write(a, b"data")
    assert p.mremap(a, 2 * PAGE_SIZE, 3 * PAGE_SIZE) == a
    blocker = p.mmap(PAGE_SIZE, addr=a + 3 * PAGE_SIZE)
    with pytest.raises(vmlib.KernelError) as e:
        p.mremap(a, 3 * PAGE_SIZE, 4 * PAGE_SIZE)
    assert e.value.errno == errno.ENOMEM
    rss = p.rss
    new = p.mremap(a, 3 * PAGE_SIZE, 4 * PAGE_SIZE, may_move=True)
    assert new != a and p.read(new, 4) == b"data" and p.rss == rss and p.find_vma(a).vm_start == blocker
    assert p.mremap(new, 4 * PAGE_SIZE, PAGE_SIZE) == new and p.find_vma(new).vm_end == new + PAGE_SIZE
    k.check()


@profiles("2.6.26/x86", "6.12/x86")
def test_s16c_row4_shrink_of_unmapped_address(profile):
    """mm/mremap.c do_mremap(), v2.6.26, and the mremap system call (vma_lookup), v6.12,
    kernel-facts §16c row 4: 2.6 returns the address; 6.12 says -EFAULT."""
    k, p = setup(profile)
    if profile.startswith("6.12"):
        with pytest.raises(vmlib.KernelError) as e:
            p.mremap(0x7000_0000, 2 * PAGE_SIZE, PAGE_SIZE)
        assert e.value.errno == errno.EFAULT
    else:
        assert p.mremap(0x7000_0000, 2 * PAGE_SIZE, PAGE_SIZE) == 0x7000_0000
    k.check()


@profiles("2.6.26/x86", "6.12/m68k")
def test_s16c_row5_move_mixedmap_with_refcounted_pages(profile):
    """mm/mremap.c move_ptes(), kernel-facts §16c row 5: moving a MIXEDMAP whose RAM pfn is a
    normal, refcounted pte (no pte special, §5a row 3) keeps its reference and mapcount."""
    k, p = setup(profile)
    page = k.alloc_page()
    a = p.mmap(PAGE_SIZE, flags="shared", prot="r", file=k.open(MixedDriver([page.pfn])))
    p.read(a, 1)
    counts = (k.page_count(page), k.page_mapcount(page))
    new = p.mremap(a, PAGE_SIZE, PAGE_SIZE, may_move=True, new_addr=0x6100_0000)
    assert p.follow_pte(new).pfn == page.pfn and (k.page_count(page), k.page_mapcount(page)) == counts
    k.check()


@profiles("2.6.26/x86", "2.6.27/x86", "6.12/x86")
def test_s16a_s16c_long_remap_runs(profile):
    """mm/mprotect.c change_pte_range() and mm/mremap.c move_page_tables(), kernel-facts §16a
    row 3 and §16c row 5, on a /dev/mem mapping long enough that remap_pfn_range records a
    linear run: mprotect of its middle rewrites only that part; moving a part carries its pfns
    and vm_pgoff along, the rest stays where it was."""
    k, p = setup(profile, ram_pages=256)
    k.add_device_memory(5000, 200, "long")
    n = 100
    a = p.mmap(n * PAGE_SIZE, prot="rw", flags="shared", file=k.open(DevMem()), offset=5000 * PAGE_SIZE)
    assert p.mm.runs
    p.mprotect(a + 10 * PAGE_SIZE, 5 * PAGE_SIZE, prot="r")
    for i, write in ((9, True), (10, False), (14, False), (15, True)):
        pte = p.follow_pte(a + i * PAGE_SIZE)
        assert (pte.pfn, pte.write, pte.special) == (5000 + i, write, profile != "2.6.26/x86")
    k.check()
    new = p.mremap(a + 50 * PAGE_SIZE, 20 * PAGE_SIZE, 20 * PAGE_SIZE, may_move=True, new_addr=0x9000_0000)
    assert p.follow_pte(new).pfn == 5050 and p.follow_pte(new + 19 * PAGE_SIZE).pfn == 5069
    assert p.find_vma(new).vm_pgoff == 5050 and p.follow_pte(a + 50 * PAGE_SIZE) is None
    assert p.follow_pte(a + 70 * PAGE_SIZE).pfn == 5070
    k.check()
    p.munmap(a, n * PAGE_SIZE)
    p.munmap(new, 20 * PAGE_SIZE)
    assert not p.mm.runs
    k.check()
