"""vmlib.source(name): the model's own code for a kernel function, so lessons quote it exactly.

Lessons show how the simulator decides (say, vm_normal_page) by quoting the function itself
rather than a copy that could drift from it.
"""

from __future__ import annotations

import inspect

_MODULES = ("vmlib.memory", "vmlib.gup", "vmlib.process", "vmlib.kernel", "vmlib.drivers.xipfs",
            "vmlib.drivers.devmem", "vmlib.drivers.fbdev", "vmlib.flags", "vmlib.pgtable",
            "vmlib.mprotect", "vmlib.madvise", "vmlib.mremap")


def source(name: str) -> str:
    """The source of the model function (or class) `name`, e.g. source("do_wp_page")."""
    import importlib
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"source: give a function name such as 'vm_normal_page', got {name!r}")
    for modname in _MODULES:
        obj = getattr(importlib.import_module(modname), name, None)
        if obj is not None and (inspect.isfunction(obj) or inspect.isclass(obj)) \
                and obj.__module__ == modname:
            return inspect.getsource(obj)
    raise ValueError(f"source: the model has no function {name!r}; look in {', '.join(_MODULES)}")
