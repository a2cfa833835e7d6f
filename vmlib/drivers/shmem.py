"""Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS): a tiny shmem file with a page cache.

Its pages are file pages (not PageAnon), held by the page cache and mapped refcounted by
__do_fault; they are freed when the last mapping goes away.
"""

from __future__ import annotations

from vmlib.flags import PAGE_SHIFT, VM_FAULT_OOM, VM_FAULT_SIGBUS
from vmlib.mm import Driver, PageCache


class Shmem(Driver):
    name = "shmem"

    def __init__(self, size: int):
        self.npages = (size + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT
        self.cache = PageCache("shmem")
        self.anonymous = True

    def fault(self, k, vma, vmf) -> int:
        if vmf.pgoff >= self.npages:
            return VM_FAULT_SIGBUS
        page = self.cache.pages.get(vmf.pgoff)
        if page is None:
            page = k._alloc_page("pagecache")
            if page is None:
                return VM_FAULT_OOM
            k._set_page_field(page, "mapping", self.cache)
            k._set_page_field(page, "index", vmf.pgoff)
            k._set_dict(self.cache.pages, vmf.pgoff, page)
        k._get_page(page, "shmem_fault")
        vmf.page = page
        return 0

    def release(self, k) -> None:
        """The last mapping is gone: drop the page cache."""
        for idx, page in sorted(self.cache.pages.items()):
            k._set_dict(self.cache.pages, idx, None)
            k._set_page_field(page, "mapping", None)
            k._put_page(page, "shmem_evict_inode")
