"""kernel-facts §1, §4, §5, §6, §7, §8, row by row, on every profile a row applies to.

Each test builds its situation through the public API (drivers in helpers_drivers) and
checks the outcome: vm_normal_page's answer, counts, rss, pte bits, errnos and the `row` of
the trace's decision events. Test names carry the table and row; docstrings name the kernel
function and version followed.
"""

import errno
import json

import pytest
from helpers_drivers import (
    FlagsDriver,
    InsertPageDriver,
    MixedDriver,
    PageDriver,
    PfnFaultDriver,
    RemapDriver,
    kernel,
    mark,
    profiles,
    rows,
)

import vmlib
from vmlib import (
    PAGE_SIZE,
    VM_DONTEXPAND,
    VM_FAULT_NOPAGE,
    VM_FAULT_SIGBUS,
    VM_INSERTPAGE,
    VM_IO,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_RESERVED,
    Pte,
)
from vmlib.drivers import DevMem, XipFs
from vmlib.flags import VM_DONTDUMP

DEV = 1000            # first device pfn (no struct page)
OLD = ("2.6.25/x86", "2.6.26/x86", "2.6.26/s390", "2.6.27/x86")
MODERN = ("6.12/x86", "6.12/m68k")
SPECIAL = ("2.6.26/s390", "2.6.27/x86", "6.12/x86")          # HAVE_PTE_SPECIAL
MIXED = ("2.6.26/x86", "2.6.26/s390", "2.6.27/x86", "6.12/x86", "6.12/m68k")


def setup(profile, ram_pages=256):
    """A kernel with 64 pages of nvram at DEV, and one process."""
    k = kernel(profile, ram_pages)
    dev = k.add_device_memory(DEV, 64, "nvram")
    return k, dev, k.spawn("P")


def devmem(k, p, pfn, npages=1, flags="private", prot="rw"):
    """Map /dev/mem at pfn; return the address."""
    return p.mmap(npages * PAGE_SIZE, prot=prot, flags=flags, file=k.open(DevMem(), "rw"),
                  offset=pfn * PAGE_SIZE)


def normal_page(k, p, addr):
    return k.vm_normal_page(p.find_vma(addr), addr, p.follow_pte(addr))


# -- §1a: v2.6.26 without pte special ----------------------------------------------------

@profiles("2.6.26/x86")
def test_s1a_row1_mixedmap_no_struct_page_is_special(profile):
    """mm/memory.c vm_normal_page(), v2.6.26, kernel-facts §1a row 1."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([DEV + 3])))
    p.read(a, 1)
    m = mark(k)
    pte = p.follow_pte(a)
    assert pte.pfn == DEV + 3 and not pte.special
    assert normal_page(k, p, a) is None
    assert rows(k, m) == ["§1a row 1"]
    assert p.rss == {"anon": 0, "file": 0}
    k.check()


@profiles("2.6.26/x86")
def test_s1a_row2_mixedmap_valid_pfn_is_refcounted(profile):
    """mm/memory.c vm_normal_page() and vm_insert_mixed(), v2.6.26, kernel-facts §1a row 2."""
    k, _dev, p = setup(profile)
    page = k.alloc_page()
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([page.pfn])))
    p.read(a, 1)
    m = mark(k)
    assert normal_page(k, p, a) is page
    assert rows(k, m) == ["§1a row 2"]
    assert (k.page_count(page), k.page_mapcount(page), p.rss["file"]) == (2, 1, 1)
    p.exit()
    assert (k.page_count(page), k.page_mapcount(page)) == (1, 0)
    k.check()


@profiles("2.6.25/x86", "2.6.26/x86")
def test_s1a_row3_pfnmap_linear_is_special(profile):
    """mm/memory.c vm_normal_page(), v2.6.26, kernel-facts §1a row 3: a raw pfn of a private
    PFNMAP is special even though the RAM page behind it has a struct page."""
    k, _dev, p = setup(profile)
    page = k.alloc_page()
    a = devmem(k, p, page.pfn)
    m = mark(k)
    assert k.pfn_valid(p.follow_pte(a).pfn)
    assert normal_page(k, p, a) is None
    assert rows(k, m) == ["§1a row 3"]
    assert (k.page_count(page), k.page_mapcount(page)) == (1, 0)
    k.check()


@profiles("2.6.25/x86", "2.6.26/x86")
def test_s1a_row4_shared_pfnmap_nonlinear_is_special(profile):
    """mm/memory.c vm_normal_page(), v2.6.26, kernel-facts §1a row 4."""
    k, _dev, p = setup(profile)
    pages = [k.alloc_page() for _ in range(2)]
    a = p.mmap(2 * PAGE_SIZE, flags="shared",
               file=k.open(RemapDriver(pfns=[pages[1].pfn, pages[0].pfn])))
    m = mark(k)
    assert p.follow_pte(a).pfn == pages[1].pfn
    assert normal_page(k, p, a) is None
    assert rows(k, m) == ["§1a row 4"]
    assert [k.page_count(pg) for pg in pages] == [1, 1]
    k.check()


@profiles("2.6.25/x86", "2.6.26/x86")
def test_s1a_row5_private_pfnmap_cow_page_is_normal(profile):
    """mm/memory.c vm_normal_page(), v2.6.26, kernel-facts §1a rows 5 and 6: a COWed page in
    a private PFNMAP breaks the linear rule, so it is treated as an anon page."""
    k, dev, p = setup(profile)
    dev.write(0, b"raw")
    a = devmem(k, p, DEV)
    p.write(a + 3, b"!")
    m = mark(k)
    page = normal_page(k, p, a)
    assert page is not None and page.anon and page.pfn == p.follow_pte(a).pfn
    assert rows(k, m) == ["§1a row 5", "§1a row 6"]
    assert p.read(a, 4) == b"raw!" and dev.read(0, 4) == b"raw\0"
    k.check()


@profiles("2.6.25/x86", "2.6.26/x86")
def test_s1a_row6_anonymous_page_is_normal(profile):
    """mm/memory.c vm_normal_page(), v2.6.26, kernel-facts §1a row 6."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    m = mark(k)
    page = normal_page(k, p, a)
    assert page.anon and (k.page_count(page), k.page_mapcount(page)) == (1, 1)
    assert rows(k, m) == ["§1a row 6"]


# -- §1b: with pte special ([B]; x86 from 2.6.27) ----------------------------------------

@profiles("2.6.26/s390", "2.6.27/x86")
def test_s1b_row1_not_special_is_normal(profile):
    """mm/memory.c vm_normal_page(), v2.6.26 with pte special, kernel-facts §1b row 1."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    m = mark(k)
    assert not p.follow_pte(a).special
    assert normal_page(k, p, a).anon
    assert rows(k, m) == ["§1b row 1"]


@profiles("2.6.26/s390", "2.6.27/x86")
def test_s1b_row2_special_pte_is_special_even_for_ram(profile):
    """mm/memory.c vm_normal_page()/vm_insert_mixed(), v2.6.26 with pte special,
    kernel-facts §1b row 2 (and §5a key consequence): a RAM pfn inserted by vm_insert_mixed
    gets a special, un-refcounted pte."""
    k, _dev, p = setup(profile)
    page = k.alloc_page()
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([page.pfn])))
    p.read(a, 1)
    m = mark(k)
    assert p.follow_pte(a).special
    assert normal_page(k, p, a) is None
    assert rows(k, m) == ["§1b row 2"]
    assert (k.page_count(page), k.page_mapcount(page), p.rss["file"]) == (1, 0, 0)
    k.check()


@profiles("2.6.26/s390", "2.6.27/x86")
def test_s1b_row2_special_pte_in_plain_vma_is_vm_bug(profile):
    """mm/memory.c vm_normal_page(), v2.6.26 with pte special, kernel-facts §1b row 2: the
    debug VM_BUG_ON when a special pte sits in a vma with neither PFNMAP nor MIXEDMAP."""
    k, _dev, p = setup(profile)
    a = devmem(k, p, DEV)
    b = p.mmap(PAGE_SIZE)
    with pytest.raises(vmlib.KernelBug, match="neither VM_PFNMAP nor VM_MIXEDMAP"):
        k.vm_normal_page(p.find_vma(b), b, p.follow_pte(a))


# -- §1c: modern with pte special -----------------------------------------------------------

@profiles("6.12/x86")
def test_s1c_row1_normal_pte_above_memmap_is_bad_page_map(profile):
    """mm/memory.c vm_normal_page(), v6.12, kernel-facts §1c row 1 (print_bad_pte)."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    bits = p.follow_pte(a).bits
    with pytest.raises(vmlib.BadPageMap, match="highest_memmap_pfn"):
        k.vm_normal_page(p.find_vma(a), a, Pte(DEV, bits))


