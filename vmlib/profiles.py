"""Kernel profiles: version x arch (DESIGN.md §4, kernel-facts §5a, §9, §10 and §12).

Every behaviour that differs between kernels is one attribute here, named after the kernel
symbol or behaviour it stands for, so that a student can flip it (`dataclasses.replace`)
and watch the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSIONS = ("2.6.25", "2.6.26", "2.6.27", "6.12")
ARCHES = ("x86", "s390", "powerpc", "m68k", "arm64")

# Which arches have a pte special bit, per version (kernel-facts §10).
_PTE_SPECIAL = {
    "2.6.25": set(),
    "2.6.26": {"s390"},
    "2.6.27": {"x86", "powerpc", "s390"},
    "6.12": {"x86", "powerpc", "s390", "arm64"},
}
# Which arches have a lockless get_user_pages_fast (kernel-facts §9c).
_GUP_FAST = {
    "2.6.25": set(),
    "2.6.26": set(),
    "2.6.27": {"x86", "powerpc"},
    "6.12": {"x86", "powerpc", "s390", "arm64"},
}


@dataclass(frozen=True)
class Profile:
    """What one kernel version on one arch does, as switches the simulator branches on."""

    version: str
    arch: str
    HAVE_PTE_SPECIAL: bool          # __HAVE_ARCH_PTE_SPECIAL / CONFIG_ARCH_HAS_PTE_SPECIAL
    HAVE_GUP_FAST: bool             # HAVE_GET_USER_PAGES_FAST (2.6.27) / HAVE_GUP_FAST (6.12)
    HAVE_VM_MIXEDMAP: bool          # the 2008 series is merged (2.6.26 on)
    MODERN: bool                    # 6.12 rules: zero page, refcount reuse, vma_needs_copy, ...
    PFNMAP_FAULT: bool              # __do_fault accepts a VM_PFNMAP vma (42172d751b, 2.6.26 on)
    HAVE_NOPFN: bool                # vm_operations_struct.nopfn exists (up to 2.6.26)
    HAVE_GUP_FAST_API: bool         # get_user_pages_fast() exists at all (21cc199baa, 2.6.27 on)
    FOLL_ANON_PTE_NONE: bool        # follow_page hands out ZERO_PAGE for a none pte too, not only
                                    # for a missing table (89f5b7da2a, 2.6.26 and 2.6.27)
    USE_ZERO_PAGE: bool             # use_zero_page() gates FOLL_ANON and leaves out VM_SHARED
                                    # vmas (672ca28e30, 2.6.26 and 2.6.27)
    PTE_CHG_MASK_SPECIAL: bool      # pte_modify keeps the special bit (_PAGE_SPECIAL in x86's
                                    # _PAGE_CHG_MASK from a0a8f5364a, 2.6.27; kernel-facts §16a)
    sizeof_struct_page: int         # bytes of one struct page (kernel-facts §12)

    @property
    def name(self) -> str:
        return f"{self.version}/{self.arch}"


def make_profile(version: str, arch: str, sizeof_struct_page: int | None = None) -> Profile:
    """The profile of `version` on `arch`; ValueError naming the choices for anything else."""
    if version not in VERSIONS:
        raise ValueError(f"unknown kernel version {version!r}: choose one of {', '.join(VERSIONS)}")
    if arch not in ARCHES:
        raise ValueError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHES)}")
    modern = version == "6.12"
    if sizeof_struct_page is None:
        if arch == "m68k":
            sizeof_struct_page = 32          # a 32-bit arch (kernel-facts §12 row 1)
        else:
            sizeof_struct_page = 64 if modern else 56
    if not isinstance(sizeof_struct_page, int) or sizeof_struct_page <= 0:
        raise ValueError(f"sizeof_struct_page must be a positive int, got {sizeof_struct_page!r}")
    return Profile(
        version=version,
        arch=arch,
        HAVE_PTE_SPECIAL=arch in _PTE_SPECIAL[version],
        HAVE_GUP_FAST=arch in _GUP_FAST[version],
        HAVE_VM_MIXEDMAP=version != "2.6.25",
        MODERN=modern,
        PFNMAP_FAULT=version != "2.6.25",
        HAVE_NOPFN=version in ("2.6.25", "2.6.26"),
        HAVE_GUP_FAST_API=version not in ("2.6.25", "2.6.26"),
        FOLL_ANON_PTE_NONE=version in ("2.6.26", "2.6.27"),
        USE_ZERO_PAGE=version in ("2.6.26", "2.6.27"),
        PTE_CHG_MASK_SPECIAL=arch in _PTE_SPECIAL[version],
        sizeof_struct_page=sizeof_struct_page,
    )
