"""Built-in drivers: /dev/mem, an ext2-xip-like filesystem, a framebuffer, shared anonymous memory,
a packet socket's receive ring."""

from vmlib.drivers.devmem import DevMem
from vmlib.drivers.fbdev import FbDev
from vmlib.drivers.packet import PacketRing
from vmlib.drivers.shmem import Shmem
from vmlib.drivers.xipfs import XipFs

__all__ = ["DevMem", "FbDev", "PacketRing", "Shmem", "XipFs"]
