"""Every call of the DESIGN.md §3 public API contract, as written there, with real asserts."""

import pytest

import vmlib
from vmlib import (
    PAGE_SIZE,
    VM_FAULT_NOPAGE,
    VM_FAULT_SIGBUS,
    VM_IO,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)


class MyDevice(vmlib.Driver):
    """A MIXEDMAP device: page 0 is RAM, the rest is nvram (no struct page)."""

    def __init__(self, ram_pfn, dev_pfn):
        self.ram_pfn, self.dev_pfn = ram_pfn, dev_pfn

    def mmap(self, k, vma):
        vma.vm_flags |= VM_MIXEDMAP
        return 0

    def fault(self, k, vma, vmf):
        if vmf.pgoff >= 4:
            return VM_FAULT_SIGBUS
        pfn = self.ram_pfn if vmf.pgoff == 0 else self.dev_pfn + vmf.pgoff
        assert k.vm_insert_mixed(vma, vmf.address, pfn) == 0
        return VM_FAULT_NOPAGE


class HalfRemapDevice(vmlib.Driver):
    """Remaps only the first page: -EINVAL on a COW (private) vma (kernel-facts §4)."""

    def mmap(self, k, vma):
        return k.remap_pfn_range(vma, vma.vm_start, 1000, PAGE_SIZE, vma.vm_page_prot)


