"""Bad inputs: each is refused with the right error type and a message saying what was wrong,
and leaves the state exactly as it was (snapshot, free pages, caller-held references) and
check()-clean. A -errno return (kernel behaviour) is tested where the facade raises it."""

from types import SimpleNamespace

import pytest
from helpers_drivers import FlagsDriver, kernel

import vmlib
from vmlib import PAGE_SIZE, VM_IO, VM_PFNMAP
from vmlib.drivers import DevMem, FbDev, XipFs

DEV = 1000


class _HalfRemap(vmlib.Driver):
    def mmap(self, k, vma):
        return k.remap_pfn_range(vma, vma.vm_start, DEV, PAGE_SIZE)


def world(profile="2.6.26/x86"):
    """A kernel with nvram, a process with a written anonymous mapping and a read-only one."""
    k = kernel(profile, 128)
    dev = k.add_device_memory(DEV, 16, "nvram")
    p = k.spawn("P")
    a = p.mmap(2 * PAGE_SIZE)
    p.write(a, b"x")
    ro = p.mmap(PAGE_SIZE, prot="r")
    return SimpleNamespace(k=k, dev=dev, p=p, a=a, ro=ro)


def _exited(w):
    w.q = w.k.spawn("Q")
    w.q.mmap(PAGE_SIZE)
    w.q.exit()


def _cow_pfnmap(w):
    w.v = w.p.find_vma(w.p.mmap(PAGE_SIZE, flags="private", file=w.k.open(FlagsDriver(VM_PFNMAP | VM_IO))))


def _plain_vma(w):
    w.v = w.p.find_vma(w.p.mmap(PAGE_SIZE, flags="shared", file=w.k.open(FlagsDriver(0))))


def _xip(w):
    w.xip = XipFs(w.k, backing=w.dev)
    w.f = w.xip.create("small", b"data")


def _devmem(w):
    w.m = w.p.mmap(PAGE_SIZE, flags="shared", file=w.k.open(DevMem()), offset=DEV * PAGE_SIZE)


def _xip_mapped(w):
    _xip(w)
    w.m = w.p.mmap(2 * PAGE_SIZE, flags="private", file=w.f)


def _devmem_ro(w):
    w.m = w.p.mmap(PAGE_SIZE, prot="r", flags="shared", file=w.k.open(DevMem(), "r"),
                   offset=DEV * PAGE_SIZE)


def _devmem_ro_after_a(w):
    """A read-only shared /dev/mem vma right after w.a's two pages (w.ro moved out of the way)."""
    w.p.munmap(w.ro, PAGE_SIZE)
    w.m = w.p.mmap(PAGE_SIZE, prot="r", flags="shared", file=w.k.open(DevMem(), "r"),
                   offset=DEV * PAGE_SIZE, addr=w.a + 2 * PAGE_SIZE)
    w.p.mprotect(w.a, 2 * PAGE_SIZE, "r")


