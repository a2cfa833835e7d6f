"""What the memmap costs: struct pages for a shared read-only image (kernel-facts §12).

Pure arithmetic, standard library only; vmlib.views plots it. The commit that introduced
VM_MIXEDMAP claims that with 100 guests each mapping the same image, the guests' struct pages
together outweigh the image. `memmap_break_even` is the fewest guests whose struct pages together
are at least as large as the image.
"""

from __future__ import annotations


def _check(name: str, value, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")


def memmap_cost(guests: int, image_bytes: int, sizeof_struct_page: int = 64, page_size: int = 4096) -> int:
    """Bytes of struct page that `guests` guests together spend on an image of `image_bytes`.

    Each guest keeps one struct page per page of the image; a partial last page needs a whole one.
    """
    _check("guests", guests, 0)
    _check("image_bytes", image_bytes, 0)
    _check("sizeof_struct_page", sizeof_struct_page)
    _check("page_size", page_size)
    return guests * (-(-image_bytes // page_size)) * sizeof_struct_page


def memmap_break_even(sizeof_struct_page: int, page_size: int = 4096) -> int:
    """The fewest guests whose memmaps together are at least as large as the image itself."""
    _check("sizeof_struct_page", sizeof_struct_page)
    _check("page_size", page_size)
    return -(-page_size // sizeof_struct_page)
