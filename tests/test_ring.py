"""A packet socket's receive ring: the live kernel's own VM_MIXEDMAP beside the 6.12 simulator.

Simulator facts follow net/packet/af_packet.c packet_mmap() and mm/memory.c vm_insert_page(),
vma_needs_copy() of v6.12. Live tests need Linux and root (CAP_NET_RAW for the socket,
CAP_SYS_ADMIN for pfns, /proc/kpagecount); under CI=1 a missing one is a failure, otherwise
they skip saying why.
"""

import copy
import errno
import os
import socket
import sys
from pathlib import Path

import pytest

import vmlib
from vmlib import PAGE_SIZE, VM_MIXEDMAP
from vmlib import scenarios as sc
from vmlib.drivers import IoUringRing, PacketRing
from vmlib.real import compare, label_frames, run_live, simulate, text_table, worker
from vmlib.real.runner import recorded_run, recorded_runs

ROOT = Path(__file__).resolve().parent.parent
RING = [s for s in sc.SCENARIOS if "ring" in s.tags]
PACKET = [s for s in RING if "io_uring" not in s.tags]
URING = [s for s in RING if "io_uring" in s.tags]


def _live_or_skip():
    why = None
    if not sys.platform.startswith("linux"):
        why = f"not Linux ({sys.platform})"
    elif os.geteuid() != 0 or not os.access("/proc/kpagecount", os.R_OK):
        why = "not root: the ring comparison needs CAP_NET_RAW, pfns and /proc/kpagecount"
    if why and os.environ.get("CI"):
        pytest.fail(f"CI runs as root on Linux, but {why}")
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def live_rings():
    _live_or_skip()
    return {s.name: run_live(s) for s in RING}


def ring(version="6.12", nblocks=4):
    k = vmlib.Kernel(version=version, arch="x86", ram_pages=64)
    drv = PacketRing(k, nblocks)
    p = k.spawn("app")
    return k, drv, p, k.open(drv, mode="rw")


# ------------------------------------------------------------------ the simulator's driver (6.12)

def test_packet_mmap_inserts_every_page_and_vm_insert_page_sets_mixedmap():
    """packet_mmap (v6.12) maps the whole ring at mmap time; vm_insert_page sets VM_MIXEDMAP."""
    k, drv, p, f = ring()
    a = p.mmap(4 * PAGE_SIZE, prot="rw", flags="shared", file=f)
    vma = p.find_vma(a)
    assert vma.vm_flags & VM_MIXEDMAP
    for i, page in enumerate(drv.pages):
        pte = p.follow_pte(a + i * PAGE_SIZE)
        assert pte.pfn == page.pfn and pte.write and not pte.special
        assert k.vm_normal_page(vma, a + i * PAGE_SIZE, pte) is page
        assert (k.page_count(page), k.page_mapcount(page)) == (2, 1)     # socket + mapping
    k.check()


@pytest.mark.parametrize("length, offset", [(3 * PAGE_SIZE, 0), (5 * PAGE_SIZE, 0), (4 * PAGE_SIZE, PAGE_SIZE)])
def test_packet_mmap_wants_pgoff_0_and_the_exact_size(length, offset):
    """packet_mmap (v6.12): vm_pgoff != 0 or a size other than the ring's -> -EINVAL, no vma."""
    k, drv, p, f = ring()
    before = k.snapshot()
    with pytest.raises(vmlib.KernelError) as e:
        p.mmap(length, prot="rw", flags="shared", file=f, offset=offset)
    assert e.value.errno == errno.EINVAL
    assert p.vmas == [] and all(k.page_count(pg) == 1 for pg in drv.pages)
    assert k.snapshot() == before