# (name, prepare, bad call, exception, key words in the message, profile)
CASES = [
    ("mmap_misaligned_addr", None, lambda w: w.p.mmap(PAGE_SIZE, addr=0x10001), ValueError,
     ["addr", "page-aligned"]),
    ("mmap_misaligned_offset", None,
     lambda w: w.p.mmap(PAGE_SIZE, file=w.k.open(DevMem()), offset=123), ValueError,
     ["offset", "page-aligned"]),
    ("mmap_zero_length", None, lambda w: w.p.mmap(0), ValueError, ["length", "positive"]),
    ("mmap_negative_length", None, lambda w: w.p.mmap(-PAGE_SIZE), ValueError, ["length", "positive"]),
    ("mmap_length_not_int", None, lambda w: w.p.mmap(1.5), TypeError, ["length", "int"]),
    ("mmap_unknown_prot", None, lambda w: w.p.mmap(PAGE_SIZE, prot="rwz"), ValueError, ["prot", "rwx"]),
    ("mmap_prot_not_str", None, lambda w: w.p.mmap(PAGE_SIZE, prot=3), TypeError, ["prot"]),
    ("mmap_unknown_flags", None, lambda w: w.p.mmap(PAGE_SIZE, flags="privat"), ValueError,
     ["flags", "private", "shared"]),
    ("mmap_outside_user_space", None, lambda w: w.p.mmap(PAGE_SIZE, addr=1 << 47), ValueError,
     ["outside user space"]),
    ("mmap_file_of_other_kernel", None,
     lambda w: w.p.mmap(PAGE_SIZE, file=vmlib.Kernel().open(DevMem())), ValueError, ["another kernel"]),
    ("mmap_file_not_a_file", None, lambda w: w.p.mmap(PAGE_SIZE, file="dev"), TypeError,
     ["file", "open"]),
    ("mmap_shared_write_of_readonly_file", None,
     lambda w: w.p.mmap(PAGE_SIZE, flags="shared", prot="rw", file=w.k.open(DevMem(), "r"),
                        offset=DEV * PAGE_SIZE), vmlib.KernelError, ["shared", "write"]),
    ("mmap_write_only_file", None,
     lambda w: w.p.mmap(PAGE_SIZE, prot="r", file=w.k.open(DevMem(), "w"), offset=DEV * PAGE_SIZE),
     vmlib.KernelError, ["not opened for reading"]),
    ("devmem_past_device_end", None,
     lambda w: w.p.mmap(4 * PAGE_SIZE, flags="shared", file=w.k.open(DevMem()),
                        offset=(DEV + 14) * PAGE_SIZE), vmlib.KernelError, ["device", "end"]),
    ("device_read_past_end", None, lambda w: w.dev.read(16 * PAGE_SIZE - 2, 4), ValueError,
     ["past the device's end"]),
    ("device_write_past_end", None, lambda w: w.dev.write(16 * PAGE_SIZE, b"x"), ValueError,
     ["past the device's end"]),
    ("partial_remap_of_cow_vma", None,
     lambda w: w.p.mmap(2 * PAGE_SIZE, flags="private", file=w.k.open(_HalfRemap())),
     vmlib.KernelError, ["refused"]),
    ("remap_over_present_pte", None,
     lambda w: w.p.mmap(2 * PAGE_SIZE, flags="shared", file=w.k.open(_DoubleRemapSame())),
     vmlib.KernelBug, ["remap_pfn_range", "already present"]),
    ("vm_insert_pfn_into_cow_pfnmap", _cow_pfnmap,
     lambda w: w.k.vm_insert_pfn(w.v, w.v.vm_start, DEV), vmlib.KernelBug,
     ["vm_insert_pfn", "cow"]),
    ("vm_insert_mixed_without_mixedmap", _plain_vma,
     lambda w: w.k.vm_insert_mixed(w.v, w.v.vm_start, DEV), vmlib.KernelBug,
     ["vm_insert_mixed", "vm_mixedmap"]),
    ("vm_insert_mixed_on_2_6_25", _plain_vma,
     lambda w: w.k.vm_insert_mixed(w.v, w.v.vm_start, DEV), vmlib.MissingFeature,
     ["2.6.25", "2.6.26"], "2.6.25/x86"),
    ("vm_insert_pfn_misaligned", _plain_vma,
     lambda w: w.k.vm_insert_pfn(w.v, w.v.vm_start + 1, DEV), ValueError, ["page-aligned"]),
    ("put_page_underflow", None, lambda w: w.k.put_page(w.k.pfn_to_page(120)), vmlib.BadPageState,
     ["put_page", "underflow"]),
    ("put_page_not_a_page", None, lambda w: w.k.put_page(120), TypeError, ["page"]),
    ("pfn_to_page_of_device", None, lambda w: w.k.pfn_to_page(DEV), vmlib.BadPageMap,
     ["no struct page", "nvram"]),
    ("write_to_readonly_mapping", None, lambda w: w.p.write(w.ro, b"no"), vmlib.Segfault,
     ["not writable"]),
    ("write_across_the_end_of_a_vma", None,
     lambda w: w.p.write(w.ro - 2, b"four"), vmlib.Segfault, ["sigsegv"]),
    ("read_unmapped", None, lambda w: w.p.read(0x1000, 1), vmlib.Segfault, ["no vma"]),
    ("write_not_bytes", None, lambda w: w.p.write(w.a, "text"), TypeError, ["bytes"]),
    ("read_zero_bytes", None, lambda w: w.p.read(w.a, 0), ValueError, ["length", "positive"]),
    ("munmap_zero_length", None, lambda w: w.p.munmap(w.a, 0), ValueError,
     ["length", "positive", "EINVAL"]),
    ("munmap_misaligned", None, lambda w: w.p.munmap(w.a + 1, PAGE_SIZE), ValueError,
     ["page-aligned"]),
    ("read_after_exit", _exited, lambda w: w.q.read(0x4000_0000, 1), ValueError, ["exited"]),
    ("mmap_after_exit", _exited, lambda w: w.q.mmap(PAGE_SIZE), ValueError, ["exited"]),
    ("fork_after_exit", _exited, lambda w: w.q.fork(), ValueError, ["exited"]),
    ("gup_zero_pages", None, lambda w: w.p.get_user_pages(w.a, 0), ValueError, ["nr", "positive"]),
    ("gup_misaligned", None, lambda w: w.p.get_user_pages_fast(w.a + 8, 1), ValueError,
     ["page-aligned"]),
    ("gup_unmapped", None, lambda w: w.p.get_user_pages(0x1000, 1), vmlib.KernelError,
     ["get_user_pages", "cannot be taken"]),
    ("gup_pfnmap", _devmem, lambda w: w.p.get_user_pages(w.m, 1), vmlib.KernelError,
     ["get_user_pages"]),
    ("pin_user_pages_on_2_6_26", None, lambda w: w.p.pin_user_pages(w.a, 1), vmlib.MissingFeature,
     ["foll_pin", "6.12"]),
    ("override_unknown_function", None, lambda w: w.k.override(vm_normal_pag=len).__enter__(),
     ValueError, ["vm_normal_pag", "cannot be overridden"]),
    ("override_not_callable", None, lambda w: w.k.override(vm_normal_page=3).__enter__(), TypeError,
     ["vm_normal_page", "function"]),
    ("open_not_a_driver", None, lambda w: w.k.open(object()), TypeError, ["driver"]),
    ("open_unknown_mode", None, lambda w: w.k.open(DevMem(), mode="x"), ValueError, ["mode"]),
    ("device_overlapping_ram", None, lambda w: w.k.add_device_memory(100, 4), ValueError,
     ["overlap ram"]),
    ("device_overlapping_device", None, lambda w: w.k.add_device_memory(DEV + 8, 16), ValueError,
     ["overlap"]),
    ("device_zero_pages", None, lambda w: w.k.add_device_memory(5000, 0), ValueError,
     ["npages", "positive"]),
    ("fbdev_private_map", None,
     lambda w: w.p.mmap(PAGE_SIZE, flags="private", file=w.k.open(FbDev(w.k, 1, backing=w.dev))),
     vmlib.KernelError, ["refused"], "2.6.27/x86"),
    ("fbdev_private_map_2_6_26_s390", None,
     lambda w: w.p.mmap(PAGE_SIZE, flags="private", file=w.k.open(FbDev(w.k, 1, backing=w.dev))),
     vmlib.KernelError, ["refused"], "2.6.26/s390"),
    ("unpin_not_pinned", None, lambda w: w.k.unpin_user_page(w.k.pfn_to_page(w.p.follow_pte(w.a).pfn)),
     ValueError, ["unpin_user_page", "not pinned", "put_page"], "6.12/x86"),
    ("unpin_before_foll_pin", None,
     lambda w: w.k.unpin_user_page(w.k.pfn_to_page(w.p.follow_pte(w.a).pfn)), vmlib.MissingFeature,
     ["foll_pin", "6.12"]),
    ("unpin_not_a_page", None, lambda w: w.k.unpin_user_page(5), TypeError, ["page"], "6.12/x86"),
    ("memmap_for_mapped_device", _devmem, lambda w: w.k.add_shared_memory(w.dev), ValueError,
     ["add_shared_memory", "already"], "2.6.25/x86"),
    ("memmap_not_a_device", None, lambda w: w.k.add_shared_memory("nvram"), TypeError,
     ["DeviceMemory"]),
    ("memmap_twice", _xip, lambda w: w.k.add_shared_memory(w.dev), ValueError, ["memmap already"],
     "2.6.25/x86"),
    ("xip_read_past_eof", _xip, lambda w: w.xip.read(w.f, 2, 10), ValueError, ["past the end"]),
    ("xip_create_twice", _xip, lambda w: w.xip.create("small", b""), ValueError, ["exists"]),
    ("xip_mapping_past_eof", _xip_mapped, lambda w: w.p.read(w.m + PAGE_SIZE, 1), vmlib.BusError,
     ["sigbus"]),
    ("mprotect_misaligned", None, lambda w: w.p.mprotect(w.a + 1, PAGE_SIZE, "r"), ValueError,
     ["mprotect", "page-aligned"]),
    ("mprotect_unknown_prot", None, lambda w: w.p.mprotect(w.a, PAGE_SIZE, "rq"), ValueError,
     ["mprotect", "prot", "rwx"]),
    ("mprotect_prot_not_str", None, lambda w: w.p.mprotect(w.a, PAGE_SIZE, prot=1), TypeError,
     ["mprotect", "prot"]),
    ("mprotect_negative_length", None, lambda w: w.p.mprotect(w.a, -1, "r"), ValueError,
     ["mprotect", "positive"]),
    ("mprotect_hole", None, lambda w: w.p.mprotect(w.a, 64 * PAGE_SIZE, "r"), vmlib.KernelError,
     ["not mapped", "enomem"]),
    ("mprotect_shared_readonly_file_to_rw", _devmem_ro,
     lambda w: w.p.mprotect(w.m, PAGE_SIZE, "rw"), vmlib.KernelError, ["vm_maywrite", "eacces"]),
    ("mprotect_eacces_on_second_vma_changes_first_neither", _devmem_ro_after_a,
     lambda w: w.p.mprotect(w.a, 3 * PAGE_SIZE, "rw"), vmlib.KernelError, ["eacces"]),
    ("madvise_pfnmap", _devmem, lambda w: w.p.madvise(w.m, PAGE_SIZE, "dontneed"), vmlib.KernelError,
     ["vm_pfnmap", "einval"]),
    ("madvise_pfnmap_6_12", _devmem, lambda w: w.p.madvise(w.m, PAGE_SIZE, "dontneed"),
     vmlib.KernelError, ["vm_pfnmap", "einval"], "6.12/x86"),
    ("madvise_unknown_advice", None, lambda w: w.p.madvise(w.a, PAGE_SIZE, "willneed"), ValueError,
     ["madvise", "dontneed"]),
    ("madvise_advice_not_str", None, lambda w: w.p.madvise(w.a, PAGE_SIZE, 4), TypeError,
     ["madvise", "advice"]),
    ("madvise_hole", None, lambda w: w.p.madvise(w.a, 64 * PAGE_SIZE), vmlib.KernelError,
     ["not mapped", "enomem"]),
    ("mremap_grow_pfnmap", _devmem, lambda w: w.p.mremap(w.m, PAGE_SIZE, 2 * PAGE_SIZE, may_move=True),
     vmlib.KernelError, ["vm_pfnmap", "efault"]),
    ("mremap_grow_pfnmap_6_12", _devmem,
     lambda w: w.p.mremap(w.m, PAGE_SIZE, 2 * PAGE_SIZE, may_move=True), vmlib.KernelError,
     ["vm_pfnmap", "vm_dontexpand", "efault"], "6.12/x86"),
    ("mremap_cannot_grow_in_place", None, lambda w: w.p.mremap(w.a, 2 * PAGE_SIZE, 4 * PAGE_SIZE),
     vmlib.KernelError, ["may_move", "enomem"]),
    ("mremap_past_vma_end", None, lambda w: w.p.mremap(w.a, 3 * PAGE_SIZE, 4 * PAGE_SIZE, may_move=True),
     vmlib.KernelError, ["end of its vma", "efault"]),
    ("mremap_shrink_unmapped_6_12", None, lambda w: w.p.mremap(0x1000, 2 * PAGE_SIZE, PAGE_SIZE),
     vmlib.KernelError, ["no vma", "efault"], "6.12/x86"),
    ("mremap_fixed_without_may_move", None,
     lambda w: w.p.mremap(w.a, PAGE_SIZE, PAGE_SIZE, new_addr=0x9000_0000), ValueError,
     ["new_addr", "may_move"]),
    ("mremap_fixed_overlap", None,
     lambda w: w.p.mremap(w.a, 2 * PAGE_SIZE, 2 * PAGE_SIZE, may_move=True, new_addr=w.a + PAGE_SIZE),
     ValueError, ["overlaps"]),
    ("mremap_zero_new_len", None, lambda w: w.p.mremap(w.a, PAGE_SIZE, 0), ValueError,
     ["new_len", "positive"]),
    ("mremap_zero_old_len", None, lambda w: w.p.mremap(w.a, 0, PAGE_SIZE), ValueError,
     ["old_len", "not modelled"]),
    ("mremap_may_move_not_bool", None, lambda w: w.p.mremap(w.a, PAGE_SIZE, PAGE_SIZE, may_move=1),
     TypeError, ["may_move"]),
]


