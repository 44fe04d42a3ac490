"""B10/B14 extras: program-header consistency — what readelf reports about broken program headers.

Low severity: these mark corrupted or forged tables; the serious cases (loaded bytes past the end of
the file, entry outside code) have checks of their own.
"""

from __future__ import annotations

from collections.abc import Iterator

from bindrift.analysis.elf.check_base import CheckContext, finding, hexv
from bindrift.analysis.elf.constants import ET_CORE, PT_DYNAMIC, PT_LOAD, PT_PHDR
from bindrift.analysis.elf.reader import ElfImage
from bindrift.schema.triage import CheckResult

SHT_DYNAMIC = 6


def check_segment_table(ctx: CheckContext) -> Iterator[CheckResult]:
    """Segments whose sizes, placement or section counterparts contradict each other."""
    elf = ctx.elf
    if elf.type == ET_CORE or not elf.phdrs:
        return
    for i, ph in enumerate(ctx.loads):
        if ph.filesz > ph.memsz:
            yield finding(
                "segment_filesz_exceeds_memsz", "B14", "low", "Segment file size larger than its memory size",
                f"PT_LOAD #{i}: p_filesz={hexv(ph.filesz)} > p_memsz={hexv(ph.memsz)}; the loader maps fewer bytes "
                "than the file claims.",
                p_filesz=ph.filesz, p_memsz=ph.memsz,
            )  # fmt: skip
            break
    for i, ph in enumerate(elf.phdrs):
        if ph.type != PT_LOAD and ph.filesz and ph.offset + ph.filesz > elf.size:
            yield finding(
                "segment_beyond_eof", "B10", "low", "Segment extends past end of file",
                f"program header #{i} (p_type={hexv(ph.type)}) has p_offset={hexv(ph.offset)} + "
                f"p_filesz={hexv(ph.filesz)} past the file size {hexv(elf.size)}.",
                p_type=ph.type, p_offset=ph.offset, p_filesz=ph.filesz, size=elf.size,
            )  # fmt: skip
            break
    yield from _phdr_not_loaded(ctx)
    yield from _dynamic_mismatch(elf)


def _phdr_not_loaded(ctx: CheckContext) -> Iterator[CheckResult]:
    phdr = next((ph for ph in ctx.elf.phdrs if ph.type == PT_PHDR), None)
    if phdr is None or not ctx.runnable_type or not ctx.loads:
        return
    if not any(ld.vaddr <= phdr.vaddr and phdr.vaddr + phdr.filesz <= ld.vaddr + ld.filesz for ld in ctx.loads):
        yield finding(
            "phdr_not_loaded", "B14", "low", "PT_PHDR not covered by a loaded segment",
            f"PT_PHDR at p_vaddr={hexv(phdr.vaddr)} (size {hexv(phdr.filesz)}) lies in no PT_LOAD; the program "
            "header table the loader reports to the program is not in memory.",
            p_vaddr=phdr.vaddr, p_filesz=phdr.filesz,
        )  # fmt: skip


def _dynamic_mismatch(elf: ElfImage) -> Iterator[CheckResult]:
    dynamics = [ph for ph in elf.phdrs if ph.type == PT_DYNAMIC]
    if len(dynamics) > 1:
        yield finding(
            "multiple_dynamic_segments", "B14", "low", "More than one PT_DYNAMIC",
            f"{len(dynamics)} PT_DYNAMIC program headers; the loader uses the first, tools may read another.",
            count=len(dynamics),
        )  # fmt: skip
    if not dynamics or not elf.shdrs or elf.shdrs.has_type(SHT_DYNAMIC):
        return
    if elf.shdrs.sized_at(dynamics[0].vaddr):
        return  # a separate debug file keeps .dynamic at its address, as SHT_NOBITS
    yield finding(
        "dynamic_without_section", "B14", "low", "Dynamic segment without a .dynamic section",
        f"PT_DYNAMIC at p_offset={hexv(dynamics[0].offset)} has no .dynamic section in a {len(elf.shdrs)}-entry "
        "section table; the sections do not describe the file the loader sees.",
        p_offset=dynamics[0].offset,
    )  # fmt: skip