def test_contract_calls_as_written():
    """DESIGN.md §3, line by line, on 2.6.26/x86 (no pte_special: [A])."""
    k = vmlib.Kernel(version="2.6.26", arch="x86", ram_pages=100)
    assert k.pfn_valid(0) and k.pfn_valid(99) and not k.pfn_valid(100)
    dev = k.add_device_memory(start_pfn=1000, npages=100, name="nvram")
    dev.write(PAGE_SIZE + 8, b"nvram data")        # pfn 1001, byte 8
    assert dev.read(PAGE_SIZE + 8, 10) == b"nvram data"
    assert dev.read(0, 8) == bytes(8)
    page = k.alloc_page()
    assert k.page_count(page) == 1 and k.page_mapcount(page) == 0
    assert k.pfn_valid(page.pfn) and k.pfn_to_page(page.pfn) is page
    assert not k.pfn_valid(1000)
    with pytest.raises(vmlib.BadPageMap, match="no struct page"):
        k.pfn_to_page(1000)
    assert k.memmap_bytes() == 100 * k.profile.sizeof_struct_page == 100 * 56

    f = k.open(MyDevice(page.pfn, 1000), mode="rw")
    p = k.spawn()
    a = p.mmap(4 * PAGE_SIZE, prot="rw", flags="private")
    b = p.mmap(4 * PAGE_SIZE, prot="rw", flags="shared", file=f, offset=0)
    c = p.mmap(PAGE_SIZE, prot="r", flags="private", addr=0x10000)
    assert c == 0x10000 and len({a, b, c}) == 3
    bad = k.open(HalfRemapDevice(), mode="rw")
    with pytest.raises(vmlib.KernelError) as e:       # a failing mmap raises and leaves no vma
        p.mmap(2 * PAGE_SIZE, prot="rw", flags="private", file=bad)
    assert e.value.errno == 22                        # EINVAL
    assert len(p.vmas) == 3

    assert p.read(a, 1) == b"\0"
    p.write(a, b"x")
    assert p.read(a, 1) == b"x"
    assert p.read(b + PAGE_SIZE + 8, 10) == b"nvram data"
    assert p.read(c, 4) == bytes(4)

    vma = p.find_vma(b)
    assert (vma.vm_start, vma.vm_end, vma.vm_pgoff) == (b, b + 4 * PAGE_SIZE, 0)
    assert vma.vm_flags & (VM_READ | VM_WRITE | VM_SHARED | VM_MAYWRITE | VM_MIXEDMAP) == \
        VM_READ | VM_WRITE | VM_SHARED | VM_MAYWRITE | VM_MIXEDMAP
    assert not vma.vm_flags & (VM_PFNMAP | VM_IO)
    assert isinstance(vma.vm_page_prot, int)

    pte = p.follow_pte(b + PAGE_SIZE)
    assert pte.pfn == 1001 and pte.present and pte.write and not pte.special
    assert k.vm_normal_page(vma, b + PAGE_SIZE, pte) is None        # §1a row 1
    assert p.follow_pte(b + 3 * PAGE_SIZE) is None                   # never touched
    p.read(b, 1)
    pte0 = p.follow_pte(b)
    assert k.vm_normal_page(vma, b, pte0) is page                   # §1a row 2: refcounted
    assert k.page_count(page) == 2 and k.page_mapcount(page) == 1

    child = p.fork()
    assert child.read(a, 1) == b"x"
    assert child.follow_pte(b) is None            # MIXEDMAP without anon_vma: not copied (§7)
    child.write(a, b"y")
    assert p.read(a, 1) == b"x" and child.read(a, 1) == b"y"

    pages = p.get_user_pages(a, 1, write=False)
    assert len(pages) == 1 and pages[0].anon and k.page_count(pages[0]) == 2
    fast = p.get_user_pages_fast(a, 1, write=False)
    assert fast == pages and k.page_count(pages[0]) == 3
    k.put_page(pages[0])
    k.put_page(fast[0])
    assert k.page_count(pages[0]) == 1
    k.check()

    # the insert APIs return 0 or -errno exactly like the kernel
    assert k.vm_insert_mixed(vma, b + 3 * PAGE_SIZE, 1003) == 0
    assert k.vm_insert_mixed(vma, b + 3 * PAGE_SIZE, 1003) == -16           # -EBUSY
    assert k.vm_insert_mixed(vma, b + 4 * PAGE_SIZE, 1004) == -14           # -EFAULT
    assert k.vm_insert_pfn(vma, b + 2 * PAGE_SIZE, 1002) == 0
    page2 = k.alloc_page()
    assert k.vm_insert_page(vma, b + 2 * PAGE_SIZE, page2) == -16
    k.check()

    # mprotect, madvise(MADV_DONTNEED) and mremap, as written in §3 (kernel-facts §16)
    assert p.mprotect(a, PAGE_SIZE, prot="r") == 0 and not p.follow_pte(a).write
    with pytest.raises(vmlib.Segfault):
        p.write(a, b"z")
    assert p.madvise(b, PAGE_SIZE, "dontneed") == 0 and p.follow_pte(b) is None   # MIXEDMAP: zapped
    assert k.page_count(page) == 1 and k.page_mapcount(page) == 0                  # its ref dropped
    assert p.mremap(a + PAGE_SIZE, 3 * PAGE_SIZE, 2 * PAGE_SIZE, may_move=False) == a + PAGE_SIZE
    assert p.read(a, 1) == b"x"
    k.check()

    p.munmap(a, 4 * PAGE_SIZE)
    assert p.find_vma(a).vm_start == b
    p.exit()
    child.exit()
    assert k.page_count(page) == 1 and k.page_mapcount(page) == 0
    k.check()


def test_contract_override_seam():
    """with k.override(vm_normal_page=fn): student code drives the real simulator."""
    k = vmlib.Kernel(version="2.6.26", arch="x86", ram_pages=100)
    p = k.spawn()
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"z")
    seen = []
    real = k.ops.vm_normal_page

    def student_fn(k, vma, addr, pte):
        seen.append(addr)
        return real(k, vma, addr, pte)

    with k.override(vm_normal_page=student_fn):
        p.fork()
    assert seen == [a]
    p.fork()
    assert seen == [a]                       # restored after the block
    k.check()


def test_source_quotes_the_model():
    """vmlib.source gives lessons the model's own code (STYLE: quote code, do not copy it)."""
    text = vmlib.source("vm_normal_page")
    assert text.startswith("def vm_normal_page(k, vma, addr: int, pte: Pte)") and "§1a row 3" in text
    assert "class XipFs" in vmlib.source("XipFs")
    with pytest.raises(ValueError, match="no function 'nope'"):
        vmlib.source("nope")
    with pytest.raises(ValueError, match="function name"):
        vmlib.source("not a name")