@profiles("6.12/x86")
def test_s1c_row2_normal_pte_is_normal(profile):
    """mm/memory.c vm_normal_page(), v6.12, kernel-facts §1c row 2."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    m = mark(k)
    assert normal_page(k, p, a).anon
    assert rows(k, m) == ["§1c row 2"]


@profiles("6.12/x86")
def test_s1c_row4_special_in_pfnmap_or_mixedmap(profile):
    """mm/memory.c vm_normal_page(), v6.12, kernel-facts §1c row 4."""
    k, _dev, p = setup(profile)
    page = k.alloc_page()
    a = devmem(k, p, page.pfn)
    b = p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([page.pfn])))
    p.read(b, 1)
    m = mark(k)
    assert p.follow_pte(a).special and p.follow_pte(b).special
    assert normal_page(k, p, a) is None and normal_page(k, p, b) is None
    assert rows(k, m) == ["§1c row 4", "§1c row 4"]
    assert k.page_count(page) == 1
    k.check()


@profiles("6.12/x86")
def test_s1c_row5_zero_pfn_special(profile):
    """mm/memory.c vm_normal_page() and do_anonymous_page(), v6.12, kernel-facts §1c row 5."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    assert p.read(a, 2) == b"\0\0"
    m = mark(k)
    pte = p.follow_pte(a)
    assert pte.pfn == k.zero_pfn and pte.special and not pte.write
    assert normal_page(k, p, a) is None
    assert rows(k, m) == ["§1c row 5"]
    k.check()


@profiles("6.12/x86")
def test_s1c_row7_special_pte_elsewhere_is_bad_page_map(profile):
    """mm/memory.c vm_normal_page(), v6.12, kernel-facts §1c row 7 (print_bad_pte)."""
    k, _dev, p = setup(profile)
    a = devmem(k, p, DEV)
    b = p.mmap(PAGE_SIZE)
    with pytest.raises(vmlib.BadPageMap, match="neither PFNMAP nor MIXEDMAP"):
        k.vm_normal_page(p.find_vma(b), b, p.follow_pte(a))


# -- §1d: modern without pte special (m68k) -------------------------------------------------

@profiles("6.12/m68k")
def test_s1d_row1_mixedmap_no_struct_page(profile):
    """mm/memory.c vm_normal_page(), v6.12 without pte special, kernel-facts §1d row 1."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([DEV])))
    p.read(a, 1)
    m = mark(k)
    assert normal_page(k, p, a) is None
    assert rows(k, m) == ["§1d row 1"]
    k.check()


@profiles("6.12/m68k")
def test_s1d_row2_mixedmap_zero_pfn(profile):
    """mm/memory.c vm_normal_page() and vmf_insert_mixed(), v6.12 without pte special,
    kernel-facts §1d row 2: the zero page in a MIXEDMAP is never refcounted."""
    k, _dev, p = setup(profile)
    zc = k.page_count(k.zero_page)
    a = p.mmap(PAGE_SIZE, prot="r", flags="private", file=k.open(MixedDriver([k.zero_pfn])))
    p.read(a, 1)
    m = mark(k)
    assert p.follow_pte(a).pfn == k.zero_pfn
    assert normal_page(k, p, a) is None
    assert rows(k, m) == ["§1d row 2"]
    assert k.page_count(k.zero_page) == zc and k.page_mapcount(k.zero_page) == 0
    assert p.rss == {"anon": 0, "file": 0}
    k.check()
    p.exit()
    k.check()


@profiles("6.12/m68k")
def test_s1d_row3_mixedmap_valid_pfn(profile):
    """mm/memory.c vm_normal_page(), v6.12 without pte special, kernel-facts §1d row 3."""
    k, _dev, p = setup(profile)
    page = k.alloc_page()
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([page.pfn])))
    p.read(a, 1)
    m = mark(k)
    assert normal_page(k, p, a) is page
    assert rows(k, m) == ["§1d row 3"]
    assert (k.page_count(page), k.page_mapcount(page)) == (2, 1)
    k.check()


@profiles("6.12/m68k")
def test_s1d_row4_pfnmap_linear(profile):
    """mm/memory.c vm_normal_page(), v6.12 without pte special, kernel-facts §1d row 4."""
    k, _dev, p = setup(profile)
    page = k.alloc_page()
    a = devmem(k, p, page.pfn)
    m = mark(k)
    assert normal_page(k, p, a) is None
    assert rows(k, m) == ["§1d row 4"]


@profiles("6.12/m68k")
def test_s1d_row5_shared_pfnmap_nonlinear(profile):
    """mm/memory.c vm_normal_page(), v6.12 without pte special, kernel-facts §1d row 5."""
    k, _dev, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE, flags="shared", file=k.open(RemapDriver(pfns=[DEV + 1, DEV])))
    m = mark(k)
    assert normal_page(k, p, a) is None
    assert rows(k, m) == ["§1d row 5"]


@profiles("6.12/m68k")
def test_s1d_row6_zero_pfn_anywhere(profile):
    """mm/memory.c vm_normal_page(), v6.12 without pte special, kernel-facts §1d row 6."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.read(a, 1)
    m = mark(k)
    assert p.follow_pte(a).pfn == k.zero_pfn and not p.follow_pte(a).special
    assert normal_page(k, p, a) is None
    assert rows(k, m) == ["§1d row 6"]
    k.check()


@profiles("6.12/m68k")
def test_s1d_row7_above_memmap_is_bad_page_map(profile):
    """mm/memory.c vm_normal_page(), v6.12 without pte special, kernel-facts §1d row 7."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    with pytest.raises(vmlib.BadPageMap, match="highest_memmap_pfn"):
        k.vm_normal_page(p.find_vma(a), a, Pte(DEV, p.follow_pte(a).bits))


@profiles("6.12/m68k")
def test_s1d_row8_otherwise_normal(profile):
    """mm/memory.c vm_normal_page(), v6.12 without pte special, kernel-facts §1d row 8."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    m = mark(k)
    assert normal_page(k, p, a).anon
    assert rows(k, m) == ["§1d row 8"]


# -- §4: remap_pfn_range ----------------------------------------------------------------------

class _HalfRemap(vmlib.Driver):
    """Remaps only the first page of the vma and records what happened."""

    def mmap(self, k, vma):
        self.err = k.remap_pfn_range(vma, vma.vm_start, DEV, PAGE_SIZE)
        self.flags = vma.vm_flags
        return self.err


@profiles()
def test_s4_row1_cow_vma_must_be_covered_exactly(profile):
    """mm/memory.c remap_pfn_range(), v2.6.26 / v6.12, kernel-facts §4 row 'COW vma':
    -EINVAL before any flag is set; the failed mmap leaves no vma."""
    k, _dev, p = setup(profile)
    drv = _HalfRemap()
    with pytest.raises(vmlib.KernelError) as e:
        p.mmap(2 * PAGE_SIZE, flags="private", file=k.open(drv))
    assert e.value.errno == errno.EINVAL and drv.err == -errno.EINVAL
    assert not drv.flags & (VM_PFNMAP | VM_IO)
    assert p.vmas == []
    k.check()


@profiles()
def test_s4_row1_cow_vma_gets_vm_pgoff_of_first_pfn(profile):
    """mm/memory.c remap_pfn_range(), v2.6.26 / v6.12, kernel-facts §4 row 'COW vma':
    vm_pgoff := first pfn (the mmap offset is overridden)."""
    k, _dev, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE, flags="private", offset=5 * PAGE_SIZE,
               file=k.open(RemapDriver(DEV + 7)))
    assert p.find_vma(a).vm_pgoff == DEV + 7
    assert [p.follow_pte(a + i * PAGE_SIZE).pfn for i in range(2)] == [DEV + 7, DEV + 8]
    k.check()


@profiles()
def test_s4_row2_non_cow_vma_any_subrange_nonlinear(profile):
    """mm/memory.c remap_pfn_range(), v2.6.26 / v6.12, kernel-facts §4 row 'non-COW vma':
    several calls, sub-ranges, non-linear pfns; vm_pgoff untouched."""
    k, _dev, p = setup(profile)
    a = p.mmap(3 * PAGE_SIZE, flags="shared", offset=5 * PAGE_SIZE,
               file=k.open(RemapDriver(pfns=[DEV + 9, DEV + 2])))
    vma = p.find_vma(a)
    assert vma.vm_pgoff == 5
    assert p.follow_pte(a).pfn == DEV + 9 and p.follow_pte(a + PAGE_SIZE).pfn == DEV + 2
    assert p.follow_pte(a + 2 * PAGE_SIZE) is None
    k.check()


@profiles()
def test_s4_row3_flags_added(profile):
    """mm/memory.c remap_pfn_range(), v2.6.26 / v6.12, kernel-facts §4 row 'flags added'."""
    k, _dev, p = setup(profile)
    a = devmem(k, p, DEV, flags="shared")
    fl = p.find_vma(a).vm_flags
    if k.profile.MODERN:
        want, absent = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP, VM_RESERVED
    else:
        want, absent = VM_IO | VM_RESERVED | VM_PFNMAP, VM_DONTEXPAND
    assert fl & want == want and not fl & absent


@profiles()
def test_s4_row4_ptes_written_special_where_the_arch_has_it(profile):
    """mm/memory.c remap_pte_range(), v2.6.26 / v6.12, kernel-facts §4 row 'ptes written'
    and §10: pte_mkspecial is a real bit only where HAVE_PTE_SPECIAL."""
    k, _dev, p = setup(profile)
    a = devmem(k, p, DEV + 4, npages=3)
    ptes = [p.follow_pte(a + i * PAGE_SIZE) for i in range(3)]
    assert [t.pfn for t in ptes] == [DEV + 4, DEV + 5, DEV + 6]
    assert {t.special for t in ptes} == {profile in SPECIAL}
    assert not any(t.write for t in ptes)              # private: no write bit