def test_fork_copies_the_mixedmap_ptes_and_a_shared_write_does_not_cow():
    """vma_needs_copy (v6.12) copies VM_MIXEDMAP vmas: the child maps the same pages at once."""
    k, drv, p, f = ring()
    a = p.mmap(4 * PAGE_SIZE, prot="rw", flags="shared", file=f)
    c = p.fork()
    assert [c.follow_pte(a + i * PAGE_SIZE).pfn for i in range(4)] == [pg.pfn for pg in drv.pages]
    assert all(k.page_mapcount(pg) == 2 for pg in drv.pages)
    c.write(a, b"c")
    assert p.read(a, 1) == b"c" and c.follow_pte(a).pfn == drv.pages[0].pfn
    c.exit()
    p.munmap(a, 4 * PAGE_SIZE)
    assert all((k.page_count(pg), k.page_mapcount(pg)) == (1, 0) for pg in drv.pages)  # socket's
    k.check()


def test_packet_ring_bad_size():
    k = vmlib.Kernel(version="6.12", arch="x86", ram_pages=64)
    with pytest.raises(ValueError, match="nblocks must be an int in 1..64"):
        PacketRing(k, 0)
    with pytest.raises(ValueError, match="npages must be an int in 1..64"):
        IoUringRing(k, 65)


def test_io_uring_mmap_sets_dontexpand_and_vm_insert_pages_sets_mixedmap():
    """io_uring_mmap (io_uring/memmap.c v6.12): VM_DONTEXPAND, then vm_insert_pages."""
    from vmlib.flags import smaps_flags
    k = vmlib.Kernel(version="6.12", arch="x86", ram_pages=64)
    drv = IoUringRing(k, 1)
    p = k.spawn("app")
    f = k.open(drv, mode="rw")
    with pytest.raises(vmlib.KernelError):
        p.mmap(PAGE_SIZE, prot="rw", flags="shared", file=f, offset=0x8000000)   # not modelled
    a = p.mmap(PAGE_SIZE, prot="rw", flags="shared", file=f)
    assert smaps_flags(p.find_vma(a).vm_flags) == "rd wr sh mr mw me ms de mm"
    c = p.fork()
    assert c.follow_pte(a).pfn == drv.pages[0].pfn and k.page_mapcount(drv.pages[0]) == 2
    k.check()


# ------------------------------------------------------------------ the scenario vocabulary

def test_ring_scenarios_exist_and_describe():
    assert len(PACKET) >= 5 and len(URING) >= 2
    assert sc.describe(sc.MmapRing("q", 1, kind="io_uring")) == ("parent: mmap q = io_uring SQ ring, "
                                                                "1 page(s), rw shared")
    assert sc.describe(sc.MmapRing("r")) == ("parent: mmap r = packet socket RX ring, 4 block(s) "
                                             "of 4 KiB, rw shared")
    assert sc.mappings(sc.get("ring_fork")) == {"r": 4}


@pytest.mark.parametrize("steps, words", [
    ([sc.MmapRing("r", npages=0)], "a ring has 1..64 blocks"),
    ([sc.MmapRing("r", npages=65)], "a ring has 1..64 blocks"),
    ([sc.MmapRing("r"), sc.Mmap("r")], "mapping 'r' already exists"),
    ([sc.MmapRing("r"), sc.Read("r", 4)], "outside 'r'"),
    ([sc.MmapRing("r", kind="perf")], "kind must be one of"),
    ([sc.MmapRing("q", npages=2, kind="io_uring")], "npages must be 1"),
])
def test_bad_ring_scenarios_are_rejected(steps, words):
    with pytest.raises(ValueError, match=words.replace(".", r"\.")):
        sc.Scenario("bad", "bad", steps)


@pytest.mark.parametrize("s", RING, ids=lambda s: s.name)
def test_ring_scenario_simulates_as_its_expectation_says(s):
    run = label_frames(simulate(s))
    assert run["error"] is None
    (first,) = run["steps"][0]["procs"]["parent"].values()
    flags = "rd wr sh mr mw me ms de mm" if s in URING else "rd wr sh mr mw me ms mm"   # 6.12 keeps me
    assert [p["vmflags"] for p in first] == [flags] * len(first)
    assert all(p["present"] and p["kpagecount"] == 1 for p in first)
    assert len({p["frame"] for p in first}) == len(first) == (1 if s in URING else 4)


# ------------------------------------------------------------------ the live kernel

