"""The same observables from the simulator, and a live-versus-simulator comparison.

`simulate(scenario)` replays a Scenario on the 6.12 profile through the public API only
(DESIGN.md §3) and derives, per page, what /proc would show on that kernel (kernel-facts §13):
pagemap present / pfn / bit 56 (mapcount == 1) / bit 61 (not anon) from vm_normal_page, and
kpagecount / kpageflags from the struct page at that pfn, so a special pte (zero page, raw
pfn) shows bits 56 and 61 both 0 and kpagecount 0. `compare(live, sim)` lines the two runs
up page by page. Pfns differ between worlds, so frames are compared as labels (F1, F2, zero)
given in order of first appearance; a pfn that vanished for a step gets a new label when it
comes back (it was freed and reused).
"""

from __future__ import annotations

import copy
import itertools

from vmlib import scenarios as sc

PAGE_SIZE = 4096
OBSERVABLES = ("present", "frame", "exclusive", "file_shared", "kpagecount", "ANON", "MMAP", "ZERO_PAGE",
               "vmflags")
SIM_VERSION = "6.12"
# smaps VmFlags codes compared: the ones the simulator models. Left out: 'me' (VM_MAYEXEC
# depends on whether the file's filesystem is noexec, which differs between 6.12 and 6.18 for
# sockets, see VERSION_NOTES), 'ac' (VM_ACCOUNT), 'nh' and the other hints the model lacks.
COMPARED_VMFLAGS = ("rd", "wr", "ex", "sh", "mr", "mw", "ms", "pf", "io", "dc", "de", "mm")


# ---------------------------------------------------------------- the simulator side

def simulate(scenario: sc.Scenario | str, version: str = SIM_VERSION, ram_pages: int = 64) -> dict:
    """Replay `scenario` on vmlib.Kernel(version) and record the /proc observables per step."""
    scenario = sc.get(scenario) if isinstance(scenario, str) else scenario
    run = {"world": "simulator", "scenario": sc.to_dict(scenario), "env": {"kernel": version},
           "capabilities": {}, "notes": [], "steps": [], "error": None}
    try:
        import vmlib
        k = vmlib.Kernel(version=version, arch="x86", ram_pages=ram_pages)
    except (ImportError, AttributeError, TypeError) as e:
        run["error"] = (f"the simulator core is not available ({type(e).__name__}: {e}); "
                        "vmlib.Kernel(version=..., arch=..., ram_pages=...) is needed")
        return run
    procs = {"parent": k.spawn()}
    addrs: dict[str, int] = {}
    sizes: dict[str, int] = {}
    known: dict[str, list] = {"parent": []}     # process -> the mappings it has (as live)
    for i, step in enumerate(scenario.steps):
        rec = {"index": i, "step": sc.step_to_dict(step), "text": sc.describe(step),
               "result": {}, "error": None}
        run["steps"].append(rec)
        try:
            rec["result"] = _sim_step(k, procs, addrs, sizes, step)
            _track_names(known, step)
        except Exception as e:  # noqa: BLE001 - a kernel error is an observable, not a crash
            rec["error"] = f"{type(e).__name__}: {e}"
        rec["procs"] = {name: {m: [sim_page(k, p, addrs[m] + j * PAGE_SIZE) for j in range(sizes[m])]
                               for m in known[name]} for name, p in procs.items()}
        if rec["error"]:
            break
    return run


def _track_names(known: dict, step) -> None:
    """Keep `known` (process -> mapping names) in step with Mmap and Fork."""
    if isinstance(step, (sc.Mmap, sc.MmapRing)):
        known[step.who].append(step.name)
    elif isinstance(step, sc.Fork):
        known[step.child] = list(known[step.who])


def _sim_step(k, procs: dict, addrs: dict, sizes: dict, step) -> dict:
    """Perform one step on the simulator; returns the step result like the live worker."""
    p = procs.get(step.who)
    if isinstance(step, sc.Mmap):
        addrs[step.name] = p.mmap(step.npages * PAGE_SIZE, prot=step.prot, flags=step.flags)
        sizes[step.name] = step.npages
        return {}
    if isinstance(step, sc.MmapRing):
        from vmlib.drivers import IoUringRing, PacketRing
        driver = IoUringRing if step.kind == "io_uring" else PacketRing
        ring = k.open(driver(k, step.npages), mode="rw")
        addrs[step.name] = p.mmap(step.npages * PAGE_SIZE, prot="rw", flags="shared", file=ring)
        sizes[step.name] = step.npages
        return {}
    if isinstance(step, sc.Read):
        return {"data": bytes(p.read(addrs[step.name] + step.page * PAGE_SIZE, 1)).hex()}
    if isinstance(step, sc.Write):
        p.write(addrs[step.name] + step.page * PAGE_SIZE, step.data)
        return {}
    if isinstance(step, sc.Fork):
        procs[step.child] = p.fork()
        return {}
    if isinstance(step, sc.Munmap):
        n = sizes[step.name] - step.page if step.npages is None else step.npages
        p.munmap(addrs[step.name] + step.page * PAGE_SIZE, n * PAGE_SIZE)
        return {}
    if isinstance(step, sc.Exit):
        p.exit()
        del procs[step.who]
        return {}
    if isinstance(step, sc.LookSpecial):
        return {"not_applicable": "the simulator has no [vvar]/[vdso]: nothing to look at"}
    raise TypeError(f"simulate: unknown step {step!r}")


