"""Scenarios as data: a small vocabulary of steps that both the simulator and a live Linux
kernel can replay (vmlib.real runs them on the live kernel, vmlib.real.compare on the model).

A scenario starts with one process called "parent". Mappings are named ("a", "b"); a name
stands for the same virtual range in every process that inherited it through Fork. Steps
name the process that performs them with `who`. Pages are counted from the start of the
mapping. Every step is a frozen dataclass, so a scenario can be printed, compared, stored
as JSON (`to_dict` / `from_dict`) and replayed any number of times.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

PROTS = ("r", "rw", "none")
MAP_FLAGS = ("private", "shared")


@dataclass(frozen=True)
class Mmap:
    """Anonymous mmap of `npages` pages called `name` (prot 'r', 'rw' or 'none')."""

    name: str
    npages: int = 1
    prot: str = "rw"
    flags: str = "private"
    who: str = "parent"


@dataclass(frozen=True)
class MmapRing:
    """`who` mmaps a kernel ring MAP_SHARED, read-write, as mapping `name`.

    kind 'packet': a packet socket with a TPACKET_V2 receive ring of `npages` 4 KiB blocks;
    its driver (packet_mmap) inserts every page with vm_insert_page at mmap time, which makes
    the vma VM_MIXEDMAP. Live, the socket needs CAP_NET_RAW; it is bound to no protocol, so no
    packet ever arrives. kind 'io_uring': the SQ ring of an io_uring with 4 entries (one page,
    npages must be 1), mapped by io_uring_mmap with vm_insert_pages; no privilege needed, and
    nothing is ever submitted.
    """

    name: str
    npages: int = 4
    kind: str = "packet"
    who: str = "parent"


@dataclass(frozen=True)
class Read:
    """`who` reads one byte at the start of page `page` of mapping `name`."""

    name: str
    page: int = 0
    who: str = "parent"


@dataclass(frozen=True)
class Write:
    """`who` writes `data` at the start of page `page` of mapping `name`."""

    name: str
    page: int = 0
    data: bytes = b"x"
    who: str = "parent"


@dataclass(frozen=True)
class Fork:
    """`who` forks; the new process is called `child`."""

    who: str = "parent"
    child: str = "child"


@dataclass(frozen=True)
class Munmap:
    """`who` unmaps `npages` pages (None: to the end) of mapping `name` from page `page`."""

    name: str
    page: int = 0
    npages: int | None = None
    who: str = "parent"


@dataclass(frozen=True)
class Exit:
    """Process `who` exits; its address space is torn down."""

    who: str = "child"


@dataclass(frozen=True)
class LookSpecial:
    """`who` lists its own special vmas from smaps (VmFlags pf, io or mm), e.g. [vvar].

    Only a live kernel has such vmas; the simulator reports this step as not applicable.
    """

    who: str = "parent"


STEP_TYPES = {cls.__name__: cls for cls in (Mmap, MmapRing, Read, Write, Fork, Munmap, Exit, LookSpecial)}
Step = Mmap | MmapRing | Read | Write | Fork | Munmap | Exit | LookSpecial
RING_MAX_PAGES = 64
RING_KINDS = ("packet", "io_uring")


@dataclass(frozen=True)
class Scenario:
    """A named list of steps with a one-paragraph description of what it shows."""

    name: str
    description: str
    steps: tuple = ()
    expect: str = ""          # what a 6.12 kernel shows, in words (for the side-by-side view)
    tags: tuple = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "tags", tuple(self.tags))
        validate(self)


def describe(step) -> str:
    """One line for a step, e.g. 'child: write b'x' to a[1]'."""
    if isinstance(step, Mmap):
        return f"{step.who}: mmap {step.name} = {step.npages} page(s) {step.prot} {step.flags} anonymous"
    if isinstance(step, MmapRing) and step.kind == "io_uring":
        return f"{step.who}: mmap {step.name} = io_uring SQ ring, {step.npages} page(s), rw shared"
    if isinstance(step, MmapRing):
        return (f"{step.who}: mmap {step.name} = packet socket RX ring, {step.npages} block(s) of "
                "4 KiB, rw shared")
    if isinstance(step, Read):
        return f"{step.who}: read {step.name}[{step.page}]"
    if isinstance(step, Write):
        return f"{step.who}: write {step.data!r} to {step.name}[{step.page}]"
    if isinstance(step, Fork):
        return f"{step.who}: fork -> {step.child}"
    if isinstance(step, Munmap):
        end = "end" if step.npages is None else step.page + step.npages
        return f"{step.who}: munmap {step.name}[{step.page}:{end}]"
    if isinstance(step, Exit):
        return f"{step.who}: exit"
    if isinstance(step, LookSpecial):
        return f"{step.who}: look at own special vmas (smaps pf/io/mm)"
    raise TypeError(f"describe: not a scenario step: {step!r}")


def validate(scenario: Scenario) -> None:
    """Raise ValueError naming the first step that cannot run (unknown process or mapping...)."""
    alive = {"parent"}
    maps: dict[str, dict[str, int]] = {"parent": {}}   # process -> mapping name -> npages
    for i, step in enumerate(scenario.steps):
        where = f"scenario {scenario.name!r} step {i} ({type(step).__name__})"
        if type(step).__name__ not in STEP_TYPES:
            raise TypeError(f"{where}: not a scenario step: {step!r}; use Mmap, MmapRing, Read, Write, "
                            "Fork, Munmap, Exit or LookSpecial from vmlib.scenarios")
        if step.who not in alive:
            raise ValueError(f"{where}: process {step.who!r} does not exist (alive: {sorted(alive)})")
        if isinstance(step, Mmap):
            _check_mmap(where, step, maps[step.who])
            maps[step.who][step.name] = step.npages
        elif isinstance(step, MmapRing):
            _check_ring(where, step, maps[step.who])
            maps[step.who][step.name] = step.npages
        elif isinstance(step, (Read, Write, Munmap)):
            _check_page(where, step, maps[step.who])
        elif isinstance(step, Fork):
            if step.child in alive or step.child in maps:
                raise ValueError(f"{where}: process name {step.child!r} is already used; pick a new name")
            alive.add(step.child)
            maps[step.child] = dict(maps[step.who])
        elif isinstance(step, Exit):
            alive.discard(step.who)


def _check_mmap(where: str, step: Mmap, maps: dict) -> None:
    """ValueError unless the Mmap step has a fresh name, npages >= 1, a known prot and flags."""
    if step.name in maps:
        raise ValueError(f"{where}: mapping {step.name!r} already exists in {step.who!r}")
    if not isinstance(step.npages, int) or step.npages < 1:
        raise ValueError(f"{where}: npages must be an int >= 1, got {step.npages!r}")
    if step.prot not in PROTS:
        raise ValueError(f"{where}: prot must be one of {PROTS}, got {step.prot!r}")
    if step.flags not in MAP_FLAGS:
        raise ValueError(f"{where}: flags must be one of {MAP_FLAGS}, got {step.flags!r}")


def _check_ring(where: str, step: MmapRing, maps: dict) -> None:
    """ValueError unless the MmapRing step has a known kind, a fresh name and a valid size."""
    if step.kind not in RING_KINDS:
        raise ValueError(f"{where}: kind must be one of {RING_KINDS}, got {step.kind!r}")
    if step.name in maps:
        raise ValueError(f"{where}: mapping {step.name!r} already exists in {step.who!r}")
    if step.kind == "io_uring" and step.npages != 1:
        raise ValueError(f"{where}: an io_uring SQ ring of 4 entries is one page: npages must be 1, "
                         f"got {step.npages!r}")
    if not isinstance(step.npages, int) or not 1 <= step.npages <= RING_MAX_PAGES:
        raise ValueError(f"{where}: a ring has 1..{RING_MAX_PAGES} blocks (npages), got {step.npages!r}")


def _check_page(where: str, step, maps: dict) -> None:
    """ValueError unless step.name is a mapping of step.who and its page range lies inside it."""
    if step.name not in maps:
        raise ValueError(f"{where}: process {step.who!r} has no mapping {step.name!r}")
    npages = maps[step.name]
    last = step.page + (getattr(step, "npages", None) or 1) - 1
    if not isinstance(step.page, int) or step.page < 0 or last >= npages:
        raise ValueError(f"{where}: page {step.page} (to {last}) is outside {step.name!r} "
                         f"({npages} pages)")
    if isinstance(step, Write) and not (isinstance(step.data, bytes) and 0 < len(step.data) <= 64):
        raise ValueError(f"{where}: data must be 1..64 bytes, got {step.data!r}")


def processes(scenario: Scenario) -> list[str]:
    """Every process name the scenario uses, in order of creation ('parent' first)."""
    names = ["parent"]
    names += [s.child for s in scenario.steps if isinstance(s, Fork)]
    return names


def mappings(scenario: Scenario) -> dict[str, int]:
    """Every mapping name the scenario creates -> its size in pages, in order of creation."""
    return {s.name: s.npages for s in scenario.steps if isinstance(s, (Mmap, MmapRing))}


def step_to_dict(step) -> dict:
    """A JSON-friendly dict for a step: {'op': 'Write', 'name': 'a', ..., 'data': 'x'}."""
    d = {"op": type(step).__name__}
    for f in fields(step):
        v = getattr(step, f.name)
        d[f.name] = v.hex() if isinstance(v, bytes) else v
    return d


def step_from_dict(d: dict):
    """Inverse of step_to_dict; ValueError for an unknown op."""
    d = dict(d)
    op = d.pop("op", None)
    if op not in STEP_TYPES:
        raise ValueError(f"unknown step op {op!r}: expected one of {sorted(STEP_TYPES)}")
    if op == "Write" and "data" in d:
        d["data"] = bytes.fromhex(d["data"])
    return STEP_TYPES[op](**d)


def to_dict(scenario: Scenario) -> dict:
    """A JSON-friendly dict for a scenario."""
    d = asdict(scenario)
    d["steps"] = [step_to_dict(s) for s in scenario.steps]
    d["tags"] = list(scenario.tags)
    return d


def from_dict(d: dict) -> Scenario:
    """Inverse of to_dict."""
    d = dict(d)
    d["steps"] = [step_from_dict(s) for s in d.get("steps", [])]
    return Scenario(**d)


def _s(name, description, steps, expect, tags=()):
    return Scenario(name=name, description=description, steps=tuple(steps), expect=expect, tags=tags)


SCENARIOS: list[Scenario] = [
    _s("zero_page_read", "Read an untouched private anonymous page.",
       [Mmap("a"), Read("a")],
       "present, mapped to the shared zero page by a special pte: kpagecount 0, ZERO_PAGE, "
       "bits 56 and 61 both 0 (vm_normal_page returns NULL)."),
    _s("two_zero_reads", "Read two untouched pages of one mapping.",
       [Mmap("a", npages=2), Read("a", 0), Read("a", 1)],
       "both pages map the same frame: the zero page."),
    _s("readonly_private_read", "Read a private read-only mapping.",
       [Mmap("a", prot="r"), Read("a")],
       "the zero page, exactly as for a writable mapping."),
    _s("write_after_read", "Read a page (zero page), then write it.",
       [Mmap("a"), Read("a"), Write("a")],
       "the write replaces the zero page by a new zeroed anonymous page: kpagecount 1, "
       "ANON and MMAP, exclusively mapped (bit 56)."),
    _s("write_first", "Write an untouched page.",
       [Mmap("a"), Write("a")],
       "a new anonymous page straight away (no zero page step)."),
    _s("fork_shares_frames", "Write page 0, read page 1, then fork.",
       [Mmap("a", npages=2), Write("a", 0), Read("a", 1), Fork()],
       "parent and child map the same frames: page 0 with kpagecount 2 and bit 56 cleared in "
       "both; page 1 stays the zero page in both, kpagecount 0."),
    _s("child_write_cow", "After fork the child writes a page both share.",
       [Mmap("a"), Write("a", data=b"p"), Fork(), Write("a", data=b"c", who="child"),
        Read("a", who="parent"), Read("a", who="child")],
       "copy on write: the child gets a new frame (kpagecount 1, exclusive); the parent keeps "
       "the old one, now mapped once (kpagecount 1, bit 56 set again); each reads its own byte."),
    _s("parent_write_after_child_exit", "Fork, the child exits, then the parent writes.",
       [Mmap("a"), Write("a", data=b"p"), Fork(), Exit("child"), Write("a", data=b"q")],
       "the parent's pte is read-only after fork but the page has one mapping and one "
       "reference left, so do_wp_page reuses the same frame (no copy)."),
    _s("parent_write_child_alive", "Fork, then the parent writes while the child still maps it.",
       [Mmap("a"), Write("a", data=b"p"), Fork(), Write("a", data=b"q"), Read("a", who="child")],
       "the parent copies (the page is shared), the child keeps the old frame, now with "
       "kpagecount 1, and still reads b'p'."),
    _s("child_exit_restores_exclusive", "Fork then the child exits without touching anything.",
       [Mmap("a"), Write("a"), Fork(), Exit("child")],
       "the parent's frame goes back to kpagecount 1 and bit 56 set."),
    _s("fork_zero_then_child_write", "Read (zero page), fork, the child writes.",
       [Mmap("a"), Read("a"), Fork(), Write("a", who="child")],
       "fork does not copy the zero-page pte: the vma has no anon_vma yet, so vma_needs_copy "
       "skips its page tables and the child starts with no pte there; the child's write then "
       "gets a new anonymous page; the parent still maps the zero page."),
    _s("munmap_whole", "Write a page, then unmap the mapping.",
       [Mmap("a"), Write("a"), Munmap("a")],
       "not present any more."),
    _s("munmap_part", "Write four pages, unmap the middle two.",
       [Mmap("a", npages=4), Write("a", 0), Write("a", 1), Write("a", 2), Write("a", 3),
        Munmap("a", page=1, npages=2)],
       "pages 0 and 3 keep their frames; pages 1 and 2 are gone."),
    _s("munmap_in_child", "Fork, the child unmaps the shared private page.",
       [Mmap("a"), Write("a"), Fork(), Munmap("a", who="child")],
       "the parent's frame drops back to kpagecount 1."),
    _s("shared_anon_write", "Write a shared anonymous mapping.",
       [Mmap("a", flags="shared"), Write("a")],
       "a shmem page: bit 61 (file/shared) set, not ANON, kpagecount 1, exclusive."),
    _s("shared_anon_read", "Read an untouched shared anonymous page.",
       [Mmap("a", flags="shared"), Read("a")],
       "no zero page for shared mappings: a shmem page is allocated (bit 61, kpagecount 1)."),
    _s("shared_anon_fork_write", "Shared anonymous page, fork, the child writes, both read.",
       [Mmap("a", flags="shared"), Write("a", data=b"p"), Fork(), Write("a", data=b"c", who="child"),
        Read("a", who="parent")],
       "fork skips the shared vma's page tables (no anon_vma), so the child's pte is empty "
       "until its write faults the same shmem page in: one frame, kpagecount 2, bit 61 set "
       "in both, no copy on write; the parent reads b'c'."),
    _s("special_mappings", "Look at the process's own special vmas ([vvar] and friends).",
       [LookSpecial()],
       "live kernel only: [vvar] has VmFlags pf io; its ptes are special, so bits 56/61 are 0 "
       "and kpagecount 0. The simulator has no vdso/vvar: not applicable.",
       tags=("live-only",)),
    # A VM_MIXEDMAP that any Linux machine can make: a packet socket's receive ring.
    _s("ring_map", "mmap a packet socket's TPACKET_V2 receive ring (4 blocks of 4 KiB).",
       [MmapRing("r")],
       "packet_mmap inserts all four pages at mmap time (vm_insert_page), so the vma is "
       "VM_MIXEDMAP (VmFlags mm) and every page is present before any access: four different "
       "frames, each an ordinary kernel page (not ANON, MMAP) mapped once: kpagecount 1, "
       "bits 56 (exclusive) and 61 (file) set, as vm_normal_page returns the page.",
       tags=("ring",)),
    _s("ring_read", "Read the first and the last page of the ring.",
       [MmapRing("r"), Read("r", 0), Read("r", 3)],
       "no fault and no change: the ptes were there already; the reads see the zeroed ring "
       "(frame status 0, owned by the kernel).",
       tags=("ring",)),
    _s("ring_write", "Write a ring page, then read it back.",
       [MmapRing("r"), Write("r", 1, b"u"), Read("r", 1)],
       "the shared pte is writable from mmap on: the write lands in the same frame, no copy, "
       "kpagecount stays 1.",
       tags=("ring",)),
    _s("ring_fork", "Write page 0 of the ring, then fork.",
       [MmapRing("r"), Write("r", 0, b"p"), Fork()],
       "fork copies a VM_MIXEDMAP vma's ptes (vma_needs_copy): the child maps the same four "
       "frames at once, each now kpagecount 2 with bit 56 cleared in both processes.",
       tags=("ring",)),
    _s("ring_child_write", "Fork, the child writes a ring page, both read it.",
       [MmapRing("r"), Fork(), Write("r", 0, b"c", who="child"), Read("r", 0, who="parent"),
        Read("r", 0, who="child")],
       "a shared mapping is not COW: the child's write goes to the shared frame, kpagecount "
       "stays 2 and the parent reads b'c'.",
       tags=("ring",)),
    _s("ring_munmap_in_child", "Fork, the child unmaps the middle two pages of the ring.",
       [MmapRing("r"), Fork(), Munmap("r", page=1, npages=2, who="child")],
       "the child's pages 1 and 2 are gone; those two frames drop back to kpagecount 1 and "
       "bit 56 set in the parent; pages 0 and 3 stay shared with kpagecount 2.",
       tags=("ring",)),
    _s("ring_child_exit", "Fork, then the child exits.",
       [MmapRing("r"), Fork(), Exit("child")],
       "the child's mm is torn down: every ring frame is back to kpagecount 1 and exclusive "
       "in the parent; the socket still owns the pages.",
       tags=("ring",)),
    _s("ring_munmap", "Unmap the whole ring.",
       [MmapRing("r"), Munmap("r")],
       "no page present any more; the pages stay allocated, owned by the socket until it "
       "is closed.",
       tags=("ring",)),
    # A second one, which needs no privilege at all: an io_uring's submission-queue ring.
    _s("uring_map", "Set up an io_uring (4 entries) and mmap its SQ ring.",
       [MmapRing("q", npages=1, kind="io_uring")],
       "io_uring_mmap sets VM_DONTEXPAND and inserts the ring page with vm_insert_pages: VmFlags "
       "de mm, the page present at once, an ordinary kernel page mapped once (kpagecount 1, "
       "bits 56 and 61 set, MMAP, not ANON; kernel-facts §14d rows 2-3).",
       tags=("ring", "io_uring")),
    _s("uring_fork_child_write", "mmap the SQ ring, fork, the child writes it, the parent reads.",
       [MmapRing("q", npages=1, kind="io_uring"), Fork(), Write("q", 0, b"c", who="child"),
        Read("q", 0)],
       "fork copies the VM_MIXEDMAP pte: one frame, kpagecount 2; the child's write lands in "
       "it (shared, no COW) and the parent reads b'c'. Nothing is ever submitted, so the "
       "kernel never looks at the byte.",
       tags=("ring", "io_uring")),
]


def get(name: str) -> Scenario:
    """The built-in scenario called `name`; ValueError listing the names otherwise."""
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise ValueError(f"no scenario {name!r}; choose one of {', '.join(s.name for s in SCENARIOS)}")
