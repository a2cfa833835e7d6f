"""kernel-facts §9 (get_user_pages and lockless get_user_pages_fast), row by row, per profile.

Test names carry the table and row; docstrings name the kernel function and version followed.
"""

import errno

import pytest
from helpers_drivers import FlagsDriver, MixedDriver, kernel, mark, profiles, rows

import vmlib
from vmlib import PAGE_SIZE
from vmlib.drivers import DevMem
from vmlib.flags import VM_MIXEDMAP

DEV = 1000
FAST = ("2.6.27/x86", "6.12/x86")                          # HAVE_GUP_FAST
NO_FAST = ("2.6.25/x86", "2.6.26/x86", "2.6.26/s390", "6.12/m68k")
OLD = ("2.6.25/x86", "2.6.26/x86", "2.6.26/s390", "2.6.27/x86")


def setup(profile):
    k = kernel(profile, 256)
    dev = k.add_device_memory(DEV, 64, "nvram")
    return k, dev, k.spawn("P")


def calls(k, since, func):
    return [e for e in k.trace.events[since:] if e.kind == "call" and e.func == func]


def anon_pages(p, n):
    a = p.mmap(n * PAGE_SIZE)
    for i in range(n):
        p.write(a + i * PAGE_SIZE, bytes([i + 1]))
    return a


# -- §9b fast path ----------------------------------------------------------------------------

@profiles(*FAST)
def test_s9b_fast_path_takes_refs_without_slow_path(profile):
    """arch/x86/mm/gup.c gup_pte_range(), v2.6.27 / mm/gup.c gup_fast_pte_range(), v6.12,
    kernel-facts §9b 'otherwise': get_page (+1 ref), mapcount unchanged, no get_user_pages."""
    k, _dev, p = setup(profile)
    a = anon_pages(p, 3)
    before = [k.pfn_to_page(p.follow_pte(a + i * PAGE_SIZE).pfn) for i in range(3)]
    m = mark(k)
    pages = p.get_user_pages_fast(a, 3, write=True)
    assert pages == before
    assert [(k.page_count(pg), k.page_mapcount(pg)) for pg in pages] == [(2, 1)] * 3
    assert not calls(k, m, "get_user_pages")
    assert rows(k, m) == ["§9b fast path"] * 3
    for pg in pages:
        k.put_page(pg)
    k.check()


@profiles(*FAST)
@pytest.mark.parametrize("why", ["not_present", "read_only_for_write", "special"])
def test_s9b_fast_path_falls_back_for_the_rest(profile, why):
    """arch/x86/mm/gup.c gup_pte_range(), v2.6.27 / mm/gup.c gup_fast_pte_range(), v6.12,
    kernel-facts §9b: a pte that is absent, read-only for a write, or special stops the fast
    walk; that page and every later one go to the slow path; pages already taken are kept."""
    k, _dev, p = setup(profile)
    if why == "special":
        f = k.open(MixedDriver([k.alloc_page().pfn, k.alloc_page().pfn]))
        a = p.mmap(3 * PAGE_SIZE, flags="private", file=f)
    else:
        a = p.mmap(3 * PAGE_SIZE)
    p.mmap(PAGE_SIZE, addr=a - PAGE_SIZE)                       # a normal page just before
    if why == "special":
        p.read(a, 1)
        assert p.follow_pte(a).special
    elif why == "read_only_for_write":
        p.write(a, b"x")
        p.fork()                                                  # COW: parent pte read-only
        assert not p.follow_pte(a).write
    p.write(a - PAGE_SIZE, b"n")                                  # writable, present
    m = mark(k)
    if why == "special":                # the slow path refuses the special page as well
        pages = p.get_user_pages_fast(a - PAGE_SIZE, 3, write=False)
        assert len(pages) == 1
    else:
        pages = p.get_user_pages_fast(a - PAGE_SIZE, 3, write=True)
        assert len(pages) == 3 and all(pg.anon for pg in pages)
        assert p.follow_pte(a).write          # the slow path faulted (COW/anonymous) for write
    r = rows(k, m)
    assert r[0] == "§9b fast path" and r[1] == "§9b fast path"   # one taken, then the stop
    assert "fall back" in [e for e in k.trace.events[m:] if e.row == "§9b fast path"][1].text
    assert len(calls(k, m, "get_user_pages")) == 1
    for pg in pages:
        k.put_page(pg)
    k.check()