def sim_page(k, p, addr: int) -> dict:
    """What pagemap, kpagecount and kpageflags of a 6.12 kernel show for `addr` in process p."""
    vma = p.find_vma(addr)
    if vma is None or not vma.vm_start <= addr < vma.vm_end:
        return {"present": False, "mapped": False, "vmflags": None}
    vmflags = _vmflags(vma.vm_flags)
    pte = p.follow_pte(addr)
    if pte is None or not pte.present:
        return {"present": False, "pfn": None, "exclusive": False, "file_shared": False,
                "kpagecount": None, "flags": None, "vmflags": vmflags}
    page = k.vm_normal_page(vma, addr, pte)
    obs = {"present": True, "pfn": pte.pfn, "exclusive": False, "file_shared": False,
           "vmflags": vmflags}
    if page is not None:                        # bits 56 and 61 come from vm_normal_page
        obs["exclusive"] = k.page_mapcount(page) == 1
        obs["file_shared"] = not _is_anon(page)
    obs["kpagecount"], obs["flags"] = _kpage(k, pte.pfn)
    return obs


def _vmflags(vm_flags: int) -> str:
    """The smaps VmFlags codes of a vma on the simulator, e.g. 'rd wr sh mr mw me ms mm'."""
    from vmlib.flags import smaps_flags
    return smaps_flags(vm_flags)


def _is_anon(page) -> bool:
    """page.anon (a promised extra of the core); AttributeError names what is missing."""
    try:
        return bool(page.anon)
    except AttributeError:
        raise AttributeError("simulator Page has no .anon: needed to derive pagemap bit 61 "
                             "and KPF_ANON") from None


def _kpage(k, pfn: int) -> tuple:
    """(kpagecount, kpageflags names) of the struct page at pfn; (None, None) without one."""
    if not k.pfn_valid(pfn):
        return None, None
    page = k.pfn_to_page(pfn)
    mapcount = k.page_mapcount(page)
    flags = []
    if mapcount > 0:
        flags.append("MMAP")
    if _is_anon(page):
        flags.append("ANON")
    if pfn == getattr(k, "zero_pfn", None):
        flags.append("ZERO_PAGE")
    return max(mapcount, 0), flags


# ---------------------------------------------------------------- frames as labels

def label_frames(run: dict) -> dict:
    """A copy of `run` where every present page with a pfn has a 'frame' label (F1.., 'zero')."""
    run = copy.deepcopy(run)
    numbers = itertools.count(1)
    previous: dict[int, str] = {}
    for rec in run.get("steps", []):
        seen: dict[int, str] = {}
        for pages in _all_pages(rec):
            for obs in pages:
                obs["frame"] = _label(obs, previous, seen, numbers)
        previous = seen
    return run


def _label(obs: dict, previous: dict, seen: dict, numbers) -> str | None:
    """The label of obs's frame: kept from the previous step, else the next F<n>."""
    pfn = obs.get("pfn")
    if not obs.get("present") or pfn is None:
        return None
    if "ZERO_PAGE" in (obs.get("flags") or []):
        return "zero"
    if pfn not in seen:
        seen[pfn] = previous.get(pfn) or f"F{next(numbers)}"
    return seen[pfn]


def _all_pages(rec: dict):
    """Every page list of a step record, per process and mapping in a fixed order."""
    for maps in rec.get("procs", {}).values():
        if isinstance(maps, dict):
            for pages in maps.values():
                if isinstance(pages, list):
                    yield pages


# ---------------------------------------------------------------- live versus simulator

