"""VM_* flags, fault codes and the COW test.

Faithfulness ledger
- exact: the flag values of include/linux/mm.h v2.6.26 (kernel-facts §3a); VM_FAULT_* codes of
  v2.6.26; is_cow_mapping (§2); the smaps two-letter codes of modern kernels (§13d).
- simplified: one value table for every profile. Bits that 6.12 re-uses for other meanings
  (0x200, 0x1000, 0x80000, ...) keep their 2.6.26 names here; the model never sets them on 6.12.
- left out: VM_GROWSUP stacks, nommu flags, the high (>32-bit) modern flags.
"""

from __future__ import annotations

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)

VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_EXEC = 0x00000004
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010
VM_MAYWRITE = 0x00000020
VM_MAYEXEC = 0x00000040
VM_MAYSHARE = 0x00000080
VM_GROWSDOWN = 0x00000100
VM_PFNMAP = 0x00000400
VM_LOCKED = 0x00002000
VM_IO = 0x00004000
VM_DONTCOPY = 0x00020000
VM_DONTEXPAND = 0x00040000
VM_RESERVED = 0x00080000      # 2.6.26 only (gone in the 2012 vm_flags diet)
VM_ACCOUNT = 0x00100000
VM_HUGETLB = 0x00400000
VM_NONLINEAR = 0x00800000     # 2.6.26 only
VM_INSERTPAGE = 0x02000000    # 2.6.26 only (merged into VM_MIXEDMAP in 2012)
VM_DONTDUMP = 0x04000000      # 6.12 meaning of this bit (2.6.26: VM_ALWAYSDUMP)
VM_CAN_NONLINEAR = 0x08000000  # 2.6.26 only
VM_MIXEDMAP = 0x10000000

VM_FAULT_OOM = 0x0001
VM_FAULT_SIGBUS = 0x0002
VM_FAULT_MAJOR = 0x0004
VM_FAULT_WRITE = 0x0008
VM_FAULT_NOPAGE = 0x0100
VM_FAULT_LOCKED = 0x0200
VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS

FLAG_NAMES = {
    VM_READ: "VM_READ", VM_WRITE: "VM_WRITE", VM_EXEC: "VM_EXEC", VM_SHARED: "VM_SHARED",
    VM_MAYREAD: "VM_MAYREAD", VM_MAYWRITE: "VM_MAYWRITE", VM_MAYEXEC: "VM_MAYEXEC",
    VM_MAYSHARE: "VM_MAYSHARE", VM_GROWSDOWN: "VM_GROWSDOWN", VM_PFNMAP: "VM_PFNMAP",
    VM_LOCKED: "VM_LOCKED", VM_IO: "VM_IO", VM_DONTCOPY: "VM_DONTCOPY",
    VM_DONTEXPAND: "VM_DONTEXPAND", VM_RESERVED: "VM_RESERVED", VM_ACCOUNT: "VM_ACCOUNT",
    VM_HUGETLB: "VM_HUGETLB", VM_NONLINEAR: "VM_NONLINEAR", VM_INSERTPAGE: "VM_INSERTPAGE",
    VM_DONTDUMP: "VM_DONTDUMP", VM_CAN_NONLINEAR: "VM_CAN_NONLINEAR", VM_MIXEDMAP: "VM_MIXEDMAP",
}

# smaps "VmFlags:" codes, in the order the modern kernel prints them (kernel-facts §13d).
SMAPS_CODES = [
    (VM_READ, "rd"), (VM_WRITE, "wr"), (VM_EXEC, "ex"), (VM_SHARED, "sh"), (VM_MAYREAD, "mr"),
    (VM_MAYWRITE, "mw"), (VM_MAYEXEC, "me"), (VM_MAYSHARE, "ms"), (VM_GROWSDOWN, "gd"),
    (VM_PFNMAP, "pf"), (VM_LOCKED, "lo"), (VM_IO, "io"), (VM_DONTCOPY, "dc"),
    (VM_DONTEXPAND, "de"), (VM_ACCOUNT, "ac"), (VM_HUGETLB, "ht"), (VM_DONTDUMP, "dd"),
    (VM_MIXEDMAP, "mm"),
]


def is_cow_mapping(vm_flags: int) -> bool:
    """True iff the mapping is private but may become writable (kernel-facts §2).

    Follows is_cow_mapping() of mm/memory.c v2.6.26 (include/linux/mm.h in 6.12): of
    VM_SHARED and VM_MAYWRITE exactly VM_MAYWRITE is set.
    """
    return (vm_flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE


def flag_names(vm_flags: int) -> str:
    """'VM_READ|VM_WRITE|...' for a flags word, lowest bit first; '0' for none."""
    names = [name for bit, name in sorted(FLAG_NAMES.items()) if vm_flags & bit]
    return "|".join(names) or "0"


def smaps_flags(vm_flags: int) -> str:
    """The smaps 'VmFlags:' string for a flags word, e.g. 'rd wr mr mw me ac'."""
    return " ".join(code for bit, code in SMAPS_CODES if vm_flags & bit)