class _DoubleRemap(vmlib.Driver):
    def mmap(self, k, vma):
        k.remap_pfn_range(vma, vma.vm_start, DEV, PAGE_SIZE)
        return k.remap_pfn_range(vma, vma.vm_start, DEV + 1, PAGE_SIZE)


@profiles()
def test_s4_row5_existing_pte_is_bug(profile):
    """mm/memory.c remap_pte_range(), v2.6.26 / v6.12, kernel-facts §4 row 'existing ptes':
    BUG_ON(!pte_none); the whole mmap is rolled back."""
    k, _dev, p = setup(profile)
    before, free = k.snapshot(), k.nr_free_pages()
    with pytest.raises(vmlib.KernelBug, match="already present"):
        p.mmap(PAGE_SIZE, flags="shared", file=k.open(_DoubleRemap()))
    assert k.snapshot() == before and k.nr_free_pages() == free
    k.check()


@profiles()
def test_s4_row6_no_refcount_mapcount_rss(profile):
    """mm/memory.c remap_pfn_range(), v2.6.26 / v6.12, kernel-facts §4 row 'refcount /
    mapcount / rss': remapped RAM pages are not touched."""
    k, _dev, p = setup(profile)
    pages = [k.alloc_page() for _ in range(2)]
    assert pages[1].pfn == pages[0].pfn + 1
    a = devmem(k, p, pages[0].pfn, npages=2, flags="shared")
    assert p.read(a, 1) == b"\0"
    p.write(a + PAGE_SIZE, b"w")
    assert [(k.page_count(pg), k.page_mapcount(pg)) for pg in pages] == [(1, 0), (1, 0)]
    assert p.rss == {"anon": 0, "file": 0}
    m = mark(k)
    p.munmap(a, 2 * PAGE_SIZE)
    assert "§8 vm_normal_page == NULL" in rows(k, m)
    assert [k.page_count(pg) for pg in pages] == [1, 1]
    k.check()


# -- §5a: insertion APIs, v2.6.26 -------------------------------------------------------------

def _vma(k, p, flags, npages=2, share="shared"):
    a = p.mmap(npages * PAGE_SIZE, flags=share, file=k.open(FlagsDriver(flags)))
    return a, p.find_vma(a)


@profiles(*OLD)
def test_s5a_vm_insert_page_outside_vma_efault(profile):
    """mm/memory.c vm_insert_page(), v2.6.26, kernel-facts §5a: outside the vma → -EFAULT."""
    k, _dev, p = setup(profile)
    a, vma = _vma(k, p, 0)
    assert k.vm_insert_page(vma, a + 2 * PAGE_SIZE, k.alloc_page()) == -errno.EFAULT
    assert not vma.vm_flags & VM_INSERTPAGE


@profiles(*OLD)
def test_s5a_vm_insert_page_refcount_zero_einval(profile):
    """mm/memory.c vm_insert_page(), v2.6.26, kernel-facts §5a: page_count 0 → -EINVAL."""
    k, _dev, p = setup(profile)
    a, vma = _vma(k, p, 0)
    free = k.pfn_to_page(k.profile and 250)
    assert k.page_count(free) == 0
    assert k.vm_insert_page(vma, a, free) == -errno.EINVAL
    assert p.follow_pte(a) is None


@profiles(*OLD)
def test_s5a_vm_insert_page_anon_einval(profile):
    """mm/memory.c insert_page(), v2.6.26, kernel-facts §5a: PageAnon → -EINVAL."""
    k, _dev, p = setup(profile)
    a, vma = _vma(k, p, 0)
    b = p.mmap(PAGE_SIZE)
    p.write(b, b"x")
    anon = normal_page(k, p, b)
    assert k.vm_insert_page(vma, a, anon) == -errno.EINVAL
    assert p.follow_pte(a) is None and k.page_count(anon) == 1
    k.check()


