"""`header-anomaly` checks B1–B17 and A3 of docs/elf-checks.md §5.

Each message names the exact field values that made its condition hold and why they are wrong. The Linux
loader ignores most of these fields (§2), which is why anti-analysis tricks live there. The conditions are
tested in one compiled pass (`ElfImage.header_hits`); only the interpreter's path (B15) is judged here.
"""

from __future__ import annotations

from bindrift.analysis.elf import section_checks, segment_checks
from bindrift.analysis.elf.check_base import MAX_LISTED, CheckContext, Message
from bindrift.analysis.elf.check_base import finding as _finding
from bindrift.analysis.elf.check_base import hexv as _hex
from bindrift.analysis.elf.constants import PT_INTERP, osabi_name
from bindrift.analysis.elf.loaders import is_known_loader
from bindrift.analysis.elf.reader import EHDR_SIZE, PHDR_SIZE, SHDR_SIZE, ElfImage
from bindrift.schema.triage import CheckResult


def _bad_ident(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B1: EI_CLASS / EI_DATA / EI_VERSION / e_version invalid."""
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
    return _finding(
        "bad_ident", "B1", "high", "Invalid ELF identification fields",
        "; ".join(wrong) + ". No toolchain writes these values and the kernel does not check them, so the "
        "file still runs while analysis tools misread or reject it.",
        ei_class=elf.ei_class, ei_data=elf.ei_data, ei_version=elf.ei_version, e_version=elf.version,
    )  # fmt: skip


def _ident_contradicts_header(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B1: EI_CLASS / EI_DATA valid but contradicted by the header (the layout was inferred)."""
    elf = ctx.elf
    layout = f"ELF{elf.bits} {'little' if elf.little else 'big'}-endian"
    return _finding(
        "ident_contradicts_header", "B1", "high", "ELF identification contradicts the header",
        f"EI_CLASS={elf.ei_class}, EI_DATA={elf.ei_data} claim one layout, but e_phentsize and e_machine "
        f"only make sense as {layout}; the header lies about its own format to mislead parsers.",
        ei_class=elf.ei_class, ei_data=elf.ei_data, parsed_as=layout,
    )  # fmt: skip


def _bad_ehsize(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B2: e_ehsize is not the size of the ELF header for the class."""
    elf = ctx.elf
    expected = EHDR_SIZE[elf.bits]
    return _finding(
        "bad_ehsize", "B2", "medium", "Wrong ELF header size",
        f"e_ehsize={elf.ehsize}, but an ELF{elf.bits} header is {expected} bytes; only hand-crafted files "
        "carry another value.",
        e_ehsize=elf.ehsize, expected=expected,
    )  # fmt: skip


def _bad_phentsize(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B3: program header entry size wrong while program headers are declared."""
    elf = ctx.elf
    expected = PHDR_SIZE[elf.bits]
    return _finding(
        "bad_phentsize", "B3", "medium", "Wrong program header entry size",
        f"e_phentsize={elf.phentsize}, but ELF{elf.bits} program headers are {expected} bytes; the kernel "
        "refuses to load this file (corrupt).",
        e_phentsize=elf.phentsize, expected=expected,
    )  # fmt: skip


def _pht_beyond_eof(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B3: the program header table passes the end of the file."""
    elf = ctx.elf
    end = elf.phoff + elf.phnum_eff * elf.phentsize
    return _finding(
        "pht_beyond_eof", "B3", "medium", "Program header table extends past end of file",
        f"e_phoff={_hex(elf.phoff)} + e_phnum={elf.phnum_eff} × e_phentsize={elf.phentsize} ends at "
        f"{_hex(end)}, beyond the file size {_hex(elf.size)}; truncated or corrupt.",
        e_phoff=elf.phoff, e_phnum=elf.phnum_eff, e_phentsize=elf.phentsize, size=elf.size,
    )  # fmt: skip


def _no_program_headers(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B3: no program header table in an executable or shared object."""
    elf = ctx.elf
    return _finding(
        "no_program_headers", "B3", "medium", "Executable type without program headers",
        f"e_type={elf.type} is loadable but e_phnum=0 (e_phoff={_hex(elf.phoff)}); the kernel cannot load it.",
        e_type=elf.type, e_phnum=0,
    )  # fmt: skip


def _pht_overlaps_ehdr(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B4: the program header table starts inside the ELF header (the Mumblehard trick)."""
    elf = ctx.elf
    header = EHDR_SIZE[elf.bits]
    return _finding(
        "pht_overlaps_ehdr", "B4", "high", "Program header table overlaps the ELF header",
        f"e_phoff={elf.phoff} lies inside the {header}-byte ELF header, so header bytes double as program "
        "headers; seen in Mumblehard malware to hinder analysis.",
        e_phoff=elf.phoff, header_size=header,
    )  # fmt: skip


def _sht_beyond_eof(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B5: the section header table passes the end of the file."""
    elf = ctx.elf
    end = elf.shoff + elf.shnum_eff * elf.shentsize
    return _finding(
        "sht_beyond_eof", "B5", "high", "Section header table points beyond the file",
        f"e_shoff={_hex(elf.shoff)} + e_shnum={elf.shnum_eff} × e_shentsize={elf.shentsize} ends at "
        f"{_hex(end)}, past the file size {_hex(elf.size)}. The loader ignores sections, so the file "
        "runs while disassemblers and readelf fail (the most common header trick in Linux malware).",
        e_shoff=elf.shoff, e_shnum=elf.shnum_eff, e_shentsize=elf.shentsize, size=elf.size,
    )  # fmt: skip


def _shoff_without_shnum(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B8: e_shoff set without sections."""
    elf = ctx.elf
    return _finding(
        "shoff_without_shnum", "B8", "low", "Section table offset without sections",
        f"e_shoff={_hex(elf.shoff)} but e_shnum=0 and no extended count; a stripped or sloppily edited header.",
        e_shoff=elf.shoff, e_shnum=0,
    )  # fmt: skip


def _bad_shentsize(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B6: section header entry size wrong while sections are declared."""
    elf = ctx.elf
    expected = SHDR_SIZE[elf.bits]
    return _finding(
        "bad_shentsize", "B6", "medium", "Wrong section header entry size",
        f"e_shentsize={elf.shentsize} with e_shnum={elf.shnum_eff}, but ELF{elf.bits} section headers are "
        f"{expected} bytes; section-based tools misparse every section.",
        e_shentsize=elf.shentsize, e_shnum=elf.shnum_eff, expected=expected,
    )  # fmt: skip


def _shstrndx_undef(_ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B7: no section-name string table."""
    return _finding(
        "no_shstrtab", "B7", "info", "No section-name string table",
        "e_shstrndx=0 (SHN_UNDEF): legal, but sections have no names.", e_shstrndx=0,
    )  # fmt: skip


def _shstrndx_out_of_range(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B7: the section-name string table index is out of range."""
    elf = ctx.elf
    idx = elf.shstrndx_eff
    return _finding(
        "bad_shstrndx", "B7", "high", "Section-name string table index out of range",
        f"e_shstrndx={idx} but there are only {elf.shnum_eff} sections; tools that name sections fail "
        "(seen in 0.57% of Linux malware).",
        e_shstrndx=idx, e_shnum=elf.shnum_eff,
    )  # fmt: skip


def _shstrndx_not_strtab(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B7: the section-name string table index names a section that is not a string table."""
    elf = ctx.elf
    idx = elf.shstrndx_eff
    return _finding(
        "bad_shstrndx", "B7", "high", "Section-name string table index names a non-string section",
        f"e_shstrndx={idx} points at a section of sh_type={elf.shdrs[idx].type}, not SHT_STRTAB (3); "
        "section names are garbage to every tool that trusts the header.",
        e_shstrndx=idx, sh_type=elf.shdrs[idx].type,
    )  # fmt: skip


def _no_section_table(_ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B9: loadable file without any section table (sstrip'd, UPX output, or hidden code)."""
    return _finding(
        "no_section_table", "B9", "info", "No section header table",
        "e_shoff=0 and e_shnum=0: every section was removed, as packers and sstrip do; analysis tools "
        "get no section view of the code.",
        e_shoff=0, e_shnum=0,
    )  # fmt: skip


def _load_beyond_eof(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
    """B10: a PT_LOAD segment's file bytes extend past the end of the file (not in core dumps)."""
    (i, count), elf = hit, ctx.elf
    off, size = ctx.loads[i].offset, ctx.loads[i].filesz
    return _finding(
        "load_beyond_eof", "B10", "medium", "Loaded segment extends past end of file",
        f"PT_LOAD #{i} has p_offset={_hex(off)} + p_filesz={_hex(size)} = {_hex(off + size)}, beyond the file "
        f"size {_hex(elf.size)} ({count} such segment(s)); the file is truncated or its segments lie.",
        p_offset=off, p_filesz=size, size=elf.size, count=count,
    )  # fmt: skip


def _entry_outside_segments(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B11: the entry point (of an executable or shared object, when set) lies in no loaded segment."""
    entry = ctx.elf.entry
    return _finding(
        "entry_outside_segments", "B11", "high", "Entry point outside every loaded segment",
        f"e_entry={_hex(entry)} is not inside any PT_LOAD segment; the header lies about where "
        "execution starts.",
        e_entry=entry,
    )  # fmt: skip


def _entry_not_executable(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
    """B11: the entry point lies in no segment with PF_X (a PPC64 ELFv1 entry is a function descriptor in
    data: not checked)."""
    entry, flags = ctx.elf.entry, ctx.loads[hit[0]].flags
    return _finding(
        "entry_not_executable", "B11", "medium", "Entry point in a non-executable segment",
        f"e_entry={_hex(entry)} lies in a PT_LOAD without PF_X (flags {flags:#x}).",
        e_entry=entry, p_flags=flags,
    )  # fmt: skip


def _entry_not_in_code_section(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
    """B12: the section table does not place the entry point in executable code (a fake SHT)."""
    entry, count = ctx.elf.entry, hit[0]
    return _finding(
        "entry_not_in_code_section", "B12", "medium", "Entry point outside every code section",
        f"e_entry={_hex(entry)} is in none of the {count} SHF_EXECINSTR sections; the "
        "section table does not describe the code that runs (fake or stale section headers).",
        e_entry=entry, code_sections=count,
    )  # fmt: skip


def _rwx_segment(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
    """B13: a loaded segment both writable and executable (not in core dumps)."""
    (first, count), loads = hit, len(ctx.loads)
    single = loads == 1
    return _finding(
        "rwx_segment", "B13", "high" if single else "medium", "Writable and executable segment",
        ("the only PT_LOAD is mapped read-write-execute, so the code can rewrite itself (packers, shellcode "
         "loaders)" if single else f"PT_LOAD #{first} (of {loads}) is mapped read-write-execute"),
        rwx_segments=count, load_segments=loads,
    )  # fmt: skip


def _segment_misaligned(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
    """B14: the first PT_LOAD whose p_vaddr and p_offset differ modulo its (power-of-two) p_align."""
    i = hit[0]
    off, vaddr, align = ctx.loads[i].offset, ctx.loads[i].vaddr, ctx.loads[i].align
    return _finding(
        "segment_misaligned", "B14", "low", "Misaligned loaded segment",
        f"PT_LOAD #{i}: p_vaddr={_hex(vaddr)} and p_offset={_hex(off)} differ modulo p_align={_hex(align)}.",
        p_vaddr=vaddr, p_offset=off, p_align=align,
    )  # fmt: skip


def _segments_overlap(ctx: CheckContext, hit: tuple[int, ...]) -> CheckResult:
    """B14: the first two PT_LOAD memory ranges that overlap, in address order."""
    ia, ib = hit
    loads = ctx.loads
    start_a, end_a, start_b = loads[ia].vaddr, loads[ia].vaddr + loads[ia].memsz, loads[ib].vaddr
    return _finding(
        "segments_overlap", "B14", "low", "Loaded segments overlap",
        f"PT_LOAD #{ia} [{_hex(start_a)}, {_hex(end_a)}) overlaps PT_LOAD #{ib} starting at {_hex(start_b)}.",
        first=ia, second=ib,
    )  # fmt: skip


def _unknown_type(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B17: an e_type neither standard nor in the OS/processor-specific range."""
    elf_type = ctx.elf.type
    return _finding(
        "unknown_type", "B17", "low", "Unknown ELF file type",
        f"e_type={_hex(elf_type)} is neither a standard type nor in the OS/processor-specific range.",
        e_type=elf_type,
    )  # fmt: skip


def _odd_type_executable(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """B17: an execute permission bit on a file the kernel will not execute."""
    elf_type = ctx.elf.type
    return _finding(
        "odd_type_executable", "B17", "info", "Executable file of a non-executable ELF type",
        f"the file has an execute permission bit but e_type={elf_type} cannot be executed.",
        e_type=elf_type,
    )  # fmt: skip


def _osabi_not_linux(ctx: CheckContext, _hit: tuple[int, ...]) -> CheckResult:
    """A3: a loadable file claiming a non-Linux OS/ABI; medium when it also names a Linux loader."""
    elf = ctx.elf
    name = osabi_name(elf.osabi, elf.machine)
    linux_loader = any("ld-linux" in p or "ld-musl" in p for p in ctx.interpreters)
    if linux_loader:
        detail = (f"EI_OSABI={elf.osabi} ({name}) but the interpreter {ctx.interpreters[0]!r} is a Linux loader: the "
                  "OS/ABI byte lies (the kernel ignores it; Mumblehard declared FreeBSD this way).")  # fmt: skip
    else:
        detail = f"EI_OSABI={elf.osabi} ({name}): built for another OS; Linux does not check this byte."
    return _finding(
        "osabi_not_linux", "A3", "medium" if linux_loader else "low", "Non-Linux OS/ABI", detail,
        ei_osabi=elf.osabi,
    )  # fmt: skip


def check_interp(ctx: CheckContext, hit: tuple[int, ...]) -> list[CheckResult]:
    """B15: unusual program interpreter, or more than one (`hit`: how many PT_INTERP; `interpreters` holds
    the first MAX_LISTED)."""
    interps, count = ctx.interpreters, hit[0]
    results = []
    if count > 1:
        results.append(_finding(
            "multiple_interpreters", "B15", "high", "More than one program interpreter",
            f"{count} PT_INTERP entries ({', '.join(repr(p) for p in interps[:MAX_LISTED])}); the kernel uses one, "
            "tools may show another.",
            count=count,
        ))  # fmt: skip
    for path in interps[:1]:
        if not path and _interp_bytes_absent(ctx.elf):
            continue  # a separate debug file keeps the program headers but not the bytes they point at
        if not is_known_loader(path):
            results.append(_finding(
                "unusual_interpreter", "B15", "medium", "Unusual program interpreter",
                f"PT_INTERP is {path!r}, not a known glibc, musl, uClibc, Android or BSD dynamic loader path; "
                "a custom loader runs before the program.",
                interpreter=path,
            ))  # fmt: skip
    return results


def _interp_bytes_absent(elf: ElfImage) -> bool:
    """A separate debug-info file keeps PT_INTERP but its .interp section is SHT_NOBITS (no bytes)."""
    interp = next((ph for ph in elf.phdrs if ph.type == PT_INTERP), None)
    return interp is not None and elf.shdrs.nobits_cover(interp.vaddr)


# Condition id (`ElfImage.header_hits`) → its message.
MESSAGES: dict[str, Message] = {
    "bad_ident": _bad_ident, "ident_contradicts_header": _ident_contradicts_header, "bad_ehsize": _bad_ehsize,
    "bad_phentsize": _bad_phentsize, "pht_beyond_eof": _pht_beyond_eof, "no_program_headers": _no_program_headers,
    "pht_overlaps_ehdr": _pht_overlaps_ehdr, "sht_beyond_eof": _sht_beyond_eof,
    "shoff_without_shnum": _shoff_without_shnum, "bad_shentsize": _bad_shentsize, "shstrndx_undef": _shstrndx_undef,
    "shstrndx_out_of_range": _shstrndx_out_of_range, "shstrndx_not_strtab": _shstrndx_not_strtab,
    "no_section_table": _no_section_table, "load_beyond_eof": _load_beyond_eof,
    "entry_outside_segments": _entry_outside_segments, "entry_not_executable": _entry_not_executable,
    "entry_not_in_code_section": _entry_not_in_code_section, "rwx_segment": _rwx_segment,
    "segment_misaligned": _segment_misaligned, "segments_overlap": _segments_overlap, "unknown_type": _unknown_type,
    "odd_type_executable": _odd_type_executable, "osabi_not_linux": _osabi_not_linux,
    **section_checks.MESSAGES, **segment_checks.MESSAGES,
}  # fmt: skip


def header_checks(elf: ElfImage, interpreters: list[str], executable_bit: bool | None = None) -> list[CheckResult]:
    """Every header anomaly of `elf`, in the order `header_hits` lists the conditions."""
    ctx = CheckContext(elf, interpreters, elf.loads)
    results = []
    for condition, hit in elf.header_hits(bool(executable_bit)).items():
        if condition == "interpreter":
            results += check_interp(ctx, hit)
        else:
            results.append(MESSAGES[condition](ctx, hit))
    return results
