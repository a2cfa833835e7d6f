"""The lesson sentences that issue 9 found wrong stay corrected (each row names its source).

The lessons' prose is checked against the kernel sources by people; this test keeps the
corrections from sliding back. A row holds: the lesson, a pattern its text must contain (the
corrected fact), a pattern it must not contain (the old, wrong sentence), and the source.
The text is every markdown cell of the lesson plus its quiz bank entries.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vmlib.views import quizbank

ROOT = Path(__file__).resolve().parent.parent

ROWS = [
    ("00", r"bit 9", r"only some architectures had a spare bit",
     "include/asm-x86/pgtable.h @ v2.6.26: _PAGE_BIT_UNUSED1 is bit 9"),
    ("05", r"bit 9 was free", r"no spare bit in the x86 pte of 2008",
     "include/asm-x86/pgtable.h @ v2.6.26 and v2.6.27 (_PAGE_BIT_SPECIAL)"),
    ("01", r"v2\.6\.26 has no `__handle_mm_fault\(\)`", r"`mm/memory\.c` `__handle_mm_fault\(\)`",
     "mm/memory.c:handle_mm_fault @ v2.6.26"),
    ("02", r"Nick Piggin", r"Carsten's\s+\"I think\"",
     "commit b379d79019 (the series' cover letter, by Nick Piggin)"),
    ("03", r"FOLL_GET", r"never refcounted",
     "mm/gup.c:try_grab_folio @ v6.12 (FOLL_GET takes a reference on the zero page)"),
    ("03", r"EACCES", None, "mm/mmap.c:do_mmap_pgoff @ v2.6.26 (EACCES for a file's mode)"),
    ("04", r"PageAnonExclusive", r"6\.12 asks \"is there only one reference\?\"",
     "mm/memory.c:do_wp_page, wp_can_reuse_anon_folio @ v6.12"),
    ("05", r"NONPROMISC_DEVMEM", r"can map \*any\* page,",
     "drivers/char/mem.c:range_is_allowed @ v2.6.26"),
    ("05", r"mspec", r"as the framebuffer driver `FbDev` does",
     "drivers/char/mspec.c:mspec_mmap, drivers/video/fbmem.c:fb_mmap @ v2.6.26"),
    ("05", r"42172d751b", r"from 2\.6\.27, when `->nopfn`\s+was removed\) from its `fault` handler",
     "commit 42172d751b is an ancestor of v2.6.26"),
    ("06", r"memmap", r"why 2\.6\.25 could not",
     "mm/filemap_xip.c:xip_file_mmap @ v2.6.25; arch/s390/mm/vmem.c:add_shared_memory @ v2.6.25"),
    ("07", r"no `get_user_pages_fast` in 2\.6\.26", r"the generic version takes `mmap_sem`",
     "arch/x86/mm/gup.c appears in v2.6.27; none in v2.6.26"),
    ("08", r"pte_mkdevmap", r"their ptes are normal\s+\"devmap\" ptes",
     "arch/x86/include/asm/pgtable.h:pte_mkdevmap @ v6.12; mm/memory.c:vm_normal_page @ v6.12"),
    ("05", r"above pfn 256", r"beyond the first megabyte",
     "arch/x86/mm/init_64.c:devmem_is_allowed @ v2.6.26 (pagenr <= 256 is allowed)"),
    ("08", r"refcount of a small folio", r"adds 1024 \(`GUP_PIN_COUNTING_BIAS`\) to the refcount so",
     "mm/gup.c:try_grab_folio @ v6.12 (a large folio: +1 and _pincount)"),
    ("08", r"date\s+is not checked", r"restored in 2\.6\.32\)|replaced around v4\.0 \(2015\)\s+by",
     "no tree at hand covers v2.6.32 or v4.0 (kernel-facts §15)"),
    ("07", r"`_PAGE_SPECIAL` to `_PAGE_CHG_MASK`", None,
     "include/asm-x86/pgtable.h @ v2.6.27; commit a0a8f5364a (kernel-facts §16a row 3)"),
]


def lesson_text(number: str) -> str:
    """Every markdown cell of lesson `number`, and the quizzes it shows (from the quiz bank)."""
    [path] = ROOT.glob(f"course/{number}_*.ipynb")
    cells = json.loads(path.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    quizzes = [q._asdict() for qid, q in quizbank.QUIZZES.items() if qid.startswith(f"{number}-")]
    return text + "\n" + "\n".join(json.dumps(q, ensure_ascii=False) for q in quizzes)


@pytest.mark.parametrize("lesson,right,wrong,source", ROWS, ids=[f"{r[0]}:{r[1][:24]}" for r in ROWS])
def test_corrected_lesson_fact(lesson, right, wrong, source):
    text = lesson_text(lesson)
    assert re.search(right, text), f"lesson {lesson} no longer states the fact /{right}/ ({source})"
    if wrong:
        assert not re.search(wrong, text), f"lesson {lesson} says /{wrong}/ again, which {source} contradicts"


def test_the_rows_can_fail():
    """The check finds a planted wrong sentence and a missing fact."""
    assert re.search(ROWS[2][2], "Read `mm/memory.c` `__handle_mm_fault()` in v2.6.26")
    assert not re.search(ROWS[0][1], "x86 had no free bit")