@profiles(*NO_FAST)
def test_s9c_no_lockless_walk_uses_get_user_pages(profile):
    """mm/util.c generic get_user_pages_fast() (912985dce4, v2.6.27) / v6.12 without
    CONFIG_ARCH_HAS_PTE_SPECIAL, kernel-facts §9c and §9b last paragraph: no lockless pte walk;
    everything goes through get_user_pages."""
    k, _dev, p = setup(profile)
    a = anon_pages(p, 2)
    m = mark(k)
    pages = p.get_user_pages_fast(a, 2)
    assert len(pages) == 2 and all(k.page_count(pg) == 2 for pg in pages)
    assert "§9c" in rows(k, m) and "§9b fast path" not in rows(k, m)
    assert len(calls(k, m, "get_user_pages")) == 1


@profiles("2.6.25/x86", "2.6.26/x86", "2.6.26/s390")
def test_s9c_no_gup_fast_api_before_2_6_27(profile):
    """include/linux/mm.h, v2.6.26: no get_user_pages_fast (21cc199baa added it in 2.6.27),
    kernel-facts §9c. The call is kept for the course, and stands for what callers did:
    down_read(mmap_sem) + get_user_pages; the trace says so and shows no get_user_pages_fast."""
    k, _dev, p = setup(profile)
    a = anon_pages(p, 2)
    m = mark(k)
    pages = p.get_user_pages_fast(a, 2)
    assert [pg.pfn for pg in pages] == [p.follow_pte(a + i * PAGE_SIZE).pfn for i in range(2)]
    assert not calls(k, m, "get_user_pages_fast")
    assert len(calls(k, m, "down_read(mmap_sem); get_user_pages")) == 1
    assert len(calls(k, m, "get_user_pages")) == 1
    assert "has no get_user_pages_fast" in k.trace.text(m) and "§9c" in rows(k, m)
    for pg in pages:
        k.put_page(pg)
    k.check()


@profiles(*FAST)
def test_s9b_slow_path_failure_after_fast_pages_returns_partial(profile):
    """arch/x86/mm/gup.c get_user_pages_fast(), v2.6.27 / v6.12, kernel-facts §9b fallback:
    if the slow path fails after fast successes, the pages already obtained are returned."""
    k, _dev, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE)
    p.write(a, b"x")
    p.munmap(a + PAGE_SIZE, PAGE_SIZE)                      # a hole after the first page
    pages = p.get_user_pages_fast(a, 2)
    assert len(pages) == 1 and k.page_count(pages[0]) == 2
    with pytest.raises(vmlib.KernelError) as e:
        p.get_user_pages_fast(a + PAGE_SIZE, 1)
    assert e.value.errno == errno.EFAULT


@profiles("6.12/x86")
def test_s9b_612_foll_pin_bias_and_zero_page(profile):
    """mm/gup.c try_grab_folio()/gup_fast_pte_range(), v6.12, kernel-facts §9b: FOLL_PIN adds
    GUP_PIN_COUNTING_BIAS (1024); the zero page is never pinned."""
    k, _dev, p = setup(profile)
    a = anon_pages(p, 1)
    [pg] = p.pin_user_pages(a, 1)
    assert k.page_count(pg) == 1 + 1024 and k.page_mapcount(pg) == 1
    b = p.mmap(PAGE_SIZE)
    p.read(b, 1)
    zc = k.page_count(k.zero_page)
    [z] = p.pin_user_pages(b, 1)
    assert z is k.zero_page and k.page_count(k.zero_page) == zc
    k.check()


