"""`header-anomaly` checks B1–B17 and A3 of docs/elf-checks.md §5.

Each check names the exact field values that made it fire and why they are wrong. The Linux loader
ignores most of these fields (§2), which is why anti-analysis tricks live there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from bindrift.analysis.elf.check_base import MAX_LISTED, CheckContext
from bindrift.analysis.elf.check_base import finding as _finding
from bindrift.analysis.elf.check_base import hexv as _hex
from bindrift.analysis.elf.constants import (
    EF_PPC64_ABI,
    EM_ARM,
    EM_PPC64,
    ET_CORE,
    ET_DYN,
    ET_EXEC,
    ET_REL,
    PT_INTERP,
    SHT_STRTAB,
    osabi_name,
)
from bindrift.analysis.elf.loaders import is_known_loader
from bindrift.analysis.elf.reader import (
    EHDR_SIZE,
    PHDR_SIZE,
    SHDR_SIZE,
    SHN_XINDEX,
    ElfImage,
)
from bindrift.analysis.elf.section_checks import check_section_table
from bindrift.analysis.elf.segment_checks import check_segment_table
from bindrift.schema.triage import CheckResult


def check_ident(ctx: CheckContext) -> Iterator[CheckResult]:
    """B1: EI_CLASS / EI_DATA / EI_VERSION / e_version invalid or contradicted by the header."""
    elf = ctx.elf
    wrong = []
    if elf.ei_class not in (1, 2):
        wrong.append(f"EI_CLASS={elf.ei_class} (valid: 1=ELF32, 2=ELF64)")
    if elf.ei_data not in (1, 2):
        wrong.append(f"EI_DATA={elf.ei_data} (valid: 1=little-endian, 2=big-endian)")
    if elf.ei_version != 1:
        wrong.append(f"EI_VERSION={elf.ei_version} (must be 1)")
    if elf.version != 1:
        wrong.append(f"e_version={elf.version} (must be 1)")
    if wrong:
        yield _finding(
            "bad_ident", "B1", "high", "Invalid ELF identification fields",
            "; ".join(wrong) + ". No toolchain writes these values and the kernel does not check them, so the "
            "file still runs while analysis tools misread or reject it.",
            ei_class=elf.ei_class, ei_data=elf.ei_data, ei_version=elf.ei_version, e_version=elf.version,
        )  # fmt: skip
    elif elf.layout_inferred:
        layout = f"ELF{elf.bits} {'little' if elf.little else 'big'}-endian"
        yield _finding(
            "ident_contradicts_header", "B1", "high", "ELF identification contradicts the header",
            f"EI_CLASS={elf.ei_class}, EI_DATA={elf.ei_data} claim one layout, but e_phentsize and e_machine "
            f"only make sense as {layout}; the header lies about its own format to mislead parsers.",
            ei_class=elf.ei_class, ei_data=elf.ei_data, parsed_as=layout,
        )  # fmt: skip


def check_ehsize(ctx: CheckContext) -> Iterator[CheckResult]:
    """B2: e_ehsize is not the size of the ELF header for the class."""
    elf = ctx.elf
    expected = EHDR_SIZE[elf.bits]
    if elf.ehsize != expected:
        yield _finding(
            "bad_ehsize", "B2", "medium", "Wrong ELF header size",
            f"e_ehsize={elf.ehsize}, but an ELF{elf.bits} header is {expected} bytes; only hand-crafted files "
            "carry another value.",
            e_ehsize=elf.ehsize, expected=expected,
        )  # fmt: skip


def check_pht_shape(ctx: CheckContext) -> Iterator[CheckResult]:
    """B3: program header entry size wrong, table past end of file, or no table in an executable."""
    elf = ctx.elf
    expected = PHDR_SIZE[elf.bits]
    if elf.phnum_eff and elf.phentsize != expected:
        yield _finding(
            "bad_phentsize", "B3", "medium", "Wrong program header entry size",
            f"e_phentsize={elf.phentsize}, but ELF{elf.bits} program headers are {expected} bytes; the kernel "
            "refuses to load this file (corrupt).",
            e_phentsize=elf.phentsize, expected=expected,
        )  # fmt: skip
    end = elf.phoff + elf.phnum_eff * elf.phentsize
    if elf.phnum_eff and end > elf.size:
        yield _finding(
            "pht_beyond_eof", "B3", "medium", "Program header table extends past end of file",
            f"e_phoff={_hex(elf.phoff)} + e_phnum={elf.phnum_eff} × e_phentsize={elf.phentsize} ends at "
            f"{_hex(end)}, beyond the file size {_hex(elf.size)}; truncated or corrupt.",
            e_phoff=elf.phoff, e_phnum=elf.phnum_eff, e_phentsize=elf.phentsize, size=elf.size,
        )  # fmt: skip
    if ctx.runnable_type and elf.phnum_eff == 0:
        yield _finding(
            "no_program_headers", "B3", "medium", "Executable type without program headers",
            f"e_type={elf.type} is loadable but e_phnum=0 (e_phoff={_hex(elf.phoff)}); the kernel cannot load it.",
            e_type=elf.type, e_phnum=0,
        )  # fmt: skip


def check_pht_overlaps_ehdr(ctx: CheckContext) -> Iterator[CheckResult]:
    """B4: the program header table starts inside the ELF header (the Mumblehard trick)."""
    elf = ctx.elf
    header = EHDR_SIZE[elf.bits]
    if 0 < elf.phoff < header and elf.phnum_eff:
        yield _finding(
            "pht_overlaps_ehdr", "B4", "high", "Program header table overlaps the ELF header",
            f"e_phoff={elf.phoff} lies inside the {header}-byte ELF header, so header bytes double as program "
            "headers; seen in Mumblehard malware to hinder analysis.",
            e_phoff=elf.phoff, header_size=header,
        )  # fmt: skip


def check_sht_bounds(ctx: CheckContext) -> Iterator[CheckResult]:
    """B5: section header table past end of file; B8: e_shoff set without sections."""
    elf = ctx.elf
    if elf.shoff and elf.shnum_eff:
        end = elf.shoff + elf.shnum_eff * elf.shentsize
        if end > elf.size or elf.shoff >= elf.size:
            yield _finding(
                "sht_beyond_eof", "B5", "high", "Section header table points beyond the file",
                f"e_shoff={_hex(elf.shoff)} + e_shnum={elf.shnum_eff} × e_shentsize={elf.shentsize} ends at "
                f"{_hex(end)}, past the file size {_hex(elf.size)}. The loader ignores sections, so the file "
                "runs while disassemblers and readelf fail (the most common header trick in Linux malware).",
                e_shoff=elf.shoff, e_shnum=elf.shnum_eff, e_shentsize=elf.shentsize, size=elf.size,
            )  # fmt: skip
    elif elf.shoff and elf.shnum == 0 and elf.shnum_eff == 0:
        yield _finding(
            "shoff_without_shnum", "B8", "low", "Section table offset without sections",
            f"e_shoff={_hex(elf.shoff)} but e_shnum=0 and no extended count; a stripped or sloppily edited header.",
            e_shoff=elf.shoff, e_shnum=0,
        )  # fmt: skip


def check_shentsize(ctx: CheckContext) -> Iterator[CheckResult]:
    """B6: section header entry size wrong while sections are declared."""
    elf = ctx.elf
    expected = SHDR_SIZE[elf.bits]
    if elf.shnum_eff and elf.shentsize != expected:
        yield _finding(
            "bad_shentsize", "B6", "medium", "Wrong section header entry size",
            f"e_shentsize={elf.shentsize} with e_shnum={elf.shnum_eff}, but ELF{elf.bits} section headers are "
            f"{expected} bytes; section-based tools misparse every section.",
            e_shentsize=elf.shentsize, e_shnum=elf.shnum_eff, expected=expected,
        )  # fmt: skip


def check_shstrndx(ctx: CheckContext) -> Iterator[CheckResult]:
    """B7: section-name string table index out of range or not a string table."""
    elf = ctx.elf
    if not elf.shnum_eff or (elf.shstrndx == SHN_XINDEX and not elf.shdrs):
        return
    idx = elf.shstrndx_eff
    if idx == 0:
        yield _finding(
            "no_shstrtab", "B7", "info", "No section-name string table",
            "e_shstrndx=0 (SHN_UNDEF): legal, but sections have no names.", e_shstrndx=0,
        )  # fmt: skip
    elif idx >= elf.shnum_eff:
        yield _finding(
            "bad_shstrndx", "B7", "high", "Section-name string table index out of range",
            f"e_shstrndx={idx} but there are only {elf.shnum_eff} sections; tools that name sections fail "
            "(seen in 0.57% of Linux malware).",
            e_shstrndx=idx, e_shnum=elf.shnum_eff,
        )  # fmt: skip
    elif elf.shdrs and elf.shdrs[idx].type != SHT_STRTAB:
        yield _finding(
            "bad_shstrndx", "B7", "high", "Section-name string table index names a non-string section",
            f"e_shstrndx={idx} points at a section of sh_type={elf.shdrs[idx].type}, not SHT_STRTAB (3); "
            "section names are garbage to every tool that trusts the header.",
            e_shstrndx=idx, sh_type=elf.shdrs[idx].type,
        )  # fmt: skip


def check_no_sht(ctx: CheckContext) -> Iterator[CheckResult]:
    """B9: loadable file without any section table (sstrip'd, UPX output, or hidden code)."""
    elf = ctx.elf
    if ctx.runnable_type and elf.shoff == 0 and elf.shnum == 0:
        yield _finding(
            "no_section_table", "B9", "info", "No section header table",
            "e_shoff=0 and e_shnum=0: every section was removed, as packers and sstrip do; analysis tools "
            "get no section view of the code.",
            e_shoff=0, e_shnum=0,
        )  # fmt: skip


def check_load_beyond_eof(ctx: CheckContext) -> Iterator[CheckResult]:
    """B10: a PT_LOAD segment's file bytes extend past the end of the file (not in core dumps)."""
    hit = ctx.hits.get("load_beyond_eof")
    if hit is not None:
        elf, (i, count) = ctx.elf, hit
        off, size = ctx.loads[i].offset, ctx.loads[i].filesz
        yield _finding(
            "load_beyond_eof", "B10", "medium", "Loaded segment extends past end of file",
            f"PT_LOAD #{i} has p_offset={_hex(off)} + p_filesz={_hex(size)} = {_hex(off + size)}, beyond the file "
            f"size {_hex(elf.size)} ({count} such segment(s)); the file is truncated or its segments lie.",
            p_offset=off, p_filesz=size, size=elf.size, count=count,
        )  # fmt: skip


def _ppc64_elfv1(elf: ElfImage) -> bool:
    """PPC64 ELFv1: e_entry points at a function descriptor in .opd (data), not at code."""
    return elf.machine == EM_PPC64 and elf.flags & EF_PPC64_ABI != 2


def check_entry(ctx: CheckContext) -> Iterator[CheckResult]:
    """B11: entry point (of an executable or shared object, when set) outside every loaded segment, or in
    none with PF_X (a PPC64 ELFv1 entry is a function descriptor in data: not checked for PF_X)."""
    elf = ctx.elf
    if "entry_outside_segments" in ctx.hits:
        yield _finding(
            "entry_outside_segments", "B11", "high", "Entry point outside every loaded segment",
            f"e_entry={_hex(elf.entry)} is not inside any PT_LOAD segment; the header lies about where "
            "execution starts.",
            e_entry=elf.entry,
        )  # fmt: skip
    elif (hit := ctx.hits.get("entry_not_executable")) is not None:
        flags = ctx.loads[hit[0]].flags
        yield _finding(
            "entry_not_executable", "B11", "medium", "Entry point in a non-executable segment",
            f"e_entry={_hex(elf.entry)} lies in a PT_LOAD without PF_X (flags {flags:#x}).",
            e_entry=elf.entry, p_flags=flags,
        )  # fmt: skip


def check_entry_section(ctx: CheckContext) -> Iterator[CheckResult]:
    """B12: the section table does not place the entry point in executable code (a fake SHT)."""
    elf = ctx.elf
    if not ctx.runnable_type or elf.entry == 0 or not elf.shdrs or _ppc64_elfv1(elf):
        return
    count, inside = elf.shdrs.code_sections(elf.entry, True)  # SHF_EXECINSTR | SHF_ALLOC, not NOBITS
    if count and not inside:
        yield _finding(
            "entry_not_in_code_section", "B12", "medium", "Entry point outside every code section",
            f"e_entry={_hex(elf.entry)} is in none of the {count} SHF_EXECINSTR sections; the "
            "section table does not describe the code that runs (fake or stale section headers).",
            e_entry=elf.entry, code_sections=count,
        )  # fmt: skip


def check_rwx(ctx: CheckContext) -> Iterator[CheckResult]:
    """B13: a loaded segment both writable and executable (not in core dumps)."""
    hit = ctx.hits.get("rwx_segment")
    if hit is None:
        return
    (first, count), loads = hit, len(ctx.loads)
    single = loads == 1
    yield _finding(
        "rwx_segment", "B13", "high" if single else "medium", "Writable and executable segment",
        ("the only PT_LOAD is mapped read-write-execute, so the code can rewrite itself (packers, shellcode "
         "loaders)" if single else f"PT_LOAD #{first} (of {loads}) is mapped read-write-execute"),
        rwx_segments=count, load_segments=loads,
    )  # fmt: skip


def check_load_layout(ctx: CheckContext) -> Iterator[CheckResult]:
    """B14: the first PT_LOAD whose p_vaddr and p_offset differ modulo its (power-of-two) p_align; the first
    two PT_LOAD memory ranges that overlap, in address order (not in core dumps)."""
    if (hit := ctx.hits.get("segment_misaligned")) is not None:
        i = hit[0]
        off, vaddr, align = ctx.loads[i].offset, ctx.loads[i].vaddr, ctx.loads[i].align
        yield _finding(
            "segment_misaligned", "B14", "low", "Misaligned loaded segment",
            f"PT_LOAD #{i}: p_vaddr={_hex(vaddr)} and p_offset={_hex(off)} differ modulo p_align={_hex(align)}.",
            p_vaddr=vaddr, p_offset=off, p_align=align,
        )  # fmt: skip
    if (hit := ctx.hits.get("segments_overlap")) is not None:
        ia, ib = hit
        start_a, end_a, start_b = ctx.loads[ia].vaddr, ctx.loads[ia].vaddr + ctx.loads[ia].memsz, ctx.loads[ib].vaddr
        yield _finding(
            "segments_overlap", "B14", "low", "Loaded segments overlap",
            f"PT_LOAD #{ia} [{_hex(start_a)}, {_hex(end_a)}) overlaps PT_LOAD #{ib} starting at {_hex(start_b)}.",
            first=ia, second=ib,
        )  # fmt: skip


def check_interp(ctx: CheckContext) -> Iterator[CheckResult]:
    """B15: unusual program interpreter, or more than one."""
    interps = ctx.interpreters
    if len(interps) > 1:
        yield _finding(
            "multiple_interpreters", "B15", "high", "More than one program interpreter",
            f"{len(interps)} PT_INTERP entries ({', '.join(repr(p) for p in interps[:MAX_LISTED])}); the kernel uses "
            "one, tools may show another.",
            count=len(interps),
        )  # fmt: skip
    for path in interps[:1]:
        if not path and _interp_bytes_absent(ctx.elf):
            continue  # a separate debug file keeps the program headers but not the bytes they point at
        if not is_known_loader(path):
            yield _finding(
                "unusual_interpreter", "B15", "medium", "Unusual program interpreter",
                f"PT_INTERP is {path!r}, not a known glibc, musl, uClibc, Android or BSD dynamic loader path; "
                "a custom loader runs before the program.",
                interpreter=path,
            )  # fmt: skip


def _interp_bytes_absent(elf: ElfImage) -> bool:
    """A separate debug-info file keeps PT_INTERP but its .interp section is SHT_NOBITS (no bytes)."""
    interp = next((ph for ph in elf.phdrs if ph.type == PT_INTERP), None)
    return interp is not None and elf.shdrs.nobits_cover(interp.vaddr)


def check_etype(ctx: CheckContext) -> Iterator[CheckResult]:
    """B17: executable bit on a file the kernel will not execute; unknown e_type values."""
    elf = ctx.elf
    known = elf.type in (0, ET_REL, ET_EXEC, ET_DYN, ET_CORE) or elf.type >= 0xFE00
    if not known:
        yield _finding(
            "unknown_type", "B17", "low", "Unknown ELF file type",
            f"e_type={_hex(elf.type)} is neither a standard type nor in the OS/processor-specific range.",
            e_type=elf.type,
        )  # fmt: skip
    elif ctx.executable_bit and not ctx.runnable_type:
        yield _finding(
            "odd_type_executable", "B17", "info", "Executable file of a non-executable ELF type",
            f"the file has an execute permission bit but e_type={elf.type} cannot be executed.",
            e_type=elf.type,
        )  # fmt: skip


# EI_OSABI values that Linux binaries carry: SYSV (0) and GNU/Linux (3); 97 on legacy ARM.
_LINUX_OSABI = (0, 3)


def check_osabi(ctx: CheckContext) -> Iterator[CheckResult]:
    """A3: a loadable file claiming a non-Linux OS/ABI; medium when it also names a Linux loader."""
    elf = ctx.elf
    if not ctx.runnable_type or elf.osabi in _LINUX_OSABI or (elf.machine == EM_ARM and elf.osabi == 97):
        return
    name = osabi_name(elf.osabi, elf.machine)
    linux_loader = any("ld-linux" in p or "ld-musl" in p for p in ctx.interpreters)
    if linux_loader:
        detail = (f"EI_OSABI={elf.osabi} ({name}) but the interpreter {ctx.interpreters[0]!r} is a Linux loader: the "
                  "OS/ABI byte lies (the kernel ignores it; Mumblehard declared FreeBSD this way).")  # fmt: skip
    else:
        detail = f"EI_OSABI={elf.osabi} ({name}): built for another OS; Linux does not check this byte."
    yield _finding(
        "osabi_not_linux", "A3", "medium" if linux_loader else "low", "Non-Linux OS/ABI", detail,
        ei_osabi=elf.osabi,
    )  # fmt: skip


CHECKS: tuple[Callable[[CheckContext], Iterator[CheckResult]], ...] = (
    check_ident, check_ehsize, check_pht_shape, check_pht_overlaps_ehdr, check_sht_bounds, check_shentsize,
    check_shstrndx, check_no_sht, check_load_beyond_eof, check_entry, check_entry_section, check_rwx,
    check_load_layout, check_interp, check_section_table, check_segment_table, check_etype, check_osabi,
)  # fmt: skip


def header_checks(elf: ElfImage, interpreters: list[str], executable_bit: bool | None = None) -> list[CheckResult]:
    """Every header anomaly of `elf`."""
    ctx = CheckContext(elf, interpreters, executable_bit, elf.loads, elf.segment_hits())
    return [result for check in CHECKS for result in check(ctx)]
