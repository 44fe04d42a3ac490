"""B16: section-table consistency — the complaints binutils' readelf makes about broken section tables.

All low severity: the loader ignores sections, so these mark a table that was corrupted or forged
(fuzzers, anti-analysis) rather than code that runs differently.
"""

from __future__ import annotations

from collections.abc import Iterator

from bindrift.analysis.elf.check_base import MAX_LISTED, CheckContext, finding, hexv
from bindrift.analysis.elf.constants import SHT_NOBITS, SHT_STRTAB
from bindrift.analysis.elf.reader import ElfImage, section_name
from bindrift.schema.triage import CheckResult

SHT_SYMTAB, SHT_RELA, SHT_HASH, SHT_DYNAMIC, SHT_NOTE, SHT_REL, SHT_DYNSYM = 2, 4, 5, 6, 7, 9, 11
SHT_INIT_ARRAY, SHT_FINI_ARRAY, SHT_PREINIT_ARRAY = 14, 15, 16
SHT_GNU_HASH, SHT_GNU_VERDEF, SHT_GNU_VERNEED, SHT_GNU_VERSYM = 0x6FFFFFF6, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
SHF_INFO_LINK = 0x40

# Section types whose sh_link must name a section of one of the given types (0 = no link allowed).
_LINK_TARGETS: dict[int, tuple[frozenset[int], bool]] = {
    SHT_SYMTAB: (frozenset({SHT_STRTAB}), False),
    SHT_DYNSYM: (frozenset({SHT_STRTAB}), False),
    SHT_DYNAMIC: (frozenset({SHT_STRTAB}), False),
    SHT_GNU_VERDEF: (frozenset({SHT_STRTAB}), False),
    SHT_GNU_VERNEED: (frozenset({SHT_STRTAB}), False),
    SHT_REL: (frozenset({SHT_SYMTAB, SHT_DYNSYM}), True),
    SHT_RELA: (frozenset({SHT_SYMTAB, SHT_DYNSYM}), True),
    SHT_HASH: (frozenset({SHT_SYMTAB, SHT_DYNSYM}), False),
    SHT_GNU_HASH: (frozenset({SHT_DYNSYM}), False),
    SHT_GNU_VERSYM: (frozenset({SHT_DYNSYM}), False),
}
# Section types that carry no sh_info unless SHF_INFO_LINK says so.
# (SHT_NOBITS is not among them: separate debug files turn every section into NOBITS and keep its sh_info.)
_NO_INFO = frozenset({1, SHT_STRTAB, SHT_NOTE, SHT_INIT_ARRAY, SHT_FINI_ARRAY, SHT_PREINIT_ARRAY})
# Entry sizes by section type, for ELF32 and ELF64.
_ENTSIZE = {SHT_SYMTAB: (16, 24), SHT_DYNSYM: (16, 24), SHT_RELA: (12, 24), SHT_REL: (8, 16), SHT_DYNAMIC: (8, 16)}

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
    """One low finding per kind of section-table inconsistency, naming the first offending sections."""
    elf = ctx.elf
    if not elf.shdrs:
        return
    hits: dict[str, list[tuple[int, str]]] = {}
    for index, problem, values in _inconsistencies(elf):
        hits.setdefault(problem, []).append((index, values))
    for check, found in hits.items():
        title, why = _RULES[check]
        listed = "; ".join(
            f"#{i} {section_name(elf, elf.shdrs[i]) or '?'}: {values}" for i, values in found[:MAX_LISTED]
        )
        yield finding(
            check, "B16", "low", title,
            f"{len(found)} section(s): {why} ({listed}). The loader ignores sections, so a corrupted or "
            "forged table misleads analysis tools without changing what runs.",
            count=len(found), first_section=found[0][0],
        )  # fmt: skip


def _inconsistencies(elf: ElfImage) -> list[tuple[int, str, str]]:
    """(section index, check id, offending values) for every inconsistency; a hot loop, kept flat."""
    shdrs, file_size = elf.shdrs, elf.size
    shnum = len(shdrs)
    wide = elf.bits == 64
    found: list[tuple[int, str, str]] = []
    for i, (_name, typ, flags, _addr, offset, size, link, info, _align, entsize) in enumerate(shdrs):
        if i == 0:
            continue  # section 0 carries the extended-numbering escapes
        if size and offset + size > file_size and typ != SHT_NOBITS:
            found.append((i, "section_beyond_eof", f"sh_offset={hexv(offset)}, sh_size={hexv(size)}"))
        if link >= shnum:
            found.append((i, "section_link_out_of_range", f"sh_link={link}, e_shnum={shnum}"))
        elif typ in _LINK_TARGETS:
            targets, zero_ok = _LINK_TARGETS[typ]
            target = shdrs[link].type
            # A NOBITS target is a section whose bytes were stripped into a debug file, not a wrong link.
            if target not in targets and target != SHT_NOBITS and not (zero_ok and link == 0):
                found.append((i, "section_link_wrong_type", f"sh_type={hexv(typ)} links #{link} of {hexv(target)}"))
        if info:
            if info >= shnum and (flags & SHF_INFO_LINK or typ in (SHT_REL, SHT_RELA)):
                found.append((i, "section_info_out_of_range", f"sh_info={info}, e_shnum={shnum}"))
            elif typ in _NO_INFO and not flags & SHF_INFO_LINK:
                found.append((i, "section_unexpected_info", f"sh_type={typ}, sh_info={info}"))
        if typ in _ENTSIZE and size and entsize != _ENTSIZE[typ][wide]:
            found.append((i, "section_bad_entsize", f"sh_type={typ}, sh_entsize={entsize}"))
    return found