@profiles(*FAST)
def test_s9a_without_the_bit_fast_gup_would_touch_a_missing_struct_page(profile):
    """arch/x86/mm/gup.c gup_pte_range(), v2.6.27 (commit a0a8f5364a), kernel-facts §9a: the
    lockless walk has no vma, so only the pte's special bit keeps it from taking a reference
    through a pfn with no struct page. With the check overridden away, gup_fast on a device
    pfn dereferences a struct page that does not exist; the operation is rolled back."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(DevMem()), offset=DEV * PAGE_SIZE)
    p.read(a, 1)
    with pytest.raises(vmlib.KernelError):
        p.get_user_pages_fast(a, 1)                          # real check: fall back, -EFAULT
    before, free = k.snapshot(), k.nr_free_pages()
    with k.override(gup_fast_pte_ok=lambda k, pte, write: pte is not None), \
            pytest.raises(vmlib.BadPageMap, match="no struct page"):
        p.get_user_pages_fast(a, 1)
    assert k.snapshot() == before and k.nr_free_pages() == free
    k.check()


# -- §9b slow path -----------------------------------------------------------------------------

@profiles()
@pytest.mark.parametrize("flags", ["private", "shared"])
def test_s9b_slow_vm_io_pfnmap_efault(profile, flags):
    """mm/memory.c get_user_pages(), v2.6.26 / mm/gup.c check_vma_flags(), v6.12,
    kernel-facts §9b 'vma has VM_IO or VM_PFNMAP': -EFAULT before touching ptes."""
    k, _dev, p = setup(profile)
    page = k.alloc_page()
    a = p.mmap(PAGE_SIZE, flags=flags, file=k.open(DevMem()), offset=page.pfn * PAGE_SIZE)
    m = mark(k)
    for fn in (p.get_user_pages, p.get_user_pages_fast):
        with pytest.raises(vmlib.KernelError) as e:
            fn(a, 1)
        assert e.value.errno == errno.EFAULT
        assert "VM_IO" in str(e.value) or "cannot be taken" in str(e.value)
    assert k.page_count(page) == 1
    assert [e.kind for e in k.trace.events[m:]].count("error") == 2
    k.check()


@profiles("2.6.26/x86", "2.6.26/s390", "2.6.27/x86", "6.12/x86", "6.12/m68k")
def test_s9b_slow_mixedmap_special_pte(profile):
    """mm/memory.c follow_page(), v2.6.26 (-EFAULT) / mm/gup.c follow_pfn_pte(), v6.12
    (-EEXIST), kernel-facts §9b 'VM_MIXEDMAP, pte where vm_normal_page == NULL'."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([DEV])))
    p.read(a, 1)
    with pytest.raises(vmlib.KernelError) as e:
        p.get_user_pages(a, 1)
    assert e.value.errno == (errno.EEXIST if k.profile.MODERN else errno.EFAULT)
    k.check()


@profiles("2.6.26/x86", "6.12/m68k")
def test_s9b_slow_mixedmap_ram_page_without_pte_special(profile):
    """mm/memory.c follow_page(), v2.6.26 / v6.12, kernel-facts §9b 'normal page' with §1a row
    2 / §1d row 3: without pte special a RAM pfn in a MIXEDMAP is a normal page for gup."""
    k, _dev, p = setup(profile)
    page = k.alloc_page()
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([page.pfn])))
    p.read(a, 1)
    [got] = p.get_user_pages(a, 1)
    assert got is page and k.page_count(page) == 3
    k.put_page(got)
    k.check()


@profiles("6.12/x86", "6.12/m68k")
def test_s9b_612_zero_pfn_foll_get(profile):
    """mm/gup.c follow_page_pte(), v6.12, kernel-facts §9b 'zero pfn pte': returns the zero
    page; FOLL_GET takes a reference."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    p.read(a, 1)
    zc = k.page_count(k.zero_page)
    [z] = p.get_user_pages(a, 1)
    assert z is k.zero_page and k.page_count(k.zero_page) == zc + 1
    k.put_page(z)
    k.check()


@profiles(*OLD)
def test_s9b_foll_anon_zero_page_without_page_table(profile):
    """mm/memory.c follow_page() no_page_table / FOLL_ANON, v2.6.26, kernel-facts §9b 'no page
    table, read, private anon vma': the ZERO_PAGE with a reference, not mapped."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    zc = k.page_count(k.zero_page)
    m = mark(k)
    [z] = p.get_user_pages(a, 1)
    assert z is k.zero_page and k.page_count(k.zero_page) == zc + 1
    assert p.follow_pte(a) is None and p.rss["anon"] == 0
    assert "§9b zero pfn (2.6.26)" in rows(k, m)
    k.put_page(z)
    k.check()


@profiles("2.6.26/x86", "2.6.26/s390", "2.6.27/x86")
def test_s9b_foll_anon_none_pte_in_existing_table_gives_zero_page(profile):
    """mm/memory.c follow_page() 'no_page:' falling through to 'no_page_table:', v2.6.26 and
    v2.6.27 (89f5b7da2a), kernel-facts §9b: a none pte in an existing table is treated like a
    missing table: a read gup gets the ZERO_PAGE with a reference; nothing is faulted in, the
    pte stays none and rss does not change."""
    k, _dev, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE)
    p.write(a, b"x")                                  # builds the pte table
    zc, free, rss = k.page_count(k.zero_page), k.nr_free_pages(), p.rss
    m = mark(k)
    [pg] = p.get_user_pages(a + PAGE_SIZE, 1)
    assert pg is k.zero_page and k.page_count(k.zero_page) == zc + 1
    assert p.follow_pte(a + PAGE_SIZE) is None and p.rss == rss and k.nr_free_pages() == free
    assert "none pte" in k.trace.text(m) and "§9b zero pfn (2.6.26)" in rows(k, m)
    k.put_page(pg)
    k.check()


