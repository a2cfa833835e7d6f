"""Read-only probes of the live Linux kernel: pagemap, kpagecount, kpageflags, smaps.

Follows the /proc interfaces as kernel-facts §13 describes them for 6.12 (later kernels were not read). Every
file is opened read-only; nothing is ever written to /proc. The /proc root is injectable
(`Probe(proc="/tmp/fakeproc")`) so tests can replay what a non-root user, a kernel without
kpagecount or a kernel that reports differently would show.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from dataclasses import dataclass, field

PAGE_SIZE = 4096

# /proc/PID/pagemap bits (kernel-facts §13a)
PM_PFN_MASK = (1 << 55) - 1
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_UFFD_WP = 1 << 57
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63

# /proc/kpageflags bit numbers (kernel-facts §13c); the ones we compare come first.
KPF = {"MMAP": 11, "ANON": 12, "ZERO_PAGE": 24,
       "LRU": 5, "SWAPBACKED": 14, "COMPOUND_HEAD": 15, "COMPOUND_TAIL": 16, "HUGE": 17,
       "NOPAGE": 20, "KSM": 21, "THP": 22, "PGTABLE": 26, "RESERVED": 32}
COMPARED_KPF = ("ANON", "MMAP", "ZERO_PAGE")

# A written page of our own whose pagemap entry tells whether pfns are visible to us.
_PROBE_BUF = bytearray(3 * PAGE_SIZE)
PROBE_ADDR = (ctypes.addressof((ctypes.c_char * len(_PROBE_BUF)).from_buffer(_PROBE_BUF))
              + PAGE_SIZE) & ~(PAGE_SIZE - 1)


def _touch_probe_page() -> None:
    """Write the page at PROBE_ADDR so that it is present."""
    base = ctypes.addressof((ctypes.c_char * 1).from_buffer(_PROBE_BUF))
    _PROBE_BUF[PROBE_ADDR - base] = 1


_touch_probe_page()


@dataclass
class Capabilities:
    """What this /proc can show, with one sentence per missing piece saying why."""

    linux: bool
    pagemap: bool
    pfns: bool
    kpagecount: bool
    kpageflags: bool
    smaps: bool
    missing: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Probe:
    """Reads pagemap / kpagecount / kpageflags / smaps under a /proc root (default /proc)."""

    def __init__(self, proc: str = "/proc", platform: str | None = None):
        self.proc = proc
        self.platform = platform if platform is not None else sys.platform

    def path(self, *parts) -> str:
        return os.path.join(self.proc, *[str(p) for p in parts])

    def pagemap(self, vaddr: int, npages: int, pid="self") -> list[int]:
        """The raw u64 pagemap entries of `npages` pages from `vaddr` (OSError if unreadable)."""
        with open(self.path(pid, "pagemap"), "rb", buffering=0) as f:
            data = os.pread(f.fileno(), 8 * npages, (vaddr // PAGE_SIZE) * 8)
        if len(data) != 8 * npages:
            raise OSError(errno.EIO, f"pagemap: short read ({len(data)} of {8 * npages} bytes)")
        return list(struct.unpack(f"<{npages}Q", data))

    def _kpage(self, name: str, pfn: int) -> int | None:
        """The u64 for `pfn` in /proc/<name>; None past its end (a pfn with no struct page)."""
        with open(self.path(name), "rb", buffering=0) as f:
            data = os.pread(f.fileno(), 8, pfn * 8)
        return struct.unpack("<Q", data)[0] if len(data) == 8 else None

    def kpagecount(self, pfn: int) -> int | None:
        """The mapcount the kernel reports for `pfn` (OSError if the file is unreadable)."""
        return self._kpage("kpagecount", pfn)

    def kpageflags(self, pfn: int) -> int | None:
        """The kpageflags word of `pfn` (OSError if the file is unreadable)."""
        return self._kpage("kpageflags", pfn)

    def smaps(self, pid="self") -> list[dict]:
        """The vmas of smaps: [{'start', 'end', 'name', 'perms', 'vmflags': [codes]}]."""
        vmas = []
        with open(self.path(pid, "smaps")) as f:
            for line in f:
                head = line.split(None, 5)
                if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                    start, end = (int(x, 16) for x in head[0].split("-"))
                    name = head[5].strip() if len(head) > 5 else ""
                    vmas.append({"start": start, "end": end, "perms": head[1], "name": name,
                                 "vmflags": []})
                elif line.startswith("VmFlags:") and vmas:
                    vmas[-1]["vmflags"] = line.split()[1:]
        return vmas

    def capabilities(self) -> Capabilities:
        """Find out what can be read here; never raises."""
        if not self.platform.startswith("linux"):
            return Capabilities(False, False, False, False, False, False, [
                (f"this is {self.platform}, not Linux: there is no /proc/self/pagemap; "
                "showing a run recorded on a Linux machine instead")])
        caps = Capabilities(True, True, True, True, True, True)
        caps.pagemap = self._readable(self.path("self", "pagemap"), caps, "pagemap",
                                      "needs a kernel with CONFIG_PROC_PAGE_MONITOR")
        if caps.pagemap and not self._shows_pfns():
            caps.pfns = False
            caps.missing.append(
                "pfns hidden: pagemap reports pfn 0 because this process lacks CAP_SYS_ADMIN "
                "(Linux 4.2 and later); run as root to see frames, so 'same frame or not' "
                "cannot be compared")
        caps.pfns = caps.pfns and caps.pagemap
        for name in ("kpagecount", "kpageflags"):
            ok = self._readable(self.path(name), caps, name,
                                "readable by root only (mode 0400), and only on kernels with "
                                "CONFIG_PROC_PAGE_MONITOR")
            setattr(caps, name, ok)
        caps.smaps = self._readable(self.path("self", "smaps"), caps, "smaps", "needs CONFIG_PROC_FS")
        return caps

    @staticmethod
    def _readable(path: str, caps: Capabilities, what: str, why: str) -> bool:
        """True if `path` opens for reading; else note what is missing and why in caps."""
        try:
            with open(path, "rb", buffering=0) as f:
                os.pread(f.fileno(), 8, 0)
            return True
        except FileNotFoundError:
            caps.missing.append(f"{what} missing: {path} does not exist ({why})")
        except PermissionError:
            caps.missing.append(f"{what} unreadable: permission denied on {path} ({why})")
        except OSError as e:
            caps.missing.append(f"{what} unreadable: {path}: {e.strerror or e} ({why})")
        return False

    def _shows_pfns(self) -> bool:
        """True if a page this process surely has present (PROBE_ADDR) shows a pfn."""
        _touch_probe_page()
        try:
            e = self.pagemap(PROBE_ADDR, 1)[0]
        except OSError:
            return False
        return bool(e & PM_PRESENT) and (e & PM_PFN_MASK) != 0


def decode_pagemap(entry: int) -> dict:
    """The pagemap bits we use: present, pfn (None if 0/hidden), exclusive, file_shared, swapped."""
    present = bool(entry & PM_PRESENT)
    pfn = entry & PM_PFN_MASK if present and not entry & PM_SWAP else 0
    return {"present": present, "pfn": pfn or None, "exclusive": bool(entry & PM_MMAP_EXCLUSIVE),
            "file_shared": bool(entry & PM_FILE), "swapped": bool(entry & PM_SWAP),
            "soft_dirty": bool(entry & PM_SOFT_DIRTY)}


def decode_kpageflags(word: int | None) -> list[str] | None:
    """Names of the known kpageflags bits set in `word` (None stays None)."""
    if word is None:
        return None
    return [name for name, bit in KPF.items() if word >> bit & 1]