@pytest.mark.parametrize("s", RING, ids=lambda s: s.name)
def test_live_ring_agrees_with_the_simulator(s, live_rings):
    blocked = live_rings[s.name].get("blocked")
    if blocked and os.environ.get("CI"):
        pytest.fail(f"CI runs as root on Linux, but {s.name} cannot run here: {blocked}")
    if blocked:
        pytest.skip(f"{s.name} cannot run on this machine: {blocked}")
    cmp = compare(live_rings[s.name], simulate(s))
    assert cmp["agree"], text_table(cmp)
    assert not cmp["unavailable"]                     # everything was compared, nothing n/a


def test_live_ring_is_a_mixed_map_of_ordinary_pages(live_rings):
    run = label_frames(live_rings["ring_fork"])
    after_mmap = run["steps"][0]["procs"]["parent"]["r"]
    assert all(p["present"] and {"sh", "mm"} <= set(p["vmflags"].split()) for p in after_mmap)
    assert all(p["kpagecount"] == 1 and p["exclusive"] and p["file_shared"] for p in after_mmap)
    assert all(p["flags"] and "MMAP" in p["flags"] and "ANON" not in p["flags"] for p in after_mmap)
    par, chi = (run["steps"][2]["procs"][w]["r"] for w in ("parent", "child"))
    assert [p["frame"] for p in par] == [p["frame"] for p in chi] == [p["frame"] for p in after_mmap]
    assert all(p["kpagecount"] == 2 and not p["exclusive"] for p in par + chi)


def test_live_ring_as_a_normal_user():
    """Without root: the socket in a user namespace (or blocked), pfns and kpagecount n/a."""
    _live_or_skip()
    run = run_live("ring_fork", as_user=65534)
    if run.get("blocked"):                            # unprivileged user namespaces are off
        assert "CAP_NET_RAW" in run["blocked"]
        return
    assert run["error"] is None and any("user and network namespace" in n for n in run["notes"])
    cmp = compare(run, simulate("ring_fork"))
    assert {"frame", "kpagecount", "MMAP"} <= set(cmp["unavailable"])
    assert cmp["agree"], text_table(cmp)              # presence, bits 56/61, VmFlags agree


def test_live_io_uring_ring_needs_no_privilege():
    """A normal user maps an io_uring SQ ring directly: presence, bits 56/61, VmFlags agree."""
    _live_or_skip()
    run = run_live("uring_fork_child_write", as_user=65534)
    assert run["error"] is None and not run.get("blocked")
    assert not any("namespace" in n for n in run["notes"])
    cmp = compare(run, simulate("uring_fork_child_write"))
    assert cmp["agree"], text_table(cmp)
    assert "frame" in cmp["unavailable"] and "vmflags" not in cmp["unavailable"]


def test_live_ring_without_cap_net_raw_is_blocked_not_compared():
    """socket(AF_PACKET) fails with EPERM for a normal user told not to use a user namespace."""
    _live_or_skip()
    run = run_live("ring_map", as_user=65534, userns=False)
    assert "EPERM" in run["blocked"] and "CAP_NET_RAW" in run["blocked"]
    cmp = compare(run, simulate("ring_map"))
    assert not cmp["agree"] and "not compared" in text_table(cmp)
    fallback = run_live("ring_map", as_user=65534, userns=False, fallback=True)
    assert fallback["world"] == "recorded" and "CAP_NET_RAW" in fallback["notes"][0]


def test_live_ring_with_a_proc_that_has_no_kpagecount(tmp_path):
    """A /proc whose kpagecount and kpageflags are missing: those columns are n/a, not wrong."""
    _live_or_skip()
    (tmp_path / "self").symlink_to("/proc/self")     # each reader sees its own pagemap and smaps
    run = run_live("ring_fork", proc=str(tmp_path))
    assert any("kpagecount missing" in n for n in run["notes"])
    cmp = compare(run, simulate("ring_fork"))
    assert {"kpagecount", "MMAP"} <= set(cmp["unavailable"]) and "frame" not in cmp["unavailable"]
    assert cmp["agree"], text_table(cmp)


# ------------------------------------------------------------------ no permission, in-process

