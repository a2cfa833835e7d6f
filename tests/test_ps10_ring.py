"""ps10 ring: the packet socket's rings, the reference packet_mmap, and how a student's mmap is graded.

The nbgrader round trip of ps10 (solution full, release 0, plants strictly between) is in
tests/test_grading.py (test_round_trip_scores[ps10_ring], plants.ps10_plants).
"""

from __future__ import annotations

import errno
import inspect
import sys
from pathlib import Path

import pytest

from vmlib import Kernel
from vmlib.drivers.nvram import pattern
from vmlib.drivers.ring import PacketRing, RingMmap
from vmlib.errors import KernelError
from vmlib.flags import PAGE_SIZE, VM_INSERTPAGE, VM_MIXEDMAP, VM_PFNMAP
from vmlib.grading import ps10
from vmlib.grading.runner import run_clean

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
import plants

BASE = 0x40000000


def _socket(version: str, arch: str = "x86", rx=(2, 2), tx=(0, 0)):
    k = Kernel(version, arch, ram_pages=64)
    ring = PacketRing.setup(k, rx, tx, order=list(range(rx[0] + tx[0]))[::-1])
    return k, ring, k.open(RingMmap(ring), "rw")


def test_rings_hold_their_pages_in_mapping_order_and_the_socket_holds_one_reference():
    k, ring, _ = _socket("6.12", rx=(2, 2), tx=(1, 2))
    pfns = [p for b in ring.rx + ring.tx for p in b]
    assert ring.npages == 6 and pfns != sorted(pfns), "blocks allocated in another order than they map"
    for i, pfn in enumerate(pfns):
        assert k.phys.read_frame(pfn, 0, 2) == pattern(i)[:2]
        assert k.page_count(k.pfn_to_page(pfn)) == 1
    k.check()


def test_bad_ring_shapes_are_refused_and_allocate_nothing():
    k = Kernel("2.6.26", "x86", ram_pages=32)
    free = k.nr_free_pages()
    for rx, tx, order in (((-1, 1), (0, 0), None), (("2", 1), (0, 0), None), ((2, 1), (0, 0), [0, 0])):
        with pytest.raises(ValueError, match="PacketRing.setup"):
            PacketRing.setup(k, rx, tx, order)
    assert k.nr_free_pages() == free
    with pytest.raises(ValueError, match="a list of blocks"):
        PacketRing({"rx": [[]], "tx": []})


@pytest.mark.parametrize("version,arch", [("2.6.26", "x86"), ("2.6.27", "x86"), ("2.6.27", "powerpc"),
                                          ("6.12", "x86"), ("6.12", "m68k")])
def test_packet_mmap_maps_every_page_refcounted_and_pinnable(version, arch):
    """net/packet/af_packet.c:packet_mmap @ v2.6.26 and v6.12 (kernel-facts §14d rows 1, 4) with
    mm/memory.c:vm_insert_page (§5a, §5b): normal ptes, one reference and one mapcount per page."""
    k, ring, f = _socket(version, arch)
    p = k.spawn()
    p.mmap(4 * PAGE_SIZE, "rw", "shared", file=f, offset=0, addr=BASE)
    vma = p.find_vma(BASE)
    assert vma.vm_flags & (VM_MIXEDMAP if version == "6.12" else VM_INSERTPAGE) and not vma.vm_flags & VM_PFNMAP
    pfns = [pn for b in ring.rx for pn in b]
    for i, pfn in enumerate(pfns):
        pte = p.follow_pte(BASE + i * PAGE_SIZE)
        assert pte.pfn == pfn and not pte.special
        page = k.pfn_to_page(pfn)
        assert (k.page_count(page), k.page_mapcount(page)) == (2, 1)
    [page] = p.get_user_pages(BASE + PAGE_SIZE, 1)
    assert page.pfn == pfns[1]
    k.put_page(page)
    child = p.fork()
    assert child.follow_pte(BASE).pfn == pfns[0], "fork copies the ptes of a vm_insert_page vma (§7)"
    child.exit()
    p.exit()
    assert all(k.page_count(k.pfn_to_page(pfn)) == 1 for pfn in pfns), "only the socket's references left"
    k.check()