VERSION_NOTES = [
    ("kpagecount: 6.12 reports the precise mapcount of the page; 6.18 does too with "
    "CONFIG_PAGE_MAPCOUNT=y, but with CONFIG_NO_PAGE_MAPCOUNT it reports the folio's average "
    "per-page mapcount (identical for the small pages used here)."),
    ("copy on write: 6.18 may reuse a large anonymous folio (__wp_can_reuse_large_anon_folio), "
    "6.12 always copies it; the runner maps with MADV_NOHUGEPAGE so every folio here is small."),
    "pagemap bit 58 (guard regions, 6.15+) does not exist in 6.12; no scenario uses guard regions.",
    ("VmFlags 'me' is not compared: 6.18 treats sockets and anonymous inodes (io_uring) as files "
     "on a noexec filesystem (mmap of a packet socket with PROT_EXEC fails with EPERM there), so "
     "do_mmap clears VM_MAYEXEC; 6.12's sockfs and anon_inodefs are not noexec (fs/libfs.c "
     "init_pseudo sets no SB_I_NOEXEC), so the same rings keep 'me' on 6.12."),
]
FIXED_NOTES = [
    ("refcounts are not compared: a fresh page can hold an extra reference from a per-CPU LRU "
    "batch until it drains. The live runner pins its processes to one CPU so a COW reuse "
    "check drains the batch that holds it."),
    ("pagemap never walks a VM_PFNMAP vma (the page walker skips them), so [vvar] reads as "
    "not present even while its ptes exist."),
]


def get_value(obs: dict | None, name: str):
    """One observable of a page observation; None if the world could not see it."""
    if obs is None:
        return None
    if name in ("ANON", "MMAP", "ZERO_PAGE"):
        flags = obs.get("flags")
        return None if flags is None else name in flags
    if name == "vmflags":                   # only the codes both worlds model (COMPARED_VMFLAGS)
        codes = obs.get("vmflags")
        return None if codes is None else " ".join(c for c in codes.split() if c in COMPARED_VMFLAGS)
    return obs.get(name)


def compare(live: dict, sim: dict) -> dict:
    """Line up two labelled runs of one scenario; rows, mismatches and notes (never raises)."""
    live, sim = label_frames(live), label_frames(sim)
    out = {"scenario": live.get("scenario") or sim.get("scenario"), "live_world": live.get("world"),
           "label": live.get("label"), "rows": [], "steps": [], "mismatches": [],
           "notes": _notes(live, sim), "unavailable": _unavailable(live)}
    lsteps, ssteps = live.get("steps", []), sim.get("steps", [])
    out["blocked"] = live.get("blocked")
    out["one_sided"] = not lsteps or not ssteps or bool(out["blocked"])   # one world did not run
    if out["one_sided"]:
        world = "simulator" if lsteps and not out["blocked"] else "live"
        err = out["blocked"] or (sim if world == "simulator" else live).get("error") or "no steps recorded"
        _mismatch(out, 0, None, None, None, "run", None, None,
                  f"the {world} world did not run, so nothing could be compared: {err}")
    for i in range(max(len(lsteps), len(ssteps))):
        lrec = lsteps[i] if i < len(lsteps) else {}
        srec = ssteps[i] if i < len(ssteps) else {}
        out["steps"].append(_compare_step(i, lrec, srec, out))
        for pname, mname, j, lo, so in _page_pairs(lrec, srec):
            out["rows"].append(_compare_page(i, pname, mname, j, lo, so, live, out))
    out["agree"] = not out["mismatches"] and not live.get("error") and not sim.get("error")
    return out


def _notes(live: dict, sim: dict) -> list[str]:
    notes = list(live.get("notes", []))
    for world, run in (("live", live), ("simulator", sim)):
        if run.get("error"):
            notes.append(f"{world} run failed: {run['error']}")
    kernel = (live.get("env") or {}).get("kernel", "")
    if kernel and not kernel.startswith(SIM_VERSION + "."):
        notes.append(f"the live kernel is {kernel}, the simulator models {SIM_VERSION}; where the "
                     "two could differ for these observables:")
        notes += ["  - " + n for n in VERSION_NOTES]
        cfg = (live.get("env") or {}).get("config", {})
        if cfg.get("CONFIG_PAGE_MAPCOUNT") == "y":
            notes.append("  - this kernel has CONFIG_PAGE_MAPCOUNT=y: kpagecount is precise, as in 6.12.")
    notes += FIXED_NOTES
    return notes


def _unavailable(live: dict) -> dict:
    """Observable -> why the live world could not show it (from its capabilities)."""
    caps = live.get("capabilities") or {}
    why = {}
    if caps and not caps.get("pfns", True):
        why["frame"] = "pfns hidden (not root): same frame or not cannot be told"
    if caps and not caps.get("kpagecount", True):
        why["kpagecount"] = "/proc/kpagecount unreadable or missing"
    if caps and not caps.get("kpageflags", True):
        for f in ("ANON", "MMAP", "ZERO_PAGE"):
            why[f] = "/proc/kpageflags unreadable or missing"
    if caps and not caps.get("smaps", True):
        why["vmflags"] = "/proc/self/smaps unreadable or missing"
    elif live.get("steps") and not _has_vmflags(live):
        why["vmflags"] = "this run did not record VmFlags (recorded before they were observed)"
    return why


