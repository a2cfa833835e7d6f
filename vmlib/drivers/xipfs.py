"""An ext2-xip-like filesystem: files whose blocks are mapped straight from memory (XIP).

Follows mm/filemap_xip.c xip_file_mmap()/xip_file_fault()/__xip_unmap() and fs/ext2/xip.c,
v2.6.26 (kernel-facts §11a).

Faithfulness ledger
- exact: mmap sets VM_CAN_NONLINEAR|VM_MIXEDMAP; a fault beyond EOF is SIGBUS; a block that
  exists is mapped with vm_insert_mixed (VM_FAULT_NOPAGE); a hole in a mapping that may be
  shared-writable (on a read-write fs) allocates a block, unmaps the sparse page from every
  vma at that offset, then maps the block; any other hole gets the one global zero-filled
  sparse page (a RAM page, not ZERO_PAGE) through vmf->page.
- extension (the seed's "future iterations"): a block can move between the XIP backing and
  the page cache. A block in the page cache is handed to the fault path as vmf->page, so it is
  refcounted, while device blocks stay unrefcounted: one VM_MIXEDMAP mapping holds both.
- 2.6.25 (mm/filemap_xip.c xip_file_mmap()/xip_file_fault(), v2.6.25): XIP maps blocks only
  through their struct page (get_xip_page), and xip_file_mmap never refuses a mapping. On
  device memory the block driver pays for that: it gives the segment a memmap when it loads it
  (s390 add_shared_memory, v2.6.25), so XipFs(k, backing=dev) calls k.add_shared_memory(dev):
  the segment becomes pfn_valid, memmap_bytes() grows, and blocks are mapped as ordinary
  refcounted pages, exactly as on RAM. That memmap is the cost the 2008 series removed.
- 6.12: DAX replaced XIP; this driver keeps the 2.6.26 design (VM_MIXEDMAP, vmf_insert_mixed).
- simplified: block allocation is a bump allocator with a free list; no journaling, no
  on-disk format; read()/write() are plain copies.
"""

from __future__ import annotations

import errno

from vmlib.errors import KernelError
from vmlib.flags import (
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_CAN_NONLINEAR,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_SHARED,
    VM_WRITE,
)
from vmlib.mm import Driver, PageCache
from vmlib.trace import seen

SHARED_WRITABLE = VM_WRITE | VM_MAYWRITE | VM_SHARED | VM_MAYSHARE    # what xip_file_fault tests at a hole


class XipInode:
    def __init__(self, fs, name: str, size: int):
        self.fs = fs
        self.name = name
        self.size = size
        self.blocks: dict[int, int] = {}      # file page -> pfn on the XIP backing
        self.cache = PageCache(name)          # file page -> Page, for blocks in the page cache
        self.files: list = []

    @property
    def npages(self) -> int:
        return (self.size + PAGE_SIZE - 1) >> PAGE_SHIFT

    def vmas(self) -> list:
        return [v for f in self.files for v in f.i_mmap]

    def __repr__(self):
        return f"<xip inode {self.name}: {self.size} bytes, {len(self.blocks)} XIP blocks, " \
               f"{len(self.cache.pages)} in page cache>"


