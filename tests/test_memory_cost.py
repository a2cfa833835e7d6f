"""Untouched memory is free: 1 TiB of device memory mapped through DevMem and XipFs, with 10
pages touched, costs under 5 MB of Python allocations (tracemalloc)."""

import tracemalloc

import pytest
from helpers_drivers import PROFILE_IDS

import vmlib
from vmlib import PAGE_SIZE
from vmlib.drivers import DevMem, XipFs

TIB_PAGES = 1 << 28                    # 1 TiB of 4 KiB pages
RAM_PAGES = (1 << 19) + (1 << 12)      # room for the 2^19 pte pages a 1 TiB remap needs, + spare
LIMIT = 5 * 1024 * 1024


def _measure(fn) -> int:
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("profile", PROFILE_IDS)
def test_devmem_1tib_ten_pages_under_5mb(profile):
    """/dev/mem over 1 TiB of nvram (a linear remap_pfn_range run), 10 pages touched."""
    version, arch = profile.split("/")
    state = {}

    def run():
        k = vmlib.Kernel(version=version, arch=arch, ram_pages=RAM_PAGES, trace=False)
        dev = k.add_device_memory(RAM_PAGES, TIB_PAGES, "nvram")
        dev.write(5 * PAGE_SIZE, b"deep")
        p = k.spawn()
        a = p.mmap(TIB_PAGES * PAGE_SIZE, flags="shared", file=k.open(DevMem()),
                   offset=RAM_PAGES * PAGE_SIZE)
        step = TIB_PAGES // 10
        for i in range(10):
            p.write(a + i * step * PAGE_SIZE + 16, b"touched")
        state.update(k=k, p=p, a=a, dev=dev, step=step)

    peak = _measure(run)
    k, p, a, dev, step = (state[x] for x in ("k", "p", "a", "dev", "step"))
    print(f"{profile}: peak {peak / 2**20:.2f} MiB")
    assert peak < LIMIT, f"{peak / 2**20:.1f} MiB"
    assert p.read(a + 5 * PAGE_SIZE, 4) == b"deep"
    assert dev.read(9 * step * PAGE_SIZE + 16, 7) == b"touched"
    k.check()


@pytest.mark.parametrize("profile", [p for p in PROFILE_IDS if p != "2.6.25/x86"])
def test_xipfs_1tib_ten_pages_under_5mb(profile):
    """An XipFs file of 1 TiB (a hole) on 1 TiB of nvram, mapped shared, 10 pages touched
    (not on 2.6.25, which cannot map XIP on memory without struct pages)."""
    version, arch = profile.split("/")
    state = {}

    def run():
        k = vmlib.Kernel(version=version, arch=arch, ram_pages=RAM_PAGES, trace=False)
        dev = k.add_device_memory(RAM_PAGES, TIB_PAGES, "nvram")
        xip = XipFs(k, backing=dev)
        f = xip.create("big", b"head", size=TIB_PAGES * PAGE_SIZE)
        p = k.spawn()
        a = p.mmap(TIB_PAGES * PAGE_SIZE, flags="shared", file=f)
        step = TIB_PAGES // 10
        for i in range(10):
            p.write(a + i * step * PAGE_SIZE + 16, b"touched")
        state.update(k=k, p=p, a=a, xip=xip, f=f, step=step)

    peak = _measure(run)
    k, p, a, xip, f, step = (state[x] for x in ("k", "p", "a", "xip", "f", "step"))
    print(f"{profile}: peak {peak / 2**20:.2f} MiB")
    assert peak < LIMIT, f"{peak / 2**20:.1f} MiB"
    assert p.read(a, 4) == b"head"
    assert xip.read(f, 9 * step * PAGE_SIZE + 16, 7) == b"touched"
    k.check()
