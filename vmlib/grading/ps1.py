"""ps1 memmap: what a memmap costs, is_cow_mapping, and the flags mmap gives a vma.

The reference answers follow kernel-facts §12 (struct page overhead) and §2 (is_cow_mapping and
what do_mmap_pgoff of v2.6.26 does with MAP_SHARED, MAP_PRIVATE and the file's open mode).
"""

from __future__ import annotations

import random

from vmlib.flags import (
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    flag_names,
    is_cow_mapping,
)
from vmlib.grading.suites import Case, Suite, register

PRELUDE = (
    "from vmlib.flags import (PAGE_SIZE, VM_READ, VM_WRITE, VM_SHARED, VM_MAYREAD, VM_MAYWRITE,\n"
    "                         VM_MAYEXEC, VM_MAYSHARE, flag_names)\n"
)
GiB = 1 << 30
MiB = 1 << 20
CLASSIFY_MASK = VM_SHARED | VM_MAYSHARE | VM_MAYWRITE
SHARES = ("MAP_PRIVATE", "MAP_SHARED")
FDS = {"rw": "fd opened read-write", "ro": "fd opened read-only", "anon": "anonymous"}
PROTS = {"": "PROT_NONE", "r": "PROT_READ", "w": "PROT_WRITE", "rw": "PROT_READ|PROT_WRITE"}


# ---- part (a): the memmap ----------------------------------------------------------------

