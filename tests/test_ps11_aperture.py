"""ps11 aperture: the device with an MMIO aperture and RAM shadow pages, its reference driver, its grading.

The nbgrader round trip of ps11 (solution full, release 0, plants strictly between) is in
tests/test_grading.py (test_round_trip_scores[ps11_aperture], plants.ps11_plants).
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest

from vmlib import Kernel
from vmlib.drivers.aperture import SHADOW_PGOFF, Aperture, ApertureDriver, aperture_bytes, shadow_bytes
from vmlib.errors import KernelError
from vmlib.flags import PAGE_SIZE, VM_MIXEDMAP, VM_PFNMAP
from vmlib.grading import ps11

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
import plants

BASE = 0x40000000


def _device(version: str, arch: str = "x86", npages: int = 4, shadowed=(1,)):
    k = Kernel(version, arch, ram_pages=64)
    ap = Aperture.attach(k, npages, shadowed)
    return k, ap, k.open(ApertureDriver(ap), "rw")


def test_the_aperture_has_no_struct_pages_and_the_shadows_do():
    k, ap, _ = _device("2.6.26", npages=4, shadowed=(1, 3))
    assert not any(k.pfn_valid(ap.aperture_pfn(i)) for i in range(4))
    assert ap.shadow_pfn(0) is None and k.page_count(k.pfn_to_page(ap.shadow_pfn(1))) == 1
    assert k.phys.read_frame(ap.shadow_pfn(3), 0, 2) == shadow_bytes(3)[:2]
    k.check()


def test_bad_devices_are_refused_and_change_nothing():
    k = Kernel("2.6.26", "x86", ram_pages=32)
    before = k.nr_free_pages(), list(k.phys.devices)
    for npages, shadowed in ((0, ()), (4, (4,)), (4, ("1",))):
        with pytest.raises(ValueError, match="Aperture.attach"):
            Aperture.attach(k, npages, shadowed)
    assert (k.nr_free_pages(), list(k.phys.devices)) == before
    with pytest.raises(ValueError, match="Aperture: data is"):
        Aperture({"base_pfn": 1, "npages": 2, "shadow": {"5": 3}})


@pytest.mark.parametrize("version,arch", [("2.6.26", "x86"), ("2.6.27", "x86"), ("6.12", "x86"), ("6.12", "m68k")])
def test_direct_private_mapping_is_a_linear_pfnmap_and_cows(version, arch):
    """mm/memory.c:remap_pfn_range @ v2.6.26 and v6.12 (§4): a COW mapping's whole-vma remap sets
    vm_pgoff to the first pfn; vm_normal_page's linear rule (§1a row 3) keeps the aperture raw, and a
    write COWs into an anonymous page (do_wp_page, §6b) that the aperture never sees."""
    k, ap, f = _device(version, arch)
    p = k.spawn()
    p.mmap(3 * PAGE_SIZE, "rw", "private", file=f, offset=PAGE_SIZE, addr=BASE)
    vma = p.find_vma(BASE)
    assert vma.vm_flags & VM_PFNMAP and vma.vm_pgoff == ap.aperture_pfn(1)
    assert p.read(BASE, 2) == aperture_bytes(1)[:2]
    p.write(BASE, b"x")
    assert p.follow_pte(BASE).pfn != ap.aperture_pfn(1) and k.phys.read_frame(ap.aperture_pfn(1), 0, 1) == b"A"
    with pytest.raises(KernelError) as e:
        p.get_user_pages(BASE + PAGE_SIZE, 1)
    assert e.value.errno == errno.EFAULT, "get_user_pages refuses VM_IO|VM_PFNMAP (§9b)"
    p.exit()
    k.check()


@pytest.mark.parametrize("version,arch", [("2.6.26", "x86"), ("2.6.27", "x86"), ("6.12", "x86")])
def test_shadow_mode_mixes_shadow_pages_and_aperture_pfns(version, arch):
    """mm/memory.c:vm_insert_mixed @ v2.6.26 (§5a row 3) and vmf_insert_mixed @ v6.12 (§5b row 2): a
    RAM shadow is refcounted where the arch has no pte_special, special where it has; the aperture pfn
    is raw either way."""
    k, ap, f = _device(version, arch, shadowed=(1,))
    p = k.spawn()
    p.mmap(2 * PAGE_SIZE, "rw", "private", file=f, offset=SHADOW_PGOFF * PAGE_SIZE, addr=BASE)
    assert p.find_vma(BASE).vm_flags & VM_MIXEDMAP
    assert p.read(BASE, 2) == aperture_bytes(0)[:2] and p.read(BASE + PAGE_SIZE, 2) == shadow_bytes(1)[:2]
    shadow = k.pfn_to_page(ap.shadow_pfn(1))
    counted = not k.profile.HAVE_PTE_SPECIAL
    assert k.page_count(shadow) == (2 if counted else 1)
    assert p.follow_pte(BASE + PAGE_SIZE).special == (not counted)
    p.exit()
    assert k.page_count(shadow) == 1
    k.check()


@pytest.mark.parametrize("offset,pages", [(2, 3), (SHADOW_PGOFF + 3, 2)])
def test_a_mapping_past_the_end_of_a_mode_is_refused_and_leaves_nothing(offset, pages):
    k, _, f = _device("2.6.26", npages=4)
    p = k.spawn()
    before = k.snapshot()
    with pytest.raises(KernelError) as e:
        p.mmap(pages * PAGE_SIZE, "rw", "shared", file=f, offset=offset * PAGE_SIZE, addr=BASE)
    assert e.value.errno == errno.EINVAL and p.find_vma(BASE) is None and k.snapshot() == before


def test_hidden_devices_are_drawn_per_student():
    def names(student):
        return [sc.name for sc in ps11.shadow_scenarios({"cases": "hidden", "seed": 1, "student": student})]
    assert names("alice") == names("alice") != names("bob")
    assert "student" in ps11.SUITES["ps11.shadow"].params


@pytest.mark.parametrize("plant", [p.student for p in plants.ps11_plants() if p.student[:2] in ("w_", "a_")
                                   and p.student != "a_release"])
def test_each_plant_loses_what_it_says(plant):
    """Wrong drivers fail the parts they claim and pass the others; a MIXEDMAP direct mode is right too."""
    p = next(x for x in plants.ps11_plants() if x.student == plant)
    got = plants.part_verdicts("ps11_aperture", "ApertureDriver", ["ps11.direct", "ps11.shadow"], "aperture_driver", p)
    assert {t for t, ok in got.items() if not ok} == p.loses, p.why