class XipFs(Driver):
    """`XipFs(k, backing=dev)` on device memory, or `backing="ram"` for a RAM disk (brd)."""

    # The block device's backing_dev_info accounts dirty pages, so vma_wants_writenotify is true
    # for shared writable XIP mappings: their ptes start read-only and the first write goes
    # through do_wp_page, which makes a raw pfn writable in place (251b97f552, kernel-facts §6b).
    writenotify = True

    def __init__(self, k, backing="ram", name: str = "xipfs", readonly: bool = False):
        if backing != "ram" and not hasattr(backing, "start_pfn"):
            raise TypeError(f"XipFs: backing is 'ram' or a DeviceMemory from k.add_device_memory(), "
                            f"got {backing!r}")
        self.k = k
        self.backing = backing
        self.name = name
        self.readonly = readonly
        self.inodes: dict[str, XipInode] = {}
        self._next_block = 0
        self._free_blocks: list[int] = []
        if self.on_device and not k.profile.HAVE_VM_MIXEDMAP and not backing.has_memmap:
            k.add_shared_memory(backing)      # 2.6.25: XIP needs struct pages (§11a)

    @property
    def on_device(self) -> bool:
        return self.backing != "ram"

    # -- files ----------------------------------------------------------------------------

    def create(self, name: str, data: bytes = b"", size: int | None = None, mode: str = "rw"):
        """A new file holding `data` (size defaults to len(data); the rest is a hole)."""
        if not isinstance(name, str) or not name:
            raise ValueError("XipFs.create: name must be a non-empty string")
        if name in self.inodes:
            raise ValueError(f"XipFs.create: {name!r} exists already")
        size = len(data) if size is None else size
        if not isinstance(size, int) or size < len(data):
            raise ValueError(f"XipFs.create: size {size!r} is smaller than the data ({len(data)} bytes)")
        with self.k._transaction():
            inode = XipInode(self, name, size)
            self.inodes[name] = inode
            self.k._log(self.inodes.pop, name)
            self._write(inode, 0, bytes(data))
            return self.open(name, mode)

    def open(self, name: str, mode: str = "r"):
        if name not in self.inodes:
            raise ValueError(f"XipFs.open: no file {name!r}; files: {sorted(self.inodes)}")
        f = self.k.open(self, mode)
        f.private = self.inodes[name]
        f.private.files.append(f)
        return f

    def write(self, f, offset: int, data: bytes) -> None:
        """write(2) through the filesystem: blocks are allocated for holes as needed."""
        if offset < 0 or offset + len(data) > f.private.size:
            raise ValueError(f"XipFs.write: bytes {offset}..{offset + len(data)} are past the end "
                             f"of {f.private.name} ({f.private.size} bytes)")
        with self.k._transaction():
            self._write(f.private, offset, bytes(data))

    def read(self, f, offset: int, n: int) -> bytes:
        inode = f.private
        if offset < 0 or offset + n > inode.size:
            raise ValueError(f"XipFs.read: bytes {offset}..{offset + n} are past the end of "
                             f"{inode.name} ({inode.size} bytes)")
        out = bytearray()
        while n > 0:
            pg, off = divmod(offset, PAGE_SIZE)
            k = min(n, PAGE_SIZE - off)
            pfn = self._pfn_of(inode, pg)
            out += bytes(k) if pfn is None else self.k.phys.read_frame(pfn, off, k)
            offset += k
            n -= k
        return bytes(out)

    def _pfn_of(self, inode, pg: int):
        page = inode.cache.pages.get(pg)
        return page.pfn if page is not None else inode.blocks.get(pg)

    def _write(self, inode, offset: int, data: bytes) -> None:
        k = self.k
        while data:
            pg, off = divmod(offset, PAGE_SIZE)
            n = min(len(data), PAGE_SIZE - off)
            pfn = self._pfn_of(inode, pg)
            if pfn is None:
                pfn = self._alloc_block(inode, pg)
                self._xip_unmap(inode, pg)
            k._write_user(pfn, off, data[:n])
            offset += n
            data = data[n:]

    # -- blocks -----------------------------------------------------------------------------

    def _alloc_block(self, inode, pg: int) -> int:
        k = self.k
        if self.on_device:
            if self._free_blocks:
                pfn = self._free_blocks[0]
                k._log(self._free_blocks.insert, 0, pfn)
                del self._free_blocks[0]
            else:
                if self._next_block >= self.backing.npages:
                    raise KernelError(errno.ENOSPC, f"{self.name}: no free block on {self.backing.name}")
                pfn = self.backing.start_pfn + self._next_block
                k._log(setattr, self, "_next_block", self._next_block)
                self._next_block += 1
            k._log(k._restore_frame, pfn, k.phys.frames.get(pfn))
            k.phys.frames.pop(pfn, None)
        else:
            page = k._alloc_page("brd")
            if page is None:
                raise KernelError(errno.ENOSPC, f"{self.name}: RAM disk full")
            pfn = page.pfn
        k._set_dict(inode.blocks, pg, pfn)
        return pfn

    def _free_block(self, inode, pg: int) -> None:
        k = self.k
        pfn = inode.blocks[pg]
        k._set_dict(inode.blocks, pg, None)
        if self.on_device:
            k._log(self._free_blocks.remove, pfn)
            self._free_blocks.append(pfn)
        else:
            k._put_page(k.phys.page(pfn), "brd_free_page")

    def _sparse_page(self):
        k = self.k
        if k.xip_sparse_page is None:
            page = k._alloc_page("xip_sparse_page")
            if page is None:
                return None
            k._log(setattr, k, "xip_sparse_page", None)
            k.xip_sparse_page = page
        return k.xip_sparse_page

    def _xip_unmap(self, inode, pg: int) -> None:
        """__xip_unmap: remove the sparse page at file page pg from every vma mapping it."""
        from vmlib import memory, pgtable
        k = self.k
        sparse = k.xip_sparse_page
        if sparse is None:
            return
        for vma in inode.vmas():
            if not vma.vm_pgoff <= pg < vma.vm_pgoff + vma.npages:
                continue
            addr = vma.vm_start + ((pg - vma.vm_pgoff) << PAGE_SHIFT)
            pte = pgtable.lookup(vma.vm_mm, addr)
            if pte is not None and pte.pfn == sparse.pfn:
                k.decide("__xip_unmap", f"{vma.vm_mm.name} {addr:#x}: sparse page unmapped", "§11a",
                         seen(vma, addr, sparse.pfn))
                memory.zap_one_pte(k, vma, addr, pte)

    # -- moving blocks between the XIP backing and the page cache -----------------------------

    def move_to_pagecache(self, f, pg: int):
        """Move file page pg from the XIP backing into a page-cache page; return that Page."""
        from vmlib import memory
        k, inode = self.k, f.private
        if pg not in inode.blocks:
            raise ValueError(f"move_to_pagecache: page {pg} of {inode.name} is not an XIP block "
                             f"(a hole or already in the page cache)")
        with k._transaction(), k.call("move_to_pagecache", f"{inode.name} page {pg}"):
            for file in inode.files:
                memory.unmap_mapping_range(k, file, pg)
            page = k._alloc_page("pagecache")
            if page is None:
                raise KernelError(errno.ENOMEM, "move_to_pagecache: out of memory")
            k._copy_frame(page.pfn, inode.blocks[pg])
            k._set_page_field(page, "mapping", inode.cache)
            k._set_page_field(page, "index", pg)
            k._set_dict(inode.cache.pages, pg, page)
            self._free_block(inode, pg)
            return page

    def move_to_xip(self, f, pg: int) -> int:
        """Move file page pg from the page cache back to an XIP block; return its pfn."""
        from vmlib import memory
        k, inode = self.k, f.private
        page = inode.cache.pages.get(pg)
        if page is None:
            raise ValueError(f"move_to_xip: page {pg} of {inode.name} is not in the page cache")
        with k._transaction(), k.call("move_to_xip", f"{inode.name} page {pg}"):
            for file in inode.files:
                memory.unmap_mapping_range(k, file, pg)
            if page._mapcount + 1:
                raise KernelError(errno.EBUSY, f"move_to_xip: page {page.pfn} is still mapped")
            pfn = self._alloc_block(inode, pg)
            k._copy_frame(pfn, page.pfn)
            k._set_dict(inode.cache.pages, pg, None)
            k._set_page_field(page, "mapping", None)
            k._put_page(page, "delete_from_page_cache")
            return pfn

    # -- file_operations.mmap and vm_operations.fault ------------------------------------

    def mmap(self, k, vma) -> int:
        """xip_file_mmap: VM_CAN_NONLINEAR, plus VM_MIXEDMAP from 2.6.26; never refuses."""
        if not k.profile.HAVE_VM_MIXEDMAP:
            vma.vm_flags |= VM_CAN_NONLINEAR
            return 0
        vma.vm_flags |= (0 if k.profile.MODERN else VM_CAN_NONLINEAR) | VM_MIXEDMAP
        return 0

    def fault(self, k, vma, vmf) -> int:
        inode = vma.vm_file.private
        if vmf.pgoff >= inode.npages:
            k.decide("xip_file_fault", f"pgoff {vmf.pgoff} beyond EOF → VM_FAULT_SIGBUS", "§11a")
            return VM_FAULT_SIGBUS
        page = inode.cache.pages.get(vmf.pgoff)
        if page is not None:
            k._get_page(page, "xip_file_fault")
            vmf.page = page
            k.decide("xip_file_fault", f"block in the page cache → vmf->page {page.pfn} (refcounted)",
                     "§11a extension", seen(pfn=page.pfn))
            return 0
        pfn = inode.blocks.get(vmf.pgoff)
        if pfn is None:
            flags = vma.vm_flags
            if (flags & (VM_WRITE | VM_MAYWRITE) and flags & (VM_SHARED | VM_MAYSHARE)
                    and not self.readonly):
                try:
                    pfn = self._alloc_block(inode, vmf.pgoff)
                except KernelError:
                    return VM_FAULT_SIGBUS
                k.decide("xip_file_fault", f"hole in a maybe-shared-writable mapping → new block "
                         f"{pfn}; unmap the sparse page everywhere", "§11a", seen(vma, flags=SHARED_WRITABLE))
                self._xip_unmap(inode, vmf.pgoff)
            else:
                sparse = self._sparse_page()
                if sparse is None:
                    return VM_FAULT_OOM
                k._get_page(sparse, "xip_sparse_page")
                vmf.page = sparse
                k.decide("xip_file_fault", f"hole → the shared sparse page {sparse.pfn} via vmf->page",
                         "§11a", seen(vma, pfn=sparse.pfn, flags=SHARED_WRITABLE))
                return 0
        if not k.profile.HAVE_VM_MIXEDMAP:
            page = k.pfn_to_page(pfn)
            k._get_page(page, "get_xip_page")
            vmf.page = page
            k.decide("xip_file_fault", f"2.6.25: block {pfn} handed out as vmf->page through its "
                     f"struct page (refcounted like a page-cache page)", "§11a", seen(pfn=pfn))
            return 0
        k.decide("xip_file_fault", f"block at pfn {pfn} → vm_insert_mixed", "§11a", seen(pfn=pfn))
        err = k.vm_insert_mixed(vma, vmf.address, pfn)
        if err == -errno.ENOMEM:
            return VM_FAULT_OOM
        if err:
            from vmlib.errors import KernelBug
            raise KernelBug(f"xip_file_fault: BUG_ON(err): vm_insert_mixed returned {err}")
        return VM_FAULT_NOPAGE