@profiles(*OLD)
def test_s5a_vm_insert_page_maps_refcounted_normal_pte(profile):
    """mm/memory.c vm_insert_page()/insert_page(), v2.6.26, kernel-facts §5a: normal pte,
    +1 ref, +1 mapcount, file_rss +1, sets VM_INSERTPAGE."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(InsertPageDriver(k, 1)))
    p.read(a, 1)
    vma = p.find_vma(a)
    pte = p.follow_pte(a)
    page = k.pfn_to_page(pte.pfn)
    assert not pte.special
    assert (k.page_count(page), k.page_mapcount(page), p.rss["file"]) == (2, 1, 1)
    assert vma.vm_flags & VM_INSERTPAGE
    k.check()


@pytest.mark.parametrize("profile,case", [
    (prof, case) for prof in OLD for case in ("no_flag", "both_flags", "cow_pfnmap", "mixed_valid_pfn")
    if prof != "2.6.25/x86" or case in ("no_flag", "cow_pfnmap")])     # 2.6.25: no VM_MIXEDMAP
def test_s5a_vm_insert_pfn_bug_ons(profile, case):
    """mm/memory.c vm_insert_pfn(), v2.6.26, kernel-facts §5a: the four BUG_ONs (2.6.25 has
    only the PFNMAP ones); the state is left unchanged."""
    k, _dev, p = setup(profile)
    flags = {"no_flag": 0, "both_flags": VM_PFNMAP | VM_MIXEDMAP, "cow_pfnmap": VM_PFNMAP,
             "mixed_valid_pfn": VM_MIXEDMAP}[case]
    a, vma = _vma(k, p, flags, share="private" if case == "cow_pfnmap" else "shared")
    pfn = 5 if case == "mixed_valid_pfn" else DEV
    before = k.snapshot()
    with pytest.raises(vmlib.KernelBug, match="vm_insert_pfn: BUG_ON"):
        k.vm_insert_pfn(vma, a, pfn)
    assert k.snapshot() == before


@profiles(*OLD)
def test_s5a_vm_insert_pfn_special_no_counts(profile):
    """mm/memory.c vm_insert_pfn()/insert_pfn(), v2.6.26, kernel-facts §5a: outside → -EFAULT;
    pte_mkspecial(pfn_pte) (a real bit only with pte special); no count, no rss; present →
    -EBUSY."""
    k, _dev, p = setup(profile)
    page = k.alloc_page()
    a, vma = _vma(k, p, VM_PFNMAP | VM_IO)
    assert k.vm_insert_pfn(vma, a - PAGE_SIZE, page.pfn) == -errno.EFAULT
    assert k.vm_insert_pfn(vma, a, page.pfn) == 0
    pte = p.follow_pte(a)
    assert pte.pfn == page.pfn and pte.special == (profile in SPECIAL)
    assert (k.page_count(page), k.page_mapcount(page), p.rss["file"]) == (1, 0, 0)
    assert k.vm_insert_pfn(vma, a, DEV) == -errno.EBUSY
    assert p.follow_pte(a).pfn == page.pfn
    k.check()


@profiles("2.6.26/x86", "2.6.26/s390", "2.6.27/x86")
def test_s5a_vm_insert_mixed(profile):
    """mm/memory.c vm_insert_mixed(), v2.6.26, kernel-facts §5a: BUG_ON without VM_MIXEDMAP;
    outside → -EFAULT; RAM refcounted only without pte special; device pfn special;
    VM_INSERTPAGE not set; present → -EBUSY."""
    k, _dev, p = setup(profile)
    a0, plain = _vma(k, p, 0)
    with pytest.raises(vmlib.KernelBug, match="lacks VM_MIXEDMAP"):
        k.vm_insert_mixed(plain, a0, DEV)
    a, vma = _vma(k, p, VM_MIXEDMAP, npages=2)
    page = k.alloc_page()
    assert k.vm_insert_mixed(vma, a + 2 * PAGE_SIZE, DEV) == -errno.EFAULT
    m = mark(k)
    assert k.vm_insert_mixed(vma, a, page.pfn) == 0
    assert k.vm_insert_mixed(vma, a + PAGE_SIZE, DEV) == 0
    assert [r for r in rows(k, m) if r.startswith("§5a vm_insert_mixed")]
    refcounted = profile == "2.6.26/x86"
    assert (k.page_count(page), k.page_mapcount(page), p.rss["file"]) == \
        ((2, 1, 1) if refcounted else (1, 0, 0))
    assert p.follow_pte(a).special == (not refcounted)
    assert p.follow_pte(a + PAGE_SIZE).special == (profile in SPECIAL)
    assert not vma.vm_flags & VM_INSERTPAGE
    assert k.vm_insert_mixed(vma, a, DEV + 1) == -errno.EBUSY
    k.check()


@profiles("2.6.25/x86")
def test_s5a_vm_insert_mixed_absent_before_the_series(profile):
    """kernel-facts §5a / DESIGN.md §4: 2.6.25 has no vm_insert_mixed."""
    k, _dev, p = setup(profile)
    a, vma = _vma(k, p, VM_PFNMAP)
    with pytest.raises(vmlib.MissingFeature, match="2.6.26"):
        k.vm_insert_mixed(vma, a, DEV)


# -- §5b: insertion APIs, v6.12 -----------------------------------------------------------------

@profiles(*MODERN)
def test_s5b_vmf_insert_pfn(profile):
    """mm/memory.c vmf_insert_pfn(), v6.12, kernel-facts §5b: BUG_ON on a COW PFNMAP; outside
    → VM_FAULT_SIGBUS; special pte (where the arch has the bit), no counts; an existing pte
    → VM_FAULT_NOPAGE and nothing changes."""
    k, _dev, p = setup(profile)
    ac, cow = _vma(k, p, VM_PFNMAP, share="private")
    with pytest.raises(vmlib.KernelBug, match="COW"):
        k.vmf_insert_pfn(cow, ac, DEV)
    a, vma = _vma(k, p, VM_PFNMAP | VM_IO)
    assert k.vmf_insert_pfn(vma, a + 2 * PAGE_SIZE, DEV) == VM_FAULT_SIGBUS
    assert k.vmf_insert_pfn(vma, a, DEV) == VM_FAULT_NOPAGE
    assert p.follow_pte(a).special == (profile == "6.12/x86")
    assert k.vmf_insert_pfn(vma, a, DEV + 1) == VM_FAULT_NOPAGE
    assert p.follow_pte(a).pfn == DEV
    k.check()


@profiles(*MODERN)
def test_s5b_row4_zero_pfn_refused_in_shared_writable_vma(profile):
    """mm/memory.c vm_mixed_ok(), vm_mixed_zeropage_allowed() and __vm_insert_mixed(), v6.12,
    kernel-facts §5b row 4: the zero pfn in a shared vma that may be written (VM_MAYWRITE) is
    VM_FAULT_SIGBUS; nothing is mapped, so no write can reach the shared zero page."""
    k, _dev, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE, prot="rw", flags="shared", file=k.open(MixedDriver([k.zero_pfn] * 2)))
    m = mark(k)
    with pytest.raises(vmlib.BusError):
        p.write(a, b"x")
    assert p.follow_pte(a) is None
    vma = p.find_vma(a)
    assert k.vmf_insert_mixed(vma, a, k.zero_pfn) == VM_FAULT_SIGBUS
    assert k.vm_insert_mixed(vma, a, k.zero_pfn) == -errno.EFAULT
    assert "§5b row 4" in rows(k, m)
    assert p.follow_pte(a) is None and bytes(k.phys.read_frame(k.zero_pfn, 0, 8)) == bytes(8)
    b = p.mmap(PAGE_SIZE, prot="r", flags="shared", file=k.open(MixedDriver([k.zero_pfn])))
    with pytest.raises(vmlib.BusError):     # VM_MAYWRITE still set: mprotect could make it writable
        p.read(b, 1)
    k.check()


@profiles(*MODERN)
def test_s5b_row4_zero_pfn_private_or_readonly_gets_readonly_special_pte(profile):
    """mm/memory.c vm_mixed_zeropage_allowed() and insert_pfn()/insert_page(), v6.12,
    kernel-facts §5b row 4: a COW mapping, or a shared vma of a file opened read-only (no
    VM_MAYWRITE), gets the zero pfn read-only, special where the arch has the bit, with no
    reference; a write to the private one copies it away (do_wp_page, §6b row 12)."""
    k, _dev, p = setup(profile)
    zc = k.page_count(k.zero_page)
    a = p.mmap(PAGE_SIZE, prot="rw", flags="private", file=k.open(MixedDriver([k.zero_pfn])))
    assert p.read(a, 4) == bytes(4)
    pte = p.follow_pte(a)
    assert pte.pfn == k.zero_pfn and not pte.write
    assert pte.special == (profile != "6.12/m68k")
    p.write(a, b"hello")
    assert p.follow_pte(a).pfn != k.zero_pfn and p.read(a, 5) == b"hello"
    b = p.mmap(PAGE_SIZE, prot="r", flags="shared", file=k.open(MixedDriver([k.zero_pfn]), "r"))
    assert p.read(b, 2) == b"\0\0" and p.follow_pte(b).pfn == k.zero_pfn and not p.follow_pte(b).write
    assert k.page_count(k.zero_page) == zc and k.page_mapcount(k.zero_page) == 0
    assert bytes(k.phys.read_frame(k.zero_pfn, 0, 8)) == bytes(8)
    k.check()


def test_check_zero_page_stays_zero():
    """k.check() (mm/memory.c vm_mixed_zeropage_allowed(), v6.12, is what keeps it true): a
    zero page holding a written byte is an InvariantError naming the zero page."""
    k = kernel("6.12/x86")
    k.check()
    k.phys.write_frame(k.zero_pfn, 7, b"!")
    with pytest.raises(vmlib.InvariantError, match="zero page"):
        k.check()


@profiles(*MODERN)
def test_s5b_vmf_insert_mixed(profile):
    """mm/memory.c vmf_insert_mixed()/vm_mixed_ok(), v6.12, kernel-facts §5b: not MIXEDMAP and
    not the zero pfn → SIGBUS; a RAM pfn is refcounted only without pte special."""
    k, _dev, p = setup(profile)
    a0, plain = _vma(k, p, 0)
    assert k.vmf_insert_mixed(plain, a0, DEV) == VM_FAULT_SIGBUS
    assert p.follow_pte(a0) is None
    a, vma = _vma(k, p, VM_MIXEDMAP)
    page = k.alloc_page()
    assert k.vmf_insert_mixed(vma, a, page.pfn) == VM_FAULT_NOPAGE
    refcounted = profile == "6.12/m68k"
    assert (k.page_count(page), k.page_mapcount(page)) == ((2, 1) if refcounted else (1, 0))
    assert p.follow_pte(a).special == (not refcounted)
    k.check()


@profiles(*MODERN)
def test_s5b_vm_insert_page_sets_mixedmap(profile):
    """mm/memory.c vm_insert_page(), v6.12, kernel-facts §5b: sets VM_MIXEDMAP; BUG on a
    PFNMAP vma; refcount 0 or anon → -EINVAL; else +1 ref, +1 mapcount, file rss +1."""
    k, _dev, p = setup(profile)
    ap, pfnmap = _vma(k, p, VM_PFNMAP)
    with pytest.raises(vmlib.KernelBug, match="VM_PFNMAP"):
        k.vm_insert_page(pfnmap, ap, k.alloc_page())
    a, vma = _vma(k, p, 0)
    assert k.vm_insert_page(vma, a, k.pfn_to_page(250)) == -errno.EINVAL
    assert vma.vm_flags & VM_MIXEDMAP
    page = k.alloc_page()
    assert k.vm_insert_page(vma, a, page) == 0
    assert not p.follow_pte(a).special
    assert (k.page_count(page), k.page_mapcount(page), p.rss["file"]) == (2, 1, 1)
    k.check()


# -- §6a: missing pte ------------------------------------------------------------------------

@profiles()
def test_s6a_anonymous_read_fault(profile):
    """mm/memory.c do_anonymous_page(), v2.6.26 / v6.12, kernel-facts §6a 'anonymous vma,
    read': 2.6 allocates a zeroed page; 6.12 maps the zero page read-only."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    free = k.nr_free_pages()
    assert p.read(a, 8) == bytes(8)
    pte = p.follow_pte(a)
    if k.profile.MODERN:
        assert pte.pfn == k.zero_pfn and not pte.write
        assert pte.special == (profile == "6.12/x86")
        assert p.rss["anon"] == 0 and k.page_mapcount(k.zero_page) == 0
        assert "§6a anonymous read (6.12)" in rows(k)
    else:
        page = k.pfn_to_page(pte.pfn)
        assert page.anon and pte.write and pte.dirty
        assert (k.page_count(page), k.page_mapcount(page), p.rss["anon"]) == (1, 1, 1)
        assert "§6a anonymous read (2.6.26)" in rows(k)
        assert k.nr_free_pages() < free
    k.check()


@profiles()
def test_s6a_anonymous_write_fault(profile):
    """mm/memory.c do_anonymous_page(), v2.6.26 / v6.12, kernel-facts §6a 'anonymous vma,
    write fault'."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"w")
    pte = p.follow_pte(a)
    page = k.pfn_to_page(pte.pfn)
    assert pte.write and pte.dirty and page.anon
    assert (k.page_count(page), k.page_mapcount(page), p.rss["anon"]) == (1, 1, 1)
    assert "§6a anonymous write" in rows(k)


@profiles()
def test_s6a_file_read_maps_driver_page(profile):
    """mm/memory.c __do_fault(), v2.6.26 (do_read_fault/finish_fault v6.12), kernel-facts §6a
    'file vma, ->fault returns a page, read': file rmap +1, file_rss +1, the fault's
    reference kept by the mapping."""
    k, _dev, p = setup(profile)
    drv = PageDriver(k, 1)
    page = drv.pages[0]
    a = p.mmap(PAGE_SIZE, flags="private", file=k.open(drv))
    p.read(a, 1)
    assert p.follow_pte(a).pfn == page.pfn and not p.follow_pte(a).write
    assert (k.page_count(page), k.page_mapcount(page), p.rss["file"]) == (2, 1, 1)
    assert "§6a file read" in rows(k)
    k.check()


@profiles()
def test_s6a_private_write_early_cow(profile):
    """mm/memory.c __do_fault(), v2.6.26 (do_cow_fault v6.12), kernel-facts §6a 'file vma,
    private write': a new anon page, copied; the file page's reference dropped."""
    k, _dev, p = setup(profile)
    drv = PageDriver(k, 1)
    page = drv.pages[0]
    f = k.open(drv)
    q = k.spawn("Q")
    b = q.mmap(PAGE_SIZE, flags="shared", file=f)
    q.write(b, b"file")
    a = p.mmap(PAGE_SIZE, flags="private", file=f)
    p.write(a + 4, b"!")
    new = k.pfn_to_page(p.follow_pte(a).pfn)
    assert new.anon and new is not page
    assert p.read(a, 5) == b"file!" and q.read(b, 5) == b"file\0"
    assert (k.page_count(page), k.page_mapcount(page)) == (2, 1)      # only Q maps it
    assert p.rss == {"anon": 1, "file": 0}
    assert "§6a private write" in rows(k)
    k.check()


@profiles()
def test_s6a_shared_write_maps_file_page_writable(profile):
    """mm/memory.c __do_fault(), v2.6.26 (do_shared_fault v6.12), kernel-facts §6a 'file vma,
    shared write'."""
    k, _dev, p = setup(profile)
    drv = PageDriver(k, 1)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(drv))
    p.write(a, b"s")
    pte = p.follow_pte(a)
    assert pte.pfn == drv.pages[0].pfn and pte.write and pte.dirty
    assert p.rss == {"anon": 0, "file": 1}
    assert "§6a shared write" in rows(k)