def _has_vmflags(run: dict) -> bool:
    """True if any page observation of the run carries a 'vmflags' key."""
    return any("vmflags" in obs for rec in run.get("steps", []) for pages in _all_pages(rec)
               for obs in pages)


def _compare_step(i: int, lrec: dict, srec: dict, out: dict) -> dict:
    """Compare what a step returned (bytes read, errors, processes alive)."""
    text = lrec.get("text") or srec.get("text") or f"step {i}"
    lres, sres = lrec.get("result") or {}, srec.get("result") or {}
    row = {"index": i, "text": text, "live": lres, "sim": sres,
           "live_error": lrec.get("error"), "sim_error": srec.get("error")}
    if (not lrec or not srec) and not out["one_sided"]:
        _mismatch(out, i, None, None, None, "step", "ran" if lrec else "missing",
                  "ran" if srec else "missing", "one world stopped before this step")
    if out["one_sided"]:
        return row
    if ("data" in lres or "data" in sres) and lres.get("data") != sres.get("data"):
        _mismatch(out, i, None, None, None, "read data", lres.get("data"), sres.get("data"), None)
    if bool(lrec.get("error")) != bool(srec.get("error")) and lrec and srec:
        _mismatch(out, i, None, None, None, "error", lrec.get("error"), srec.get("error"), None)
    return row


def _page_pairs(lrec: dict, srec: dict):
    """(process, mapping, page, live obs, sim obs) for every page either world shows."""
    lp, sp = lrec.get("procs") or {}, srec.get("procs") or {}
    for pname in list(dict.fromkeys([*lp, *sp])):
        lmaps, smaps = lp.get(pname) or {}, sp.get(pname) or {}
        for mname in list(dict.fromkeys([*lmaps, *smaps])):
            lpages = lmaps.get(mname) if isinstance(lmaps.get(mname), list) else []
            spages = smaps.get(mname) if isinstance(smaps.get(mname), list) else []
            for j in range(max(len(lpages), len(spages))):
                yield (pname, mname, j, lpages[j] if j < len(lpages) else None,
                       spages[j] if j < len(spages) else None)


def _compare_page(i, pname, mname, j, lo, so, live, out) -> dict:
    """One table row: each observable as (live, sim, status)."""
    row = {"step": i, "proc": pname, "map": mname, "page": j, "cells": {}}
    for name in OBSERVABLES:
        lv, sv = get_value(lo, name), get_value(so, name)
        if out["one_sided"]:
            status = "missing"
        elif lo is None or so is None:
            status = "mismatch"
        elif name in out["unavailable"] and lv is None:
            status = "n/a"
        elif name == "vmflags":
            status = "same" if lv == sv else "mismatch"     # a vma exists with or without ptes
        elif not get_value(lo, "present") and not get_value(so, "present") and name != "present":
            status = "same"             # nothing to see on either side
        else:
            status = "same" if lv == sv else "mismatch"
        row["cells"][name] = (lv, sv, status)
        if status == "mismatch":
            _mismatch(out, i, pname, mname, j, name, lv, sv, explain(name, lo, so, live))
    return row


def _mismatch(out, i, pname, mname, j, name, lv, sv, why) -> None:
    out["mismatches"].append({"step": i, "proc": pname, "map": mname, "page": j, "observable": name,
                              "live": lv, "sim": sv,
                              "explanation": why or "not explained: the live kernel and the "
                              f"{SIM_VERSION} profile disagree here; see kernel-facts §6-§8 and §13"})


def explain(name: str, lo: dict | None, so: dict | None, live: dict) -> str | None:
    """A known reason why the live kernel shows something else than the 6.12 model, if any."""
    if lo is None or so is None:
        return "the process or mapping exists in one world only"
    flags = lo.get("flags") or []
    if {"THP", "COMPOUND_HEAD", "COMPOUND_TAIL"} & set(flags):
        return ("the live kernel backed this page with a large folio (THP/mTHP); the simulator "
                "maps only small pages, so counts and COW differ")
    cfg = (live.get("env") or {}).get("config", {})
    if name in ("kpagecount", "exclusive") and cfg.get("CONFIG_NO_PAGE_MAPCOUNT") == "y":
        return ("this kernel has no per-page mapcount (CONFIG_NO_PAGE_MAPCOUNT): kpagecount and "
                "bit 56 come from folio-level estimates")
    if name == "frame" and lo.get("present") and so.get("present"):
        return ("a different frame means one world copied where the other reused: on the live "
                "kernel an extra reference (LRU batch on another CPU, a pin, the swap cache) makes "
                "the COW reuse check fail")
    return None
