"""B16: section-table consistency — the complaints binutils' readelf makes about broken section tables.

All low severity: the loader ignores sections, so these mark a table that was corrupted or forged
(fuzzers, anti-analysis) rather than code that runs differently.

The rules (`ElfImage.header_hits`, compiled, over the raw table; section 0 is not checked): sh_offset +
sh_size past the file (not for NOBITS); sh_link out of range, or naming a section of a type the section
cannot link to (symbol and version tables → a string table, relocations and hashes → a symbol table; a
NOBITS target is a stripped section, not a wrong link); sh_info out of range where it names a section
(SHF_INFO_LINK, REL, RELA), or set on a type that has none (PROGBITS, STRTAB, NOTE, init/fini arrays);
sh_entsize not the size of the type's entries (symbols, relocations, dynamic entries). Each kind that
fired comes with how many sections show it and the first three; one low finding per kind is made here.
"""

from __future__ import annotations

from collections.abc import Callable

from bindrift.analysis.elf._native import SectionTable
from bindrift.analysis.elf.check_base import CheckContext, Message, finding, hexv
from bindrift.analysis.elf.reader import Shdr, section_name
from bindrift.schema.triage import CheckResult

# What each kind of inconsistency shows of the offending section: its raw values, formatted only for the
# sections that are listed.
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


def _section_message(check: str) -> Message:
    title, why = _RULES[check]
    values = _VALUES[check]

    def message(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
        elf = ctx.elf
        shdrs = elf.shdrs
        count, listed = hit[0], hit[1:]
        shown = "; ".join(f"#{i} {section_name(elf, shdrs[i]) or '?'}: {values(shdrs, shdrs[i])}" for i in listed)
        return finding(
            check, "B16", "low", title,
            f"{count} section(s): {why} ({shown}). The loader ignores sections, so a corrupted or forged table "
            "misleads analysis tools without changing what runs.",
            count=count, first_section=listed[0],
        )  # fmt: skip

    return message


MESSAGES: dict[str, Message] = {check: _section_message(check) for check in _RULES}
