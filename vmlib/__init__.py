"""vmlib: a faithful simulator of the Linux memory manager, from 2.6.25 to 6.12.

The public API (DESIGN.md §3): Kernel, Driver, drivers, the VM_* flags, the fault codes and the
errors. The model imports only the standard library; views live in vmlib.views.
"""

__version__ = "0.1.0"   # the one place the version is written (pyproject.toml reads it)

from vmlib import drivers
from vmlib.errors import (
    BadPageMap,
    BadPageState,
    BusError,
    InvariantError,
    KernelBug,
    KernelError,
    MissingFeature,
    Segfault,
    VmError,
)
from vmlib.flags import (
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_DONTCOPY,
    VM_DONTEXPAND,
    VM_EXEC,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_INSERTPAGE,
    VM_IO,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_READ,
    VM_RESERVED,
    VM_SHARED,
    VM_WRITE,
    is_cow_mapping,
)
from vmlib.kernel import Kernel
from vmlib.mm import Driver, File, Vmf
from vmlib.page import Page
from vmlib.process import Process
from vmlib.profiles import ARCHES, VERSIONS
from vmlib.pte import Pte
from vmlib.source import source

PROFILES = [("2.6.25", "x86"), ("2.6.26", "x86"), ("2.6.26", "s390"), ("2.6.27", "x86"),
            ("6.12", "x86"), ("6.12", "m68k")]

__all__ = [
    "ARCHES", "PAGE_SHIFT", "PAGE_SIZE", "PROFILES", "VERSIONS", "VM_DONTCOPY", "VM_DONTEXPAND",
    "VM_EXEC", "VM_FAULT_NOPAGE", "VM_FAULT_OOM", "VM_FAULT_SIGBUS", "VM_INSERTPAGE", "VM_IO",
    "VM_MAYREAD", "VM_MAYSHARE", "VM_MAYWRITE", "VM_MIXEDMAP", "VM_PFNMAP", "VM_READ", "VM_RESERVED",
    "VM_SHARED", "VM_WRITE", "BadPageMap", "BadPageState", "BusError", "Driver", "File",
    "InvariantError", "Kernel", "KernelBug", "KernelError", "MissingFeature", "Page", "Process",
    "Pte", "Segfault", "VmError", "Vmf", "drivers", "is_cow_mapping", "source",
]