def memmap_bytes(guests: int, image_bytes: int, sizeof_struct_page: int = 64, page_size: int = 4096) -> int:
    """Bytes of struct page that `guests` guests each pay to map an image of `image_bytes`."""
    pages = -(-image_bytes // page_size)
    return guests * pages * sizeof_struct_page


def break_even_guests(sizeof_struct_page: int, page_size: int = 4096) -> int:
    """Fewest guests whose memmaps together are at least as big as the image itself."""
    return -(-page_size // sizeof_struct_page)


def _memmap_cases(params: dict) -> list[Case]:
    """Visible: the commit's example, a partial page, a struct page that does not divide the page;
    hidden: sizes of §12, more partial pages, other page sizes."""
    m = [(100, GiB, 64, 4096), (1, GiB, 56, 4096), (2, 4097, 64, 4096)]
    b = [(64, 4096), (32, 4096), (56, 4096)]
    if params.get("cases") == "hidden":
        rng = random.Random(params.get("seed", 0))
        m = [(100, GiB, 56, 4096), (0, GiB, 64, 4096), (3, 4097, 64, 4096), (7, 1, 40, 4096),
             (10, 5 * MiB + 1, 64, 16384)]
        m += [(rng.randrange(1, 500), rng.randrange(1, 8 * GiB), rng.choice((32, 40, 56, 64)),
               rng.choice((4096, 8192, 16384))) for _ in range(20)]
        b = [(56, 4096), (40, 4096), (48, 4096), (64, 8192), (96, 4096)]
        b += [(rng.choice((24, 32, 40, 48, 56, 64, 72, 80)), rng.choice((4096, 16384, 65536)))
              for _ in range(10)]
    cases = [Case(f"{g} guests, image of {n} bytes, struct page {s} B, page size {p}", "memmap_bytes",
                  [g, n, s, p], memmap_bytes(g, n, s, p),
                  "every guest pays one struct page per page of the image, a partial page counts whole")
             for g, n, s, p in m]
    cases += [Case(f"struct page {s} B, page size {p}", "break_even_guests", [s, p],
                   break_even_guests(s, p),
                   "it is the smallest whole number of guests with guests * sizeof >= page size")
              for s, p in b]
    return cases


register(Suite("ps1.memmap", ("memmap_bytes", "break_even_guests"), _memmap_cases, prelude=PRELUDE,
               references=("vmlib.grading.ps1:memmap_bytes", "vmlib.grading.ps1:break_even_guests")))


# ---- part (b): is_cow_mapping ---------------------------------------------------------------

def _cow_why(vm_flags: int) -> str:
    """The kernel's reason for is_cow_mapping(vm_flags), in words."""
    if vm_flags & VM_SHARED:
        return "VM_SHARED is set: writes go to the shared object, nothing is copied"
    if not vm_flags & VM_MAYWRITE:
        return "VM_MAYWRITE is cleared: the mapping can never become writable, so nothing needs a copy"
    return "VM_MAYWRITE is set and VM_SHARED is not: a write must get a private copy"


def _cow_cases(params: dict) -> list[Case]:
    """Visible: the four mmap calls of kernel-facts §2, a driver's vma and a word that tells VM_SHARED
    from VM_MAYSHARE; hidden: more such words and random ones."""
    base = VM_READ | VM_MAYREAD | VM_MAYEXEC
    words = [
        ("MAP_PRIVATE, PROT_READ|PROT_WRITE", base | VM_WRITE | VM_MAYWRITE),
        ("MAP_PRIVATE, PROT_READ only", base | VM_MAYWRITE),
        ("MAP_SHARED, fd opened read-only", base | VM_MAYSHARE),
        ("MAP_SHARED, fd opened read-write", base | VM_WRITE | VM_SHARED | VM_MAYSHARE | VM_MAYWRITE),
        ("MAP_PRIVATE whose VM_MAYWRITE a driver cleared", base),
        ("a word no mmap makes: VM_SHARED|VM_MAYWRITE without VM_MAYSHARE", base | VM_SHARED | VM_MAYWRITE),
    ]
    if params.get("cases") == "hidden":
        rng = random.Random(params.get("seed", 0))
        words = [("MAP_PRIVATE whose VM_MAYWRITE a driver cleared", base),
                 ("MAP_SHARED anonymous (shmem)", base | VM_WRITE | VM_SHARED | VM_MAYSHARE | VM_MAYWRITE),
                 ("VM_SHARED without VM_MAYWRITE", VM_SHARED), ("no flags at all", 0)]
        for _ in range(40):
            word = rng.getrandbits(29) & ~(VM_SHARED | VM_MAYWRITE)
            word |= rng.choice((0, VM_SHARED, VM_MAYWRITE, VM_SHARED | VM_MAYWRITE))
            words.append(("random flags", word))
    return [Case(f"{label}: vm_flags = {flag_names(w)}", "is_cow_mapping", [w], is_cow_mapping(w),
                 _cow_why(w)) for label, w in words]


register(Suite("ps1.is_cow_mapping", ("is_cow_mapping",), _cow_cases, prelude=PRELUDE,
               references=("vmlib.flags:is_cow_mapping",)))


# ---- part (c): what mmap makes of MAP_SHARED / MAP_PRIVATE ----------------------------------

def classify_mmap(share: str, fd: str, prot: str):
    """(vm_flags & (VM_SHARED|VM_MAYSHARE|VM_MAYWRITE), cow) for an mmap call, or "EACCES".

    Follows do_mmap_pgoff() of mm/mmap.c, v2.6.26 (kernel-facts §2).
    """
    vm_flags = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    vm_flags |= (VM_READ if "r" in prot else 0) | (VM_WRITE if "w" in prot else 0)
    if share == "MAP_SHARED":
        if fd == "ro" and "w" in prot:
            return "EACCES"
        vm_flags |= VM_SHARED | VM_MAYSHARE
        if fd == "ro":
            vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
    return (vm_flags & CLASSIFY_MASK, is_cow_mapping(vm_flags))


def _classify_why(share: str, fd: str, prot: str) -> str:
    """The kernel's reason for the classification of one mmap call."""
    if share == "MAP_PRIVATE":
        return ("MAP_PRIVATE never sets VM_SHARED or VM_MAYSHARE and keeps VM_MAYWRITE, whatever the prot "
                "(mprotect or ptrace could still write), so it is a COW mapping")
    if fd == "ro" and "w" in prot:
        return "a shared writable mapping of an fd opened read-only is refused with EACCES"
    if fd == "ro":
        return ("MAP_SHARED of an fd opened read-only keeps VM_MAYSHARE but clears VM_MAYWRITE and VM_SHARED: "
                "it can never be written, so it is not COW")
    return "MAP_SHARED sets VM_SHARED and VM_MAYSHARE and keeps VM_MAYWRITE: writes reach the shared object, no COW"


def _classify_cases(params: dict) -> list[Case]:
    """Visible: seven common calls, one refused; hidden: every share x fd x prot combination."""
    calls = [("MAP_PRIVATE", "rw", "rw"), ("MAP_PRIVATE", "ro", "r"), ("MAP_SHARED", "rw", "rw"),
             ("MAP_SHARED", "ro", "r"), ("MAP_SHARED", "ro", "rw"), ("MAP_SHARED", "anon", "rw"),
             ("MAP_PRIVATE", "anon", "rw")]
    if params.get("cases") == "hidden":
        calls = [(s, f, p) for s in SHARES for f in FDS for p in PROTS]
    return [Case(f"{s}, {FDS[f]}, {PROTS[p]}", "classify_mmap", [s, f, p],
                 _json(classify_mmap(s, f, p)), _classify_why(s, f, p)) for s, f, p in calls]


def _json(result):
    return list(result) if isinstance(result, tuple) else result


def _show_classified(result) -> str:
    """A classify_mmap result as flag names, e.g. '(VM_MAYWRITE, cow=True)'."""
    if isinstance(result, list) and len(result) == 2 and isinstance(result[0], int):
        return f"({flag_names(result[0])}, cow={result[1]!r})"
    return repr(result)


register(Suite("ps1.classify_mmap", ("classify_mmap",), _classify_cases, prelude=PRELUDE,
               references=("vmlib.grading.ps1:classify_mmap",), show=_show_classified))
