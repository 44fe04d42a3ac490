"""B16: section-table consistency — the complaints binutils' readelf makes about broken section tables.

All low severity: the loader ignores sections, so these mark a table that was corrupted or forged
(fuzzers, anti-analysis) rather than code that runs differently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from bindrift.analysis.elf._native import SectionTable
from bindrift.analysis.elf.check_base import MAX_LISTED, CheckContext, finding, hexv
from bindrift.analysis.elf.reader import Shdr, section_name
from bindrift.schema.triage import CheckResult

# What each kind of inconsistency found by `SectionTable.inconsistencies` (_native.c) shows of the
# offending section: its raw values, formatted only for the sections that are listed.
_VALUES: dict[str, Callable[[SectionTable, Shdr], str]] = {
    "section_beyond_eof": lambda _t, s: f"sh_offset={hexv(s.offset)}, sh_size={hexv(s.size)}",
    "section_link_out_of_range": lambda t, s: f"sh_link={s.link}, e_shnum={len(t)}",
    "section_link_wrong_type": lambda t, s: f"sh_type={hexv(s.type)} links #{s.link} of {hexv(t[s.link].type)}",
    "section_info_out_of_range": lambda t, s: f"sh_info={s.info}, e_shnum={len(t)}",
    "section_unexpected_info": lambda _t, s: f"sh_type={s.type}, sh_info={s.info}",
    "section_bad_entsize": lambda _t, s: f"sh_type={s.type}, sh_entsize={s.entsize}",
}
# check id → (title, what is wrong)
_RULES = {
    "section_beyond_eof": ("Section data past end of file", "sh_offset + sh_size is past the file size"),
    "section_link_out_of_range": ("Section link out of range", "sh_link ≥ the number of sections"),
    "section_link_wrong_type": ("Section link names the wrong kind of section",
                                "sh_link names a section of a type this section cannot link to"),
    "section_info_out_of_range": ("Section info out of range", "sh_info names a section that does not exist"),
    "section_unexpected_info": ("Unexpected section info value", "sh_info is set on a section type that has none"),
    "section_bad_entsize": ("Invalid section entry size", "sh_entsize does not match the section type's entries"),
}  # fmt: skip


def check_section_table(ctx: CheckContext) -> Iterator[CheckResult]:
    """One low finding per kind of section-table inconsistency, naming the first offending sections.

    The rules (compiled, run over the raw table): sh_offset + sh_size past the file (not for NOBITS);
    sh_link out of range, or naming a section of a type the section cannot link to (symbol and version
    tables → a string table, relocations and hashes → a symbol table; a NOBITS target is a stripped
    section, not a wrong link); sh_info out of range where it names a section (SHF_INFO_LINK, REL, RELA),
    or set on a type that has none (PROGBITS, STRTAB, NOTE, init/fini arrays); sh_entsize not the size of
    the type's entries (symbols, relocations, dynamic entries). Section 0 is not checked.
    """
    elf = ctx.elf
    shdrs = elf.shdrs
    if not shdrs:
        return
    hits: dict[str, list[int]] = {}
    for index, problem in shdrs.inconsistencies(elf.size):
        hits.setdefault(problem, []).append(index)
    for check, found in hits.items():
        title, why = _RULES[check]
        listed = "; ".join(
            f"#{i} {section_name(elf, shdrs[i]) or '?'}: {_VALUES[check](shdrs, shdrs[i])}" for i in found[:MAX_LISTED]
        )
        yield finding(
            check, "B16", "low", title,
            f"{len(found)} section(s): {why} ({listed}). The loader ignores sections, so a corrupted or "
            "forged table misleads analysis tools without changing what runs.",
            count=len(found), first_section=found[0],
        )  # fmt: skip