class _DoubleRemapSame(vmlib.Driver):
    def mmap(self, k, vma):
        k.remap_pfn_range(vma, vma.vm_start, DEV, PAGE_SIZE)
        return k.remap_pfn_range(vma, vma.vm_start, DEV, PAGE_SIZE)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(case):
    """The error type, key words of the message, and an unchanged, check()-clean state."""
    name, prepare, call, exc, words, *profile = case
    w = world(*profile)
    if prepare is not None:
        prepare(w)
    k = w.k
    before, free, held = k.snapshot(), k.nr_free_pages(), dict(k.held)
    procs, vmas = dict(k.procs), {pid: list(p.mm.vmas) for pid, p in k.procs.items()}
    with pytest.raises(exc) as e:
        call(w)
    msg = str(e.value).lower()
    for word in words:
        assert word.lower() in msg, f"{name}: {word!r} not in {str(e.value)!r}"
    assert k.snapshot() == before
    assert k.nr_free_pages() == free and k.held == held
    assert k.procs == procs and {pid: list(p.mm.vmas) for pid, p in k.procs.items()} == vmas
    k.check()


@pytest.mark.parametrize("version,arch,words", [("2.6.24", "x86", ["version", "2.6.25", "6.12"]),
                                                ("6.12", "sparc", ["arch", "x86", "m68k"]),
                                                ("2.6.26", "x86-64", ["arch"])])
def test_unknown_version_or_arch(version, arch, words):
    """Kernel(version, arch) names the choices when either is unknown."""
    with pytest.raises(ValueError) as e:
        vmlib.Kernel(version=version, arch=arch)
    for word in words:
        assert word in str(e.value)


@pytest.mark.parametrize("ram,exc,word", [(8, ValueError, "at least"), ("64", TypeError, "int")])
def test_bad_ram_pages(ram, exc, word):
    with pytest.raises(exc, match=word):
        vmlib.Kernel(ram_pages=ram)


def test_returned_errno_keeps_kernel_side_effects():
    """A -errno return is kernel behaviour, not an exception: vm_insert_pfn's -EBUSY leaves the
    existing pte; remap_pfn_range's -EINVAL on a COW vma happens before any flag is set."""
    w = world()
    v = w.p.find_vma(w.p.mmap(PAGE_SIZE, flags="shared", file=w.k.open(FlagsDriver(VM_PFNMAP | VM_IO))))
    assert w.k.vm_insert_pfn(v, v.vm_start, DEV) == 0
    assert w.k.vm_insert_pfn(v, v.vm_start, DEV + 1) == -16
    assert w.p.follow_pte(v.vm_start).pfn == DEV
    w.k.check()
