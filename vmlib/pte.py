"""Page-table entries as immutable values (x86-64 bit layout).

Faithfulness ledger
- exact: the x86 bits present, rw, user, accessed (young), dirty, and the software bit 9 that
  x86 uses for _PAGE_SPECIAL from 2.6.27 (kernel-facts §10); pte_mk*/pte_wrprotect return new
  values and only set_pte_at (in the kernel object) writes a table.
- simplified: every arch uses this one layout; s390's real special bit is 0x004 but here the
  special bit is always bit 9. Whether pte_mkspecial does anything is the profile's
  HAVE_PTE_SPECIAL, decided in the kernel (arches without the bit get the identity stub).
- left out: NX, PAT/cache bits, swap entries, huge ptes.
"""

from __future__ import annotations

from operator import itemgetter

_PAGE_PRESENT = 0x001
_PAGE_RW = 0x002
_PAGE_USER = 0x004
_PAGE_ACCESSED = 0x020
_PAGE_DIRTY = 0x040
_PAGE_SPECIAL = 0x200

BIT_NAMES = ((_PAGE_PRESENT, "P"), (_PAGE_RW, "W"), (_PAGE_USER, "U"), (_PAGE_ACCESSED, "A"),
             (_PAGE_DIRTY, "D"), (_PAGE_SPECIAL, "S"))


class Pte(tuple):
    """One present page-table entry: a pfn and protection bits. Immutable (a 2-tuple)."""

    __slots__ = ()

    def __new__(cls, pfn: int, bits: int):
        return tuple.__new__(cls, (pfn, bits))

    def __reduce__(self):
        return (Pte, (self[0], self[1]))

    pfn = property(itemgetter(0))
    bits = property(itemgetter(1))
    present = property(lambda self: bool(self.bits & _PAGE_PRESENT))
    write = property(lambda self: bool(self.bits & _PAGE_RW))
    dirty = property(lambda self: bool(self.bits & _PAGE_DIRTY))
    young = property(lambda self: bool(self.bits & _PAGE_ACCESSED))
    special = property(lambda self: bool(self.bits & _PAGE_SPECIAL))

    def flags_str(self) -> str:
        """The set bits as letters joined by '|', e.g. 'P|W|U|A|D' (S = special)."""
        return "|".join(ch for bit, ch in BIT_NAMES if self.bits & bit)

    def __repr__(self):
        return f"Pte(pfn={self.pfn}, {self.flags_str() or '-'})"


def pfn_pte(pfn: int, prot: int) -> Pte:
    """A pte mapping `pfn` with protection bits `prot` (a vm_page_prot value)."""
    return Pte(pfn, prot)


def pte_mkwrite(pte: Pte) -> Pte:
    return Pte(pte.pfn, pte.bits | _PAGE_RW)


def pte_wrprotect(pte: Pte) -> Pte:
    return Pte(pte.pfn, pte.bits & ~_PAGE_RW)


def pte_mkdirty(pte: Pte) -> Pte:
    return Pte(pte.pfn, pte.bits | _PAGE_DIRTY)


def pte_mkclean(pte: Pte) -> Pte:
    return Pte(pte.pfn, pte.bits & ~_PAGE_DIRTY)


def pte_mkyoung(pte: Pte) -> Pte:
    return Pte(pte.pfn, pte.bits | _PAGE_ACCESSED)


def pte_mkold(pte: Pte) -> Pte:
    return Pte(pte.pfn, pte.bits & ~_PAGE_ACCESSED)


def pte_mkspecial_bit(pte: Pte) -> Pte:
    """Set the special bit unconditionally; the kernel's pte_mkspecial decides per arch."""
    return Pte(pte.pfn, pte.bits | _PAGE_SPECIAL)