@pytest.mark.parametrize("version", ["2.6.26", "6.12"])
def test_packet_mmap_refuses_another_size_or_offset_and_leaves_nothing(version):
    """net/packet/af_packet.c:packet_mmap @ v2.6.26 and v6.12 (§14d row 4): -EINVAL, no vma, no pte."""
    k, _, f = _socket(version)
    p = k.spawn()
    before = k.snapshot()
    for pages, offset in ((3, 0), (5, 0), (4, PAGE_SIZE)):
        with pytest.raises(KernelError) as e:
            p.mmap(pages * PAGE_SIZE, "rw", "shared", file=f, offset=offset, addr=BASE)
        assert e.value.errno == errno.EINVAL
        assert p.find_vma(BASE) is None
    assert k.snapshot() == before
    k.check()


# ---- grading -------------------------------------------------------------------------------------

SOLUTION = inspect.getsource(RingMmap).replace("class RingMmap", "class PacketMmap")
HEADER = "import errno\nfrom vmlib import Driver\nfrom vmlib.flags import PAGE_SIZE, VM_MIXEDMAP\n"


def _grade(suite: str, cell: str, **params) -> dict:
    [v] = run_clean([{"suite": suite, "params": params, "cells": [HEADER + cell],
                      "bind": {"PacketMmap": {"name": "PacketMmap"}}}], trusted=True, in_process=True)
    return v


@pytest.mark.parametrize("suite", ["ps10.refuse", "ps10.rx", "ps10.rxtx"])
def test_reference_passes_visible_and_hidden(suite):
    assert _grade(suite, SOLUTION)["passed"]
    assert _grade(suite, SOLUTION, cases="hidden", seed=3, student="alice")["passed"]


def test_get_user_pages_must_agree_unlike_ps8():
    """A remap_pfn_range driver maps the bytes right but leaves raw ptes: gup fails where it must pin."""
    cell = SOLUTION.replace("k.vm_insert_page(vma, addr, k.pfn_to_page(pfn))",
                            "k.remap_pfn_range(vma, addr, pfn, PAGE_SIZE)")
    v = _grade("ps10.rx", cell)
    assert not v["passed"]
    assert "get_user_pages" in v["first"] and "-EFAULT" in v["first"] and "returned 1 page(s)" in v["first"]


def test_hidden_sockets_are_drawn_per_student_and_stable():
    def shapes(student):
        return [sc.name for sc in ps10.rx_scenarios({"cases": "hidden", "seed": 9, "student": student})]
    assert shapes("alice") == shapes("alice")
    assert shapes("alice") != shapes("bob")
    visible = [s.name for s in ps10.rx_scenarios({})]
    assert visible == [s.name for s in ps10.rx_scenarios({"student": "bob"})], "visible scenarios are everyone's"


def test_the_grader_passes_the_student_id_whatever_the_notebook_says():
    assert "student" in ps10.SUITES["ps10.rx"].params


@pytest.mark.parametrize("plant", [p.student for p in plants.ps10_plants() if p.student.startswith("w_")])
def test_each_plant_loses_what_it_says(plant):
    """Each wrong driver fails the parts it claims and passes the others, visible and hidden."""
    p = next(x for x in plants.ps10_plants() if x.student == plant)
    got = plants.part_verdicts("ps10_ring", "PacketMmap", ["ps10.refuse", "ps10.rx", "ps10.rxtx"], "ring_driver", p)
    assert {t for t, ok in got.items() if not ok} == p.loses, p.why


def test_the_ring_suite_declares_its_eager_reference():
    """RingMmap maps every ring page at mmap time, as net/packet/af_packet.c:packet_mmap @ v6.12 does
    (§14d row 1), and has no fault(): ps10's own asker answers a fault question for it with
    VM_FAULT_SIGBUS and no calls; ps8's shared Drivers has no such case."""
    from vmlib.flags import VM_FAULT_SIGBUS
    from vmlib.grading import sim
    from vmlib.grading.ps8 import Drivers
    assert not callable(getattr(RingMmap, "fault", None))
    got, _ = ps10.RING.reference(None, "PacketMmap", ("fault", None, None, None))
    assert got["ret"] == VM_FAULT_SIGBUS and got["actions"] == [] and sim.driver_answer_ok(got)
    assert "fault" not in inspect.getsource(Drivers.reference)
