"""The lessons' self-check quizzes, kept out of the notebooks.

A lesson cell says only `Quiz.from_bank("04-1")`, so neither the right option nor the
explanation is in the notebook a student opens; they see them after they choose. Ids are
"<lesson>-<n>" and say nothing about the answer. The right answers sit at balanced
positions (tests/test_hidden_answers.py checks the spread): reorder options freely, but
keep `answer` and `feedback` in step with them.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    question: str
    options: list
    answer: int                      # index of the right option
    explanation: str                 # shown with a right answer
    feedback: list | None = None     # one line per option, shown when it is chosen


QUIZZES: dict[str, Entry] = {
    "00-1": Entry(
        question="Right after `p.mmap(PAGE_SIZE)` returns, what does the kernel have for that address?",
        options=[
            "A vma and a pte pointing at a fresh zeroed page",
            "Nothing at all until the first access",
            "A vma, but no pte and no physical page yet",
        ],
        answer=2,
        explanation=("mmap only creates the vma (the promise that the range is valid); the page and the pte "
                     "come from the first fault."),
        feedback=[
            "That is what the first *fault* does, not mmap.",
            "mmap does record something: find_vma(a) finds it.",
            "",
        ],
    ),
    "01-1": Entry(
        question="Addresses `0x40000000` and `0x40200000` are both mapped. How many pte tables do they use?",
        options=[
            "Two: their pmd indexes differ",
            "One: they are in the same 2 MiB",
            "Four: one per level",
        ],
        answer=0,
        explanation=("Bits 29-21 (the pmd index) are 0 and 1; each pmd entry points at its own pte table, "
                     "which covers 2 MiB."),
    ),
    "01-2": Entry(
        question="Which pte bit does the CPU ignore completely?",
        options=[
            "D (dirty)",
            "A (accessed)",
            "W (writable)",
            "S (special)",
        ],
        answer=3,
        explanation=("The special bit is a software bit: only the kernel's own code (vm_normal_page, "
                     "get_user_pages_fast) reads it."),
        feedback=[
            "The CPU sets D on every write.",
            "The CPU sets A on every access.",
            "The CPU checks W on every write: that is how COW faults happen.",
            "",
        ],
    ),
    "02-1": Entry(
        question="A driver calls `get_user_pages` on a page that one process maps. What changes?",
        options=[
            "count +1, mapcount +1",
            "count +1 only",
            "mapcount +1 only",
            "nothing until the I/O ends",
        ],
        answer=1,
        explanation="A pin is a reference without a pte: page_count goes up, page_mapcount stays.",
        feedback=[
            "No new pte was created, so mapcount cannot change.",
            "",
            "mapcount counts ptes; get_user_pages creates none.",
            "The reference is taken at once: that is what keeps the page alive during I/O.",
        ],
    ),
    "02-2": Entry(
        question=("With a 56-byte struct page and 4 KiB pages, from how many guests on does the memmap of a "
                  "shared image outweigh the image?"),
        options=[
            "56",
            "64",
            "74",
            "128",
        ],
        answer=2,
        explanation="4096 / 56 = 73.1, so 74 guests are the first whose memmaps together exceed the image.",
        feedback=[
            "That is the struct page size, not a number of guests.",
            "That is the break-even for 64 bytes (4096 / 64).",
            "",
            "That is the break-even for 32 bytes (4096 / 32).",
        ],
    ),
    "03-1": Entry(
        question="Is `mmap(..., PROT_READ, MAP_PRIVATE)` of anonymous memory a COW mapping?",
        options=[
            "Yes: VM_MAYWRITE is set and VM_SHARED is not",
            "No: it can never be written",
            "Only after mprotect adds PROT_WRITE",
        ],
        answer=0,
        explanation=("is_cow_mapping looks at VM_MAYWRITE, not VM_WRITE: a private mapping may become "
                     "writable later (mprotect, ptrace), so it is COW from the start."),
        feedback=[
            "",
            "mprotect or ptrace can still write to it.",
            "is_cow_mapping checks VM_MAYWRITE, which is already set.",
        ],
    ),
    "03-2": Entry(
        question=("On 6.12, a process reads 1000 untouched pages of private anonymous memory. How much does "
                  "its anonymous rss grow?"),
        options=[
            "1000 pages",
            "0 pages",
            "1 page (the zero page)",
        ],
        answer=1,
        explanation=("Every pte maps the zero page with the special bit; vm_normal_page returns NULL for it,"
                     " so nothing is counted in rss, refcount or mapcount."),
        feedback=[
            "That was 2.6.26's answer.",
            "",
            "The zero page is not counted at all: it is special.",
        ],
    ),
    "04-1": Entry(
        question="Right after fork, which ptes of a private written page are read-only?",
        options=[
            "Only the child's",
            "Only the parent's",
            "Neither: the page is copied at fork",
            "Both",
        ],
        answer=3,
        explanation=("copy_page_range write-protects the parent's pte and the child's copy, so whichever "
                     "writes first takes the COW fault."),
        feedback=[
            "If the parent's stayed writable, its writes would show through in the child.",
            "The child's copy is write-protected too.",
            "fork copies ptes, not pages.",
            "",
        ],
    ),
    "04-2": Entry(
        question=("After fork the child writes first and gets a copy. Then the parent writes. On 2.6.26, "
                  "what does `do_wp_page` do for the parent?"),
        options=[
            "Reuses the page: mapcount is back to 1",
            "Copies the page again",
            "Nothing: the pte was writable",
        ],
        answer=0,
        explanation=("The child's COW dropped the old page's mapcount to 1, so the parent's fault just makes"
                     " its pte writable again."),
        feedback=[
            "",
            "Nobody else maps it any more; a copy would be wasted.",
            "fork made the parent's pte read-only, so the write still faults.",
        ],
    ),
    "05-1": Entry(
        question=("In a private /dev/mem mapping, vm_normal_page finds a pte whose pfn equals vm_pgoff + "
                  "(addr - vm_start) / PAGE_SIZE. What is it?"),
        options=[
            "a COWed anonymous page",
            "a bug",
            "the raw, un-COWed pfn: special",
        ],
        answer=2,
        explanation="Linear means it is still the pfn remap_pfn_range put there [§1a row 3].",
    ),
    "05-2": Entry(
        question="Why does /dev/mem not take a reference on RAM pages it maps?",
        options=[
            ("the mapping does not own those pages; dropping references at munmap could free pages the "
             "kernel still uses"),
            "RAM mapped by /dev/mem has no struct page",
            "refcounting is too slow for device memory",
        ],
        answer=0,
        explanation="The pages exist and are pfn_valid, but PFNMAP must not touch them.",
    ),
    "06-1": Entry(
        question=("On 2.6.26/x86 a VM_MIXEDMAP driver calls vm_insert_mixed with a RAM pfn. What does the "
                  "mapping do to that page?"),
        options=[
            "nothing: MIXEDMAP ptes are raw",
            "BUGs, RAM is not allowed",
            "takes a reference and a mapcount, like vm_insert_page",
        ],
        answer=2,
        explanation="pfn_valid → insert_page: refcount +1, mapcount +1, file rss +1 [§5a].",
    ),
    "06-2": Entry(
        question=("Why can a private VM_MIXEDMAP be COWed at any layout while a private VM_PFNMAP must be "
                  "linear?"),
        options=[
            "MIXEDMAP mappings are never COW mappings",
            "vm_normal_page decides MIXEDMAP ptes by pfn_valid, not by the position of the pfn",
            "MIXEDMAP copies every page at mmap time",
        ],
        answer=1,
        explanation=("A COWed page is RAM with a struct page, so pfn_valid says 'page'; a device pfn says "
                     "'special'."),
    ),
    "07-1": Entry(
        question=("On 2.6.26/s390, vm_normal_page meets a special pte in a VM_MIXEDMAP vma, and the pfn is "
                  "ordinary RAM with a struct page. What does it return?"),
        options=[
            "NULL: the bit alone decides",
            "the struct page, because the pfn is valid",
            "it consults vm_pgoff",
        ],
        answer=0,
        explanation=("With the bit, vm_pgoff and pfn_valid are not consulted [§1b row 2]; the vma flags "
                     "serve only a debug check (a special pte outside a PFNMAP/MIXEDMAP vma is a VM_BUG_ON)."),
    ),
    "07-2": Entry(
        question="Why can get_user_pages_fast not use the VM_PFNMAP linear rule?",
        options=[
            "the linear rule is too slow",
            "PFNMAP vmas have no page tables",
            "it has no vma: it walks page tables with interrupts off and no mmap_sem",
        ],
        answer=2,
        explanation="No vma means no vm_flags and no vm_pgoff; only the pte is available [§9a].",
    ),
    "08-1": Entry(
        question="On 6.12/x86, a read fault on a fresh private anonymous page maps...",
        options=[
            "the zero page with a special pte, no refcount",
            "a new zeroed page, refcount 1",
            "nothing until the first write",
        ],
        answer=0,
        explanation="do_anonymous_page maps the zero pfn with pte_mkspecial [§6a].",
    ),
    "08-2": Entry(
        question="A page is pinned with FOLL_PIN, then the process forks. On 6.12, who gets a copy?",
        options=[
            "the parent, at its next write",
            "the child, immediately at fork",
            "nobody: pinned pages are shared",
        ],
        answer=1,
        explanation=("copy_present_ptes gives the child its own copy when the page is exclusive to the "
                     "parent and may be DMA-pinned [§7]."),
    ),
}