def test_packet_socket_eperm_and_no_user_namespace(monkeypatch):
    """Both ways to a packet socket refused: NotPermitted naming CAP_NET_RAW, no traceback."""
    def refuse(*a, **kw):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    class NoUnshare:
        @staticmethod
        def unshare(flags):
            return -1

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(worker, "_libc", NoUnshare)
    with pytest.raises(worker.NotPermitted, match="needs CAP_NET_RAW"):
        worker.packet_socket()
    monkeypatch.setattr(worker, "ALLOW_USERNS", False)
    with pytest.raises(worker.NotPermitted, match="told not to try a user namespace"):
        worker.packet_socket()


# ------------------------------------------------------------------ recorded runs

@pytest.mark.parametrize("s", RING, ids=lambda s: s.name)
def test_recorded_ring_agrees_with_the_simulator(s):
    cmp = compare(recorded_run(s), simulate(s))
    assert cmp["agree"], text_table(cmp)
    assert cmp["label"].startswith("recorded on Linux 6.")


def test_off_linux_the_ring_is_the_recorded_run(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    run = run_live("ring_child_write")
    assert run["world"] == "recorded" and any("darwin, not Linux" in n for n in run["notes"])
    assert "recorded on Linux" in text_table(compare(run, simulate("ring_child_write")))


def test_a_kernel_whose_fork_skips_the_ring_shows_mismatches():
    """As if fork did not copy a VM_MIXEDMAP vma (2.6.26 without VM_INSERTPAGE would not)."""
    run = recorded_run("ring_fork")
    odd = copy.deepcopy(run)
    for p in odd["steps"][2]["procs"]["child"]["r"]:
        p.update(present=False, pfn=None, kpagecount=None, flags=None, exclusive=False,
                 file_shared=False)
    for p in odd["steps"][2]["procs"]["parent"]["r"]:
        p.update(kpagecount=1, exclusive=True)
    cmp = compare(odd, simulate("ring_fork"))
    assert not cmp["agree"]
    bad = {(m["proc"], m["observable"]) for m in cmp["mismatches"]}
    assert {("child", "present"), ("parent", "kpagecount"), ("parent", "exclusive")} <= bad


def test_a_kernel_without_mixedmap_on_the_ring_shows_a_vmflags_mismatch():
    run = recorded_run("ring_map")
    odd = copy.deepcopy(run)
    odd["steps"][0]["procs"]["parent"]["r"][0]["vmflags"] = "rd wr sh mr mw ms"
    (m,) = compare(odd, simulate("ring_map"))["mismatches"]
    assert (m["observable"], m["live"], m["sim"]) == ("vmflags", "rd wr sh mr mw ms", "rd wr sh mr mw ms mm")


def test_a_recording_without_vmflags_shows_them_as_not_visible():
    run = recorded_run("write_first")
    old = copy.deepcopy(run)
    for rec in old["steps"]:
        for maps in rec["procs"].values():
            for pages in maps.values():
                for p in pages:
                    p.pop("vmflags", None)
    cmp = compare(old, simulate("write_first"))
    assert cmp["agree"] and "vmflags" in cmp["unavailable"]


def test_the_recorded_run_covers_the_ring_scenarios():
    """The recording used off Linux holds every ring scenario (that the wheel ships the recordings
    is tests/test_deploy.py's wheel test)."""
    assert set(recorded_runs()["runs"]) >= {s.name for s in RING}


def test_a_non_root_view_of_the_recorded_ring_agrees_where_it_can_see():
    """What a /proc without root shows (pfn 0, no kpagecount/kpageflags): n/a, never a mismatch."""
    run = copy.deepcopy(recorded_run("ring_fork"))
    run["capabilities"].update(pfns=False, kpagecount=False, kpageflags=False)
    for rec in run["steps"]:
        for maps in rec["procs"].values():
            for p in maps["r"]:
                p.update(pfn=None, kpagecount=None, flags=None)
    cmp = compare(run, simulate("ring_fork"))
    assert cmp["agree"], text_table(cmp)
    assert {"frame", "kpagecount", "ANON", "MMAP", "ZERO_PAGE"} == set(cmp["unavailable"])
    assert "n/a|F1" in text_table(cmp) and "n/a|2" in text_table(cmp)