@profiles(*MIXED)
def test_s6a_nopage_no_early_cow_then_double_fault(profile):
    """mm/memory.c __do_fault() and do_wp_page(), v2.6.26 / v6.12, kernel-facts §6a
    'VM_FAULT_NOPAGE' and row 10 (the retried write): a private write to a MIXEDMAP gets a
    read-only pte from the handler, then a second fault copies."""
    k, dev, p = setup(profile)
    dev.write(0, b"dev")
    a = p.mmap(PAGE_SIZE, flags="private", file=k.open(MixedDriver([DEV])))
    m = mark(k)
    p.write(a + 3, b"+")
    r = rows(k, m)
    assert r.index("§6a NOPAGE") < r.index("§6a row 10")
    assert "§6a private write" not in r
    assert [x for x in r if "§6b" in x]
    page = k.pfn_to_page(p.follow_pte(a).pfn)
    assert page.anon and p.rss == {"anon": 1, "file": 0}
    assert p.read(a, 4) == b"dev+" and dev.read(0, 4) == b"dev\0"
    k.check()


@profiles()
def test_s6a_driver_without_fault(profile):
    """mm/memory.c handle_pte_fault(), v2.6.26 / do_fault() v6.12: touching an empty pte of a
    file vma whose driver has no ->fault: 2.6 falls through to do_anonymous_page, 6.12
    returns VM_FAULT_SIGBUS (DESIGN.md §3 "does what the version does")."""
    k, _dev, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE, flags="private", file=k.open(_HalfRemap.__base__()))
    if k.profile.MODERN:
        before = k.snapshot()
        with pytest.raises(vmlib.BusError, match="SIGBUS"):
            p.read(a, 1)
        assert k.snapshot() == before
    else:
        p.read(a, 1)
        assert k.pfn_to_page(p.follow_pte(a).pfn).anon
    k.check()


# -- §6b: do_wp_page ---------------------------------------------------------------------------

class _ReadOnlyRemap(vmlib.Driver):
    """Shared PFNMAP of DEV remapped without the write bit (as dirty accounting would)."""

    def mmap(self, k, vma):
        return k.remap_pfn_range(vma, vma.vm_start, DEV, PAGE_SIZE, vma.vm_page_prot & ~0x2)


@profiles()
def test_s6b_row1_no_page_shared_writable_reuse(profile):
    """mm/memory.c do_wp_page(), v2.6.26 row 1 (251b97f552) / v6.12 wp_pfn_shared,
    kernel-facts §6b: a raw pfn in a shared writable mapping mapped read-only is made
    writable in place."""
    k, dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(_ReadOnlyRemap()))
    assert not p.follow_pte(a).write
    m = mark(k)
    p.write(a, b"in place")
    pte = p.follow_pte(a)
    assert pte.pfn == DEV and pte.write and pte.dirty
    assert dev.read(0, 8) == b"in place"
    want = "§6b 6.12" if k.profile.MODERN else "§6b v2.6.26 row 1"
    assert want in rows(k, m)
    assert p.rss == {"anon": 0, "file": 0}
    k.check()


@profiles()
def test_s6b_row2_no_page_private_copy_from_user_address(profile):
    """mm/memory.c do_wp_page()/cow_user_page(), v2.6.26 row 2 / v6.12 wp_page_copy,
    kernel-facts §6b: private raw pfn → copy through the user address; anon_rss +1 only."""
    k, dev, p = setup(profile)
    dev.write(10, b"abc")
    a = devmem(k, p, DEV)
    m = mark(k)
    p.write(a, b"Z")
    assert "§6b copy without struct page" in rows(k, m)
    assert p.read(a, 13)[10:] == b"abc" and dev.read(0, 1) == b"\0"
    assert p.rss == {"anon": 1, "file": 0}
    k.check()


@profiles(*OLD)
def test_s6b_row3_anon_reuse_by_mapcount_ignores_gup_refs(profile):
    """mm/memory.c do_wp_page()/can_share_swap_page(), v2.6.26, kernel-facts §6b row 3:
    mapcount 1 → reuse even with an extra (gup) reference; mapcount 2 → copy."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"1")
    c = p.fork()
    c.exit()                                  # mapcount back to 1, pte read-only
    page = normal_page(k, p, a)
    [got] = p.get_user_pages(a, 1)
    assert got is page and k.page_count(page) == 2 and not p.follow_pte(a).write
    m = mark(k)
    p.write(a, b"2")
    assert "§6b v2.6.26 row 3" in rows(k, m) and p.follow_pte(a).pfn == page.pfn
    k.put_page(got)
    c = p.fork()
    m = mark(k)
    c.write(a, b"3")
    assert "§6b v2.6.26 row 3" in rows(k, m) and c.follow_pte(a).pfn != page.pfn
    assert p.read(a, 1) == b"2" and c.read(a, 1) == b"3"
    k.check()


@profiles(*OLD)
def test_s6b_row4_file_page_shared_writable_reuse(profile):
    """mm/memory.c do_wp_page(), v2.6.26, kernel-facts §6b row 4."""
    k, _dev, p = setup(profile)
    drv = PageDriver(k, 1, readonly_prot=True)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(drv))
    p.read(a, 1)
    assert not p.follow_pte(a).write
    m = mark(k)
    p.write(a, b"f")
    assert "§6b v2.6.26 row 4" in rows(k, m)
    assert p.follow_pte(a).pfn == drv.pages[0].pfn and p.follow_pte(a).write
    k.check()


@profiles(*OLD)
def test_s6b_row5_file_page_private_copy(profile):
    """mm/memory.c do_wp_page(), v2.6.26, kernel-facts §6b row 5: old page mapcount -1,
    ref -1; file_rss -1, anon_rss +1."""
    k, _dev, p = setup(profile)
    drv = PageDriver(k, 1)
    page = drv.pages[0]
    a = p.mmap(PAGE_SIZE, flags="private", file=k.open(drv))
    p.read(a, 1)
    assert (k.page_count(page), k.page_mapcount(page), p.rss["file"]) == (2, 1, 1)
    m = mark(k)
    p.write(a, b"c")
    assert "§6b v2.6.26 row 5" in rows(k, m)
    assert (k.page_count(page), k.page_mapcount(page)) == (1, 0)
    assert p.rss == {"anon": 1, "file": 0}
    k.check()


@profiles(*MODERN)
def test_s6b_612_anon_exclusive_reuse_even_with_gup_ref(profile):
    """mm/memory.c do_wp_page(), v6.12, kernel-facts §6b 'anon page, PageAnonExclusive'."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, prot="r")
    p2 = p.mmap(PAGE_SIZE)
    p.write(p2, b"e")
    page = normal_page(k, p, p2)
    assert page.exclusive
    [got] = p.get_user_pages(p2, 1)
    assert got is page and a
    p.write(p2, b"f")
    assert p.follow_pte(p2).pfn == page.pfn
    k.put_page(got)
    k.check()


@profiles(*MODERN)
def test_s6b_612_anon_not_exclusive_refcount_decides(profile):
    """mm/memory.c do_wp_page()/wp_can_reuse_anon_folio(), v6.12, kernel-facts §6b: a
    non-exclusive anon page is reused iff refcount == 1 (a gup reference forces a copy,
    unlike 2.6.26)."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"1")
    p.fork().exit()
    page = normal_page(k, p, a)
    assert not page.exclusive and k.page_count(page) == 1
    [got] = p.get_user_pages(a, 1)
    m = mark(k)
    p.write(a, b"2")
    assert p.follow_pte(a).pfn != page.pfn               # refcount 2 → copy
    assert got.pfn == page.pfn and k.page_count(page) == 1
    k.put_page(got)
    b = p.mmap(PAGE_SIZE)
    p.write(b, b"1")
    p.fork().exit()
    page_b = normal_page(k, p, b)
    m = mark(k)
    p.write(b, b"2")
    assert p.follow_pte(b).pfn == page_b.pfn and page_b.exclusive   # refcount 1 → reuse
    assert "§6b 6.12" in rows(k, m)
    k.check()


@profiles(*MODERN)
def test_s6b_612_zero_pfn_gets_zeroed_page(profile):
    """mm/memory.c wp_page_copy(), v6.12, kernel-facts §6b: the zero pfn is replaced by a
    freshly zeroed page, not copied."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.read(a, 1)
    m = mark(k)
    p.write(a + 1, b"z")
    assert "§6b 6.12 zero pfn" in rows(k, m)
    assert p.read(a, 2) == b"\0z" and p.rss["anon"] == 1
    k.check()


