"""Errors the simulator raises: the kernel's failure modes, and misuse of the library.

Each message names the kernel function and the rule that was broken, e.g.
"vm_insert_pfn: BUG_ON: VM_PFNMAP vma is a COW mapping".
"""

from __future__ import annotations

import errno as _errno


class VmError(Exception):
    """Base of every error the model raises on purpose."""


class KernelBug(VmError):
    """A BUG_ON fired: the caller broke a precondition the kernel would crash on."""


class BadPageState(VmError):
    """The kernel's bad_page(): a struct page in an impossible state (e.g. refcount underflow)."""


class BadPageMap(VmError):
    """The kernel's print_bad_pte(): a pte that points where it must not (e.g. no struct page)."""


class Segfault(VmError):
    """SIGSEGV sent to the user process: no vma, or the vma forbids the access."""


class BusError(VmError):
    """SIGBUS sent to the user process: the fault handler could not provide the page."""


class KernelError(VmError):
    """An errno returned to the caller; `.errno` is positive (EINVAL, EFAULT, ...)."""

    def __init__(self, err: int, message: str):
        self.errno = abs(err)
        name = _errno.errorcode.get(self.errno, str(self.errno))
        super().__init__(f"{message} (-{name})")


class MissingFeature(VmError):
    """The API or behaviour does not exist in this kernel version or on this arch."""


class InvariantError(VmError):
    """k.check() found a broken invariant; the message names the rule."""


def errno_name(err: int) -> str:
    """'-EINVAL' for -22; '0' for 0."""
    return "0" if err == 0 else "-" + _errno.errorcode.get(abs(err), str(abs(err)))
