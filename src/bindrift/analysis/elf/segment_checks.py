"""B10/B14 extras: program-header consistency — what readelf reports about broken program headers.

Low severity: these mark corrupted or forged tables; the serious cases (loaded bytes past the end of
the file, entry outside code) have checks of their own.

The conditions (`ElfImage.header_hits`, compiled; none in core dumps): the first PT_LOAD with p_filesz >
p_memsz; the first other segment whose file bytes pass the end of the file; a PT_PHDR (of an executable or
shared object) inside no PT_LOAD's file bytes; more than one PT_DYNAMIC; a PT_DYNAMIC with neither an
SHT_DYNAMIC section nor a section of any size at its address in a section table (a separate debug file
keeps .dynamic there as SHT_NOBITS). The messages are made here.
"""

from __future__ import annotations

from bindrift.analysis.elf.check_base import CheckContext, Message, finding, hexv
from bindrift.schema.triage import CheckResult


def _filesz_exceeds_memsz(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
    i, ph = hit[0], ctx.loads[hit[0]]
    return finding(
        "segment_filesz_exceeds_memsz", "B14", "low", "Segment file size larger than its memory size",
        f"PT_LOAD #{i}: p_filesz={hexv(ph.filesz)} > p_memsz={hexv(ph.memsz)}; the loader maps fewer bytes "
        "than the file claims.",
        p_filesz=ph.filesz, p_memsz=ph.memsz,
    )  # fmt: skip


def _segment_beyond_eof(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
    elf = ctx.elf
    i, ph = hit[0], elf.phdrs[hit[0]]
    return finding(
        "segment_beyond_eof", "B10", "low", "Segment extends past end of file",
        f"program header #{i} (p_type={hexv(ph.type)}) has p_offset={hexv(ph.offset)} + "
        f"p_filesz={hexv(ph.filesz)} past the file size {hexv(elf.size)}.",
        p_type=ph.type, p_offset=ph.offset, p_filesz=ph.filesz, size=elf.size,
    )  # fmt: skip


def _phdr_not_loaded(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
    phdr = ctx.elf.phdrs[hit[0]]
    return finding(
        "phdr_not_loaded", "B14", "low", "PT_PHDR not covered by a loaded segment",
        f"PT_PHDR at p_vaddr={hexv(phdr.vaddr)} (size {hexv(phdr.filesz)}) lies in no PT_LOAD; the program "
        "header table the loader reports to the program is not in memory.",
        p_vaddr=phdr.vaddr, p_filesz=phdr.filesz,
    )  # fmt: skip


def _multiple_dynamic(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
    return finding(
        "multiple_dynamic_segments", "B14", "low", "More than one PT_DYNAMIC",
        f"{hit[0]} PT_DYNAMIC program headers; the loader uses the first, tools may read another.",
        count=hit[0],
    )  # fmt: skip


def _dynamic_without_section(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
    elf = ctx.elf
    dynamic = elf.phdrs[hit[0]]
    return finding(
        "dynamic_without_section", "B14", "low", "Dynamic segment without a .dynamic section",
        f"PT_DYNAMIC at p_offset={hexv(dynamic.offset)} has no .dynamic section in a {len(elf.shdrs)}-entry "
        "section table; the sections do not describe the file the loader sees.",
        p_offset=dynamic.offset,
    )  # fmt: skip


MESSAGES: dict[str, Message] = {
    "segment_filesz_exceeds_memsz": _filesz_exceeds_memsz,
    "segment_beyond_eof": _segment_beyond_eof,
    "phdr_not_loaded": _phdr_not_loaded,
    "multiple_dynamic_segments": _multiple_dynamic,
    "dynamic_without_section": _dynamic_without_section,
}