@profiles(*MODERN)
def test_s6b_612_page_shared_and_file_private(profile):
    """mm/memory.c wp_page_shared()/wp_page_copy(), v6.12, kernel-facts §6b: a file page in
    a shared vma is reused; in a private vma it is copied."""
    k, _dev, p = setup(profile)
    drv = PageDriver(k, 1, readonly_prot=True)
    f = k.open(drv)
    a = p.mmap(PAGE_SIZE, flags="shared", file=f)
    b = p.mmap(PAGE_SIZE, flags="private", file=f)
    p.read(a, 1)
    p.read(b, 1)
    p.write(a, b"S")
    assert p.follow_pte(a).pfn == drv.pages[0].pfn
    p.write(b + 1, b"P")
    assert p.follow_pte(b).pfn != drv.pages[0].pfn
    assert p.read(b, 2) == b"SP" and p.read(a, 2) == b"S\0"
    assert p.rss == {"anon": 1, "file": 1}
    k.check()


# -- §7: fork ------------------------------------------------------------------------------------

@profiles()
def test_s7_pfnmap_vma_is_copied(profile):
    """mm/memory.c copy_page_range(), v2.6.26 / vma_needs_copy() v6.12, kernel-facts §7:
    a VM_PFNMAP vma's ptes are copied; raw pfns get no counts."""
    k, _dev, p = setup(profile)
    page = k.alloc_page()
    a = devmem(k, p, page.pfn, flags="shared")
    c = p.fork()
    assert c.follow_pte(a).pfn == page.pfn
    assert (k.page_count(page), k.page_mapcount(page)) == (1, 0)
    assert c.rss == {"anon": 0, "file": 0}
    k.check()


@profiles(*OLD)
def test_s7_insertpage_vma_is_copied(profile):
    """mm/memory.c copy_page_range(), v2.6.26, kernel-facts §7: VM_INSERTPAGE → copied; each
    normal page +1 ref +1 mapcount, child file rss +1."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(InsertPageDriver(k, 1)))
    p.read(a, 1)
    page = normal_page(k, p, a)
    c = p.fork()
    assert c.follow_pte(a).pfn == page.pfn
    assert (k.page_count(page), k.page_mapcount(page), c.rss["file"]) == (3, 2, 1)
    k.check()


@profiles(*MIXED)
def test_s7_mixedmap_without_anon_vma(profile):
    """mm/memory.c copy_page_range(), v2.6.26 / vma_needs_copy() v6.12, kernel-facts §7:
    VM_MIXEDMAP is not in 2.6.26's list (the child refaults); 6.12 always copies it."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([DEV])))
    p.read(a, 1)
    m = mark(k)
    c = p.fork()
    if k.profile.MODERN:
        assert c.follow_pte(a).pfn == DEV and "§7 row 3" in rows(k, m)
    else:
        row = "§7 row 1" if k.version == "2.6.26" else "§7 row 2"      # 2.6.27: the same list
        assert c.follow_pte(a) is None and row in rows(k, m)
        c.read(a, 1)
        assert c.follow_pte(a).pfn == DEV
    k.check()


@profiles()
def test_s7_anon_vma_copied_cow_write_protects_both(profile):
    """mm/memory.c copy_one_pte(), v2.6.26 / copy_present_ptes() v6.12, kernel-facts §7 per
    pte: COW mapping → parent and child write-protected; child pte old; +1 ref +1 mapcount;
    child anon rss +1."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    page = normal_page(k, p, a)
    c = p.fork()
    assert not p.follow_pte(a).write and not c.follow_pte(a).write
    assert p.follow_pte(a).young and not c.follow_pte(a).young
    assert (k.page_count(page), k.page_mapcount(page), c.rss["anon"]) == (2, 2, 1)
    assert "§7 per pte" in rows(k)
    k.check()


@profiles()
def test_s7_shared_child_pte_clean_and_old(profile):
    """mm/memory.c copy_one_pte(), v2.6.26 / copy_present_ptes() v6.12, kernel-facts §7:
    VM_SHARED → child pte clean; always old; the parent's stays dirty and writable."""
    k, _dev, p = setup(profile)
    a = devmem(k, p, DEV, flags="shared")
    p.write(a, b"d")
    assert p.follow_pte(a).dirty and p.follow_pte(a).young
    c = p.fork()
    cp = c.follow_pte(a)
    assert not cp.dirty and not cp.young and cp.write
    assert p.follow_pte(a).dirty and p.follow_pte(a).write


@profiles(*MODERN)
def test_s7_612_pinned_exclusive_page_copied_at_fork(profile):
    """mm/memory.c copy_present_page(), v6.12, kernel-facts §7: a maybe-DMA-pinned exclusive
    anon page gives the child an immediate copy; the parent pte is left untouched."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"pin")
    page = normal_page(k, p, a)
    [pinned] = p.pin_user_pages(a, 1)
    assert pinned is page and k.page_count(page) == 1 + 1024
    c = p.fork()
    assert p.follow_pte(a).write and p.follow_pte(a).pfn == page.pfn
    assert c.follow_pte(a).pfn != page.pfn and c.read(a, 3) == b"pin"
    assert k.page_mapcount(page) == 1
    assert "§7 v6.12 pinned" in rows(k)
    k.check()


@profiles(*MODERN)
def test_s7_612_plain_file_vma_skipped(profile):
    """mm/memory.c vma_needs_copy(), v6.12, kernel-facts §7: no anon_vma and neither PFNMAP
    nor MIXEDMAP → skipped; the child refaults."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared")           # shmem
    p.write(a, b"s")
    c = p.fork()
    assert c.follow_pte(a) is None and c.read(a, 1) == b"s"
    k.check()


# -- §8: zap ------------------------------------------------------------------------------------

@profiles()
def test_s8_special_pte_cleared_nothing_else(profile):
    """mm/memory.c zap_pte_range(), v2.6.26 / zap_present_ptes() v6.12, kernel-facts §8 row
    'vm_normal_page == NULL'."""
    k, _dev, p = setup(profile)
    page = k.alloc_page()
    a = devmem(k, p, page.pfn, flags="shared")
    m = mark(k)
    p.munmap(a, PAGE_SIZE)
    assert "§8 vm_normal_page == NULL" in rows(k, m)
    assert (k.page_count(page), k.page_mapcount(page)) == (1, 0)
    assert p.follow_pte(a) is None
    k.check()


@profiles()
def test_s8_anon_page_freed(profile):
    """mm/memory.c zap_pte_range(), v2.6.26 / v6.12, kernel-facts §8 row 'anon page':
    anon_rss -1, mapcount -1, ref -1, freed at 0."""
    k, _dev, p = setup(profile)
    free0 = k.nr_free_pages()
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"a")
    page = normal_page(k, p, a)
    [ref] = p.get_user_pages(a, 1)
    m = mark(k)
    p.munmap(a, PAGE_SIZE)
    assert "§8 anon page" in rows(k, m)
    assert (k.page_count(page), k.page_mapcount(page), p.rss["anon"]) == (1, 0, 0)
    k.put_page(ref)
    assert k.page_count(page) == 0 and k.nr_free_pages() == free0
    k.check()


@profiles()
def test_s8_file_page_dirty_carried_to_page(profile):
    """mm/memory.c zap_pte_range(), v2.6.26 / v6.12, kernel-facts §8 row 'file page': file_rss
    -1, dirty pte → set_page_dirty, mapcount -1, ref -1."""
    k, _dev, p = setup(profile)
    drv = PageDriver(k, 1)
    page = drv.pages[0]
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(drv))
    p.write(a, b"d")
    assert not page.dirty
    m = mark(k)
    p.munmap(a, PAGE_SIZE)
    assert "§8 file page" in rows(k, m)
    assert page.dirty and (k.page_count(page), k.page_mapcount(page)) == (1, 0)
    assert p.rss == {"anon": 0, "file": 0}
    k.check()


@profiles(*MIXED)
def test_s8_truncate_skips_private_anon_clears_special(profile):
    """mm/memory.c unmap_mapping_range() with details (zap_details), v2.6.26 / v6.12,
    kernel-facts §8 row 'truncate/invalidate': a COWed private page survives, a pte of the
    file's own block is cleared (XipFs move_to_pagecache)."""
    k, dev, p = setup(profile)
    xip = XipFs(k, backing=dev)
    f = xip.create("f", b"A" * PAGE_SIZE + b"B" * PAGE_SIZE)
    a = p.mmap(2 * PAGE_SIZE, flags="private", file=f)
    p.read(a, 1)
    p.write(a + PAGE_SIZE, b"b")
    anon = normal_page(k, p, a + PAGE_SIZE)
    xip.move_to_pagecache(f, 0)
    xip.move_to_pagecache(f, 1)
    assert p.follow_pte(a) is None
    assert p.follow_pte(a + PAGE_SIZE).pfn == anon.pfn
    assert p.read(a, 2) == b"AA" and p.read(a + PAGE_SIZE, 2) == b"bB"
    k.check()