@profiles("2.6.25/x86")
def test_s9b_2_6_25_foll_anon_only_without_page_table(profile):
    """mm/memory.c follow_page(), v2.6.25, kernel-facts §9b: before 89f5b7da2a a none pte in an
    existing table returned NULL, so get_user_pages faulted a real page in."""
    k, _dev, p = setup(profile)
    a = p.mmap(2 * PAGE_SIZE)
    p.write(a, b"x")
    [pg] = p.get_user_pages(a + PAGE_SIZE, 1)
    assert pg is not k.zero_page and pg.anon
    assert p.follow_pte(a + PAGE_SIZE).pfn == pg.pfn and p.rss["anon"] == 2
    k.put_page(pg)
    k.check()


@pytest.mark.parametrize("profile,zero", [("2.6.25/x86", True), ("2.6.26/x86", False)])
def test_s9b_foll_anon_and_vm_shared(profile, zero):
    """mm/memory.c get_user_pages(), v2.6.25 (FOLL_ANON unless VM_LOCKED) and use_zero_page(),
    v2.6.26 (672ca28e30: also not for VM_SHARED): a read gup of a shared vma without ->fault."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, flags="shared", file=k.open(FlagsDriver(0)))
    [pg] = p.get_user_pages(a, 1)
    assert (pg is k.zero_page) == zero
    assert (p.follow_pte(a) is None) == zero
    k.put_page(pg)
    k.check()


@pytest.mark.parametrize("profile,zero", [("2.6.25/x86", True), ("2.6.26/x86", False)])
def test_s9b_foll_anon_and_nopfn(profile, zero):
    """mm/memory.c get_user_pages(), v2.6.25 (FOLL_ANON unless the vma has ->nopage or
    ->fault: ->nopfn does not count) and use_zero_page(), v2.6.26 (not for a vma with ->fault
    or ->nopfn), kernel-facts §9b row 11: a read gup of a private VM_MIXEDMAP vma whose driver
    has only ->nopfn. 2.6.25 hands out the ZERO_PAGE; 2.6.26 faults the pfn in through
    do_no_pfn, and vm_normal_page calls that device pfn special (-EFAULT, §9b row 14)."""

    class MixedNopfn(vmlib.Driver):
        name = "mixed-nopfn"

        def mmap(self, k, vma):
            vma.vm_flags |= VM_MIXEDMAP
            return 0

        def nopfn(self, k, vma, address):
            return DEV

    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, file=k.open(MixedNopfn()))
    if zero:
        [pg] = p.get_user_pages(a, 1)
        assert pg is k.zero_page and p.follow_pte(a) is None
        k.put_page(pg)
    else:
        with pytest.raises(vmlib.KernelError) as e:
            p.get_user_pages(a, 1)
        assert e.value.errno == errno.EFAULT
        assert p.follow_pte(a) is None               # the failed call is undone
    k.check()


@profiles()
def test_s9b_slow_normal_page_get_page(profile):
    """mm/memory.c get_user_pages()/follow_page(), v2.6.26 / mm/gup.c, v6.12, kernel-facts §9b
    'normal page': get_page; a write faults the page in writable first."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE)
    [pg] = p.get_user_pages(a, 1, write=True)
    assert pg.anon and (k.page_count(pg), k.page_mapcount(pg)) == (2, 1)
    assert p.follow_pte(a).write and "§9b normal page" in rows(k)
    k.put_page(pg)
    k.check()


@profiles()
def test_s9b_slow_unwritable_vma_efault(profile):
    """mm/memory.c get_user_pages(), v2.6.26 / check_vma_flags() v6.12: a write gup of a
    read-only vma is -EFAULT (no FOLL_FORCE)."""
    k, _dev, p = setup(profile)
    a = p.mmap(PAGE_SIZE, prot="r")
    with pytest.raises(vmlib.KernelError) as e:
        p.get_user_pages(a, 1, write=True)
    assert e.value.errno == errno.EFAULT
    k.check()
