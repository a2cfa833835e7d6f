"""Built-in drivers: /dev/mem, an ext2-xip-like filesystem, a framebuffer, shared anonymous memory,
a packet socket's receive ring, an io_uring ring."""

from vmlib.drivers.devmem import DevMem
from vmlib.drivers.fbdev import FbDev
from vmlib.drivers.rings import IoUringRing, PacketRing
from vmlib.drivers.shmem import Shmem
from vmlib.drivers.xipfs import XipFs

__all__ = ["DevMem", "FbDev", "IoUringRing", "PacketRing", "Shmem", "XipFs"]