@profiles("2.6.26/x86", "2.6.26/s390", "2.6.27/x86", "6.12/x86", "6.12/m68k")
def test_s6b_pfnmap_fault_handler_shared_reuse(profile):
    """mm/memory.c do_wp_page(), v2.6.26 / wp_pfn_shared() v6.12, kernel-facts §6b row 1 with
    a PFNMAP filled from ->fault by vm_insert_pfn (allowed from 2.6.26, 42172d751b)."""
    k, dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(PfnFaultDriver([DEV], readonly_prot=True)))
    p.write(a, b"fb")
    pte = p.follow_pte(a)
    assert pte.pfn == DEV and pte.write and dev.read(0, 2) == b"fb"
    assert p.rss == {"anon": 0, "file": 0}
    k.check()


@profiles()
def test_s8_partial_munmap_of_shmem_keeps_the_rest(profile):
    """mm/mmap.c do_munmap()/split_vma() with mm/memory.c zap_pte_range(), v2.6.26 / v6.12,
    kernel-facts §8 'file page': unmapping part of a shared anonymous mapping zaps only that
    part; the pages of the rest stay in shmem (a forked child refaults them)."""
    k, _dev, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE, flags="shared")
    p.write(a + PAGE_SIZE, b"keep")
    p.munmap(a, PAGE_SIZE)
    c = p.fork()
    assert c.read(a + PAGE_SIZE, 4) == b"keep"
    c.write(a + PAGE_SIZE, b"both")
    assert p.read(a + PAGE_SIZE, 4) == b"both"
    k.check()


@profiles("2.6.25/x86", "2.6.26/x86", "2.6.26/s390", "2.6.27/x86")
def test_s1a_row6_s1b_row1_debug_vm_bug_on_without_struct_page(profile):
    """mm/memory.c vm_normal_page(), v2.6.26 and v2.6.27 with CONFIG_DEBUG_VM, kernel-facts §1a
    row 6 / §1b row 1: a normal pte of a plain vma that maps a pfn with no struct page is a
    VM_BUG_ON. v2.6.25 (§1a row 8) instead prints a bad pte (print_bad_pte) and returns NULL."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    before = k.snapshot()
    error, match = ((vmlib.BadPageMap, r"print_bad_pte.*no struct page") if profile == "2.6.25/x86"
                    else (vmlib.KernelBug, r"VM_BUG_ON\(!pfn_valid"))
    with pytest.raises(error, match=match):
        k.vm_normal_page(p.find_vma(a), a, Pte(DEV, p.follow_pte(a).bits))
    assert k.snapshot() == before


class _WriteNotify(vmlib.Driver):
    """A MIXEDMAP driver that asks for write notification (vma_wants_writenotify)."""

    name = "writenotify"
    writenotify = True

    def mmap(self, k, vma) -> int:
        vma.vm_flags |= VM_MIXEDMAP
        return 0

    def fault(self, k, vma, vmf) -> int:
        k.vm_insert_mixed(vma, vmf.address, DEV + vmf.pgoff)
        return VM_FAULT_NOPAGE


@profiles(*MIXED)
def test_s6b_writenotify_shared_write_reuses_raw_pfn(profile):
    """mm/mmap.c mmap_region() vma_wants_writenotify and mm/memory.c do_wp_page(), v2.6.26
    (251b97f552) and 6.12 wp_pfn_shared, kernel-facts §6b v2.6.26 row 1: a shared writable
    mapping that wants write notification starts with read-only ptes; the first write to a raw
    pfn faults into do_wp_page, which reuses it (makes it writable), copying nothing."""
    k, dev, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE, flags="shared", file=k.open(_WriteNotify(), "rw"))
    p.read(a, 1)
    assert not p.follow_pte(a).write
    since = mark(k)
    p.write(a, b"w")
    pte = p.follow_pte(a)
    assert pte.pfn == DEV and pte.write and pte.dirty
    assert dev.read(0, 1) == b"w", "the write went to the device itself"
    assert any(r.startswith("§6b") for r in rows(k, since))
    assert p.rss == {"anon": 0, "file": 0}
    k.check()


# -- §5a: ->fault and ->nopfn on a VM_PFNMAP vma, by version -----------------------------------

@profiles("2.6.25/x86")
def test_s5a_2_6_25_do_fault_bugs_on_pfnmap(profile):
    """mm/memory.c __do_fault(), v2.6.25, kernel-facts §5a: BUG_ON(vma->vm_flags & VM_PFNMAP),
    so a PFNMAP driver with ->fault brings the kernel down (the fault is undone here)."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(PfnFaultDriver([DEV])))
    before = k.snapshot()
    with pytest.raises(vmlib.KernelBug, match=r"__do_fault: BUG_ON\(vma->vm_flags & VM_PFNMAP\)"):
        p.read(a, 1)
    assert k.snapshot() == before
    k.check()


@profiles("2.6.26/x86", "2.6.26/s390")
def test_s5a_2_6_26_pfnmap_fault_with_vm_insert_pfn(profile):
    """mm/memory.c __do_fault(), v2.6.26 (42172d751b "mm: allow pfnmap ->fault()s" removed the
    BUG_ON), kernel-facts §5a: a PFNMAP driver's ->fault inserts a raw pfn with vm_insert_pfn
    and returns VM_FAULT_NOPAGE; the pte is special on s390, plain on x86; no counts move."""
    k, dev, p = setup(profile)
    dev.write(0, b"raw")
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(PfnFaultDriver([DEV])))
    m = mark(k)
    assert p.read(a, 3) == b"raw"
    pte = p.follow_pte(a)
    assert pte.pfn == DEV and pte.special == (profile == "2.6.26/s390")
    assert p.rss == {"anon": 0, "file": 0}
    assert "§5a" in rows(k, m) and "§6a NOPAGE" in rows(k, m)
    assert "42172d751b" in k.trace.text(m)
    k.check()


@profiles("2.6.25/x86", "2.6.26/x86", "2.6.26/s390", "2.6.27/x86", "6.12/x86")
def test_s5a_fbdev_fills_a_shared_pfnmap_per_version(profile):
    """FbDev (modelled on mspec/spufs), kernel-facts §5a: ->nopfn on 2.6.25 (mm/memory.c
    do_no_pfn(), v2.6.25: plain pfn_pte); ->fault + vm_insert_pfn from 2.6.26 (special pte on
    s390 in 2.6.26, on x86 from 2.6.27); driver RAM is never refcounted through the mapping."""
    from vmlib.drivers import FbDev
    k, _dev, p = setup(profile)
    fb = FbDev(k, 2)
    ram = k.pfn_to_page(fb.pfns[0])
    a = p.mmap(2 * PAGE_SIZE, flags="shared", file=k.open(fb))
    m = mark(k)
    p.write(a, b"fb")
    funcs = {e.func for e in k.trace.events[m:] if e.kind == "call"}
    assert ("do_no_pfn" in funcs) == (profile == "2.6.25/x86")
    assert ("__do_fault" in funcs) == (profile != "2.6.25/x86")
    pte = p.follow_pte(a)
    assert pte.pfn == ram.pfn and pte.special == k.profile.HAVE_PTE_SPECIAL
    assert (k.page_count(ram), k.page_mapcount(ram)) == (1, 0) and p.rss == {"anon": 0, "file": 0}
    c = p.fork()
    assert c.read(a, 2) == b"fb"
    c.exit()
    assert k.page_count(ram) == 1
    k.check()


@profiles("2.6.25/x86", "2.6.26/s390")
def test_s5a_nopfn_driver_on_2_6_25_and_2_6_26(profile):
    """mm/memory.c handle_pte_fault()/do_no_pfn(), v2.6.25 and v2.6.26, kernel-facts §5a: a
    driver with only ->nopfn still faults in on both, and the pte is never made special. On
    2.6.26/s390 vm_normal_page trusts the special bit, so the first zap of that pte hits
    VM_BUG_ON(!pfn_valid) (CONFIG_DEBUG_VM): one reason ->fault + vm_insert_pfn replaced
    ->nopfn (no s390 driver used ->nopfn)."""

    class NopfnOnly(vmlib.Driver):
        name = "nopfn-only"

        def mmap(self, k, vma):
            vma.vm_flags |= VM_PFNMAP | VM_IO
            return 0

        def nopfn(self, k, vma, address):
            return DEV

    k, dev, p = setup(profile)
    dev.write(0, b"np")
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(NopfnOnly()))
    m = mark(k)
    assert p.read(a, 2) == b"np"
    assert not p.follow_pte(a).special and "§5a nopfn" in rows(k, m)
    if profile == "2.6.26/s390":
        before = k.snapshot()
        with pytest.raises(vmlib.KernelBug, match=r"VM_BUG_ON\(!pfn_valid"):
            p.exit()
        assert k.snapshot() == before
        with pytest.raises(vmlib.InvariantError, match="vm_normal_page"):
            k.check()
    else:
        k.check()
        p.exit()
        k.check()


@profiles("2.6.25/x86")
def test_s11a_2_6_25_xip_on_device_memory_pays_a_memmap(profile):
    """mm/filemap_xip.c xip_file_mmap()/xip_file_fault() and arch/s390/mm/vmem.c
    add_shared_memory(), v2.6.25, kernel-facts §11a/§12: xip_file_mmap never refuses; XIP maps
    through struct pages, which the block driver made for the whole segment. So the segment
    becomes pfn_valid, memmap_bytes() grows by its pages x sizeof(struct page), and a mapped
    block is an ordinary refcounted page (file rss, mapcount, COW copies on a private write)."""
    k, dev, p = setup(profile)
    before = k.memmap_bytes()
    assert not k.pfn_valid(DEV)
    xip = XipFs(k, backing=dev)
    assert k.memmap_bytes() == before + dev.npages * k.profile.sizeof_struct_page
    assert k.pfn_valid(DEV) and k.pfn_valid(DEV + dev.npages - 1) and dev.has_memmap
    f = xip.create("elf", b"ELF", size=2 * PAGE_SIZE)
    a = p.mmap(2 * PAGE_SIZE, prot="rw", flags="private", file=f)
    assert p.read(a, 3) == b"ELF"
    block = k.pfn_to_page(p.follow_pte(a).pfn)
    assert DEV <= block.pfn < DEV + dev.npages
    assert (k.page_count(block), k.page_mapcount(block), p.rss["file"]) == (2, 1, 1)
    assert normal_page(k, p, a) is block
    p.write(a, b"elf")
    assert p.follow_pte(a).pfn != block.pfn and xip.read(f, 0, 3) == b"ELF"
    assert (k.page_count(block), k.page_mapcount(block)) == (1, 0)
    k.check()
    p.exit()
    k.check()


@profiles()
def test_s8_munmap_of_nothing_returns_0_and_changes_nothing(profile):
    """mm/mmap.c do_munmap(), v2.6.26, kernel-facts §8: no vma overlaps the range → return 0,
    nothing changes (only a misaligned start or a zero length is -EINVAL)."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    before, free = k.snapshot(), k.nr_free_pages()
    assert p.munmap(a + 16 * PAGE_SIZE, 4 * PAGE_SIZE) == 0
    assert k.snapshot() == before and k.nr_free_pages() == free
    assert p.munmap(a, PAGE_SIZE) == 0 and p.find_vma(a) is None
    k.check()


LONG = 80             # pages: longer than memory.RUN_MIN, so remap_pfn_range records a linear run


@profiles()
@pytest.mark.parametrize("how", ["munmap", "munmap-cow-page", "exit", "fork-exit"])
def test_s8_long_private_remap_with_cow_frees_everything(profile, how):
    """mm/memory.c zap_pte_range() and mm/mmap.c free_pgtables(), v2.6.26 / v6.12, kernel-facts
    §4 and §8: a private /dev/mem mapping longer than 64 pages with one COWed page is counted
    once per pte by check(); after munmap or exit every page-table page and the COW copy are
    freed again."""
    from vmlib.memory import RUN_MIN
    assert LONG > RUN_MIN
    k, _dev, p = setup(profile, ram_pages=512)
    dev = k.add_device_memory(5000, 2 * LONG, "bigdev")
    free = k.nr_free_pages()
    a = devmem(k, p, 5000, LONG)
    p.write(a + 5 * PAGE_SIZE, b"cow")
    cow = normal_page(k, p, a + 5 * PAGE_SIZE)
    assert cow.anon and p.rss == {"anon": 1, "file": 0}
    k.check()
    if how == "fork-exit":
        c = p.fork()
        assert c.read(a + 5 * PAGE_SIZE, 3) == b"cow" and k.page_mapcount(cow) == 2
        k.check()
        c.exit()
        k.check()
        p.exit()
    elif how == "munmap":
        p.munmap(a, LONG * PAGE_SIZE)
    elif how == "munmap-cow-page":
        p.munmap(a + 5 * PAGE_SIZE, PAGE_SIZE)
        k.check()
        assert p.read(a + 6 * PAGE_SIZE, 1) == bytes(1)
        p.munmap(a, LONG * PAGE_SIZE)
    else:
        p.exit()
    k.check()
    pgd = 0 if how in ("exit", "fork-exit") else 1
    assert k.nr_free_pages() == free + (1 - pgd), "page-table pages or the COW page leaked"
    assert dev.read(5 * PAGE_SIZE, 3) == bytes(3)


@profiles("2.6.26/x86", "6.12/x86")
def test_check_catches_a_leaked_page_table(profile):
    """k.check() (kernel-facts §8): a page-table page under no vma is a leak, as is an empty
    entry left outside any linear run."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    p.munmap(a, PAGE_SIZE)
    k.check()
    with k._transaction():
        k.pte_alloc(p.mm, a)                  # what a zap that forgot free_pgtables leaves
    with pytest.raises(vmlib.InvariantError, match="leaked"):
        k.check()


@profiles("6.12/x86", "6.12/m68k")
def test_s9b_612_unpin_user_page(profile):
    """mm/gup.c unpin_user_page()/gup_put_folio(), v6.12, kernel-facts §9b: a FOLL_PIN is
    released by dropping GUP_PIN_COUNTING_BIAS references; the zero page is never pinned."""
    k, _dev, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE)
    p.write(a, b"x")
    p.read(a + PAGE_SIZE, 1)
    [pg] = p.pin_user_pages(a, 1)
    assert k.page_count(pg) == 1 + 1024
    k.unpin_user_page(pg)
    assert k.page_count(pg) == 1 and not k.held
    zc = k.page_count(k.zero_page)
    [z] = p.pin_user_pages(a + PAGE_SIZE, 1)
    assert z is k.zero_page
    k.unpin_user_page(z)
    assert k.page_count(k.zero_page) == zc
    k.check()


@pytest.mark.parametrize("profile", ["2.6.26/x86", "6.12/x86"])
def test_the_fork_zap_and_fault_decisions_are_override_seams(profile):
    """mm/memory.c copy_one_pte, zap_pte_range and __do_fault @ v2.6.26 (copy_present_ptes, zap_present_ptes,
    do_fault / do_cow_fault @ v6.12), kernel-facts §7 rows 4, 7-8, §8 rows 1-3, §6a rows 4, 6, 11: the kernel asks
    copy_one_pte_decision, zap_pte_decision and do_fault_decision through k.override, and their defaults give the
    kernel's answers: an XIP block mapped by vm_insert_mixed comes back as VM_FAULT_NOPAGE ("return"), a private
    write to a hole is COWed early ("cow"), a fault beyond EOF is VM_FAULT_SIGBUS ("return"); fork write-protects
    the COW mapping's ptes and counts a page, never a raw pfn; zap drops an anon page as anon."""
    from vmlib.grading import sim
    fns = ("copy_one_pte_decision", "zap_pte_decision", "do_fault_decision")
    sc = sim.scenario("seams", profile, "xipshort-ram", 3, "private",
                      [("parent", "read", 0), ("parent", "write", 1), ("parent", "read", 2),
                       ("parent", "fork", "child"), ("child", "exit", None), ("parent", "exit", None)])
    w = sim.play(sc, fns, None, {})
    asked = {(c["q"]["fn"], json.dumps(c["ans"])) for c in w.calls}
    assert ("do_fault_decision", '"return"') in asked and ("do_fault_decision", '"cow"') in asked, asked
    assert next(s[1] for s in w.steps if "0x40002000" in s[0]).startswith("BusError"), w.steps
    assert ("copy_one_pte_decision", "[true, true]") in asked and ("zap_pte_decision", '"anon"') in asked, asked
    rets = {c["q"]["ret"] for c in w.calls if c["q"]["fn"] == "do_fault_decision"}
    assert rets == {VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, 0}, rets
    plain = sim.play(sc, (), None, {})
    assert [s[1:] for s in plain.steps] == [s[1:] for s in w.steps]


@pytest.mark.parametrize("version, kept", [("2.6.26", 4), ("6.12", 0)])
def test_remap_pfn_range_out_of_page_tables_keeps_or_zaps_what_it_wrote(version, kept):
    """§4 row 7: mm/memory.c:remap_pfn_range @ v2.6.26 returns -ENOMEM with the ptes it wrote before
    the page table it could not allocate; mm/memory.c:remap_pfn_range_notrack @ v6.12 zaps them."""
    class Bare(vmlib.Driver):
        name = "bare"

        def mmap(self, k, vma):
            return 0

    k = vmlib.Kernel(version, "x86", ram_pages=64)
    k.add_device_memory(1000, 16, "dev")
    p = k.spawn()
    a = p.mmap(8 * PAGE_SIZE, flags="shared", file=k.open(Bare()), addr=0x40200000 - 4 * PAGE_SIZE)
    vma = p.find_vma(a)
    while k.nr_free_pages() > 3:              # pud, pmd and the first pte table; not the second
        k.alloc_page()
    assert k.remap_pfn_range(vma, a, 1000, 8 * PAGE_SIZE, vma.vm_page_prot) == -errno.ENOMEM
    mapped = [x for x in range(a, a + 8 * PAGE_SIZE, PAGE_SIZE) if p.follow_pte(x) is not None]
    assert [p.follow_pte(x).pfn for x in mapped] == list(range(1000, 1000 + kept))
    k.check()
