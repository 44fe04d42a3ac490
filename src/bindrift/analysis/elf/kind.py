"""What kind of ELF file this is, beyond its type: a user-space program, a separate debug file, a kernel
image or module, or a freestanding image (boot loader, firmware). Checks that mean something only for a
user-space program are capped on the other kinds, with the reason in the finding.

Every kind is recognised from the structure that makes it unable to run as a Linux process the way a
program would, not from its path or name, so a file cannot claim a kind by where it sits. A crafted file
could still imitate a freestanding image: those checks are capped at low, not removed, so it stays listed.
"""

from __future__ import annotations

import msgspec

from bindrift.analysis.elf.constants import (
    ET_DYN,
    ET_EXEC,
    ET_REL,
    PF_W,
    PF_X,
    PT_INTERP,
)
from bindrift.analysis.elf.reader import ElfImage, Phdr
from bindrift.schema.severity import Severity, rank
from bindrift.schema.triage import CheckResult, ElfKind

PT_NOTE, PT_TLS = 4, 7
PT_GNU_EH_FRAME, PT_GNU_RELRO = 0x6474E550, 0x6474E552
# Linux refuses to map user pages below vm.mmap_min_addr (65536 by default): a boot image's address.
MMAP_MIN_ADDR = 0x10000
MAX_SHSTRTAB = 64 * 1024
MODULE_SECTIONS = (b".modinfo", b".gnu.linkonce.this_module")
KERNEL_SECTIONS = (b"__ksymtab", b"__ex_table", b".init.text")
USER_SPACE_SEGMENTS = {PT_INTERP, PT_NOTE, PT_TLS, PT_GNU_EH_FRAME, PT_GNU_RELRO}


class Kind(msgspec.Struct, frozen=True):
    """The kind, why, and the checks capped on it (check id → highest severity left)."""

    name: ElfKind
    reason: str = ""
    caps: tuple[tuple[frozenset[str], Severity], ...] = ()


PROGRAM = Kind("program")
# Header and packing checks that describe how a process would be loaded and run.
LOADING_CHECKS = frozenset({
    "entry_outside_segments", "entry_not_executable", "entry_not_in_code_section", "rwx_segment",
    "packed_generic", "segment_misaligned", "segments_overlap", "load_beyond_eof", "unusual_interpreter",
    "no_section_table", "phdr_not_loaded",
})  # fmt: skip
ARCH_CHECKS = frozenset({"foreign_arch", "compat_only", "x32_abi_disabled"})


def classify(elf: ElfImage) -> Kind:
    """The kind of `elf` (program headers, and the section names of relocatable or kernel-shaped files)."""
    loads = elf.loads
    if elf.type == ET_REL:
        names = _section_names(elf)
        if any(name in names for name in MODULE_SECTIONS):
            return Kind("kernel-module", "a Linux kernel module (.modinfo / .gnu.linkonce.this_module)")
        return PROGRAM
    if elf.type not in (ET_EXEC, ET_DYN) or not loads:
        return PROGRAM
    code = [ph for ph in loads if ph.flags & PF_X]
    if code and all(ph.filesz == 0 for ph in code):
        return Kind(
            "separate-debug",
            "a separate debug file (objcopy --only-keep-debug): its executable segments hold no file bytes, "
            "so it cannot run; the checks of how it would load do not apply",
            ((LOADING_CHECKS | ARCH_CHECKS, "info"),),
        )
    types = {ph.type for ph in elf.phdrs}
    if PT_INTERP in types:
        return PROGRAM
    if _entry_is_physical(elf, loads):
        names = _section_names(elf)
        what = "a kernel image (vmlinux)" if any(n in names for n in KERNEL_SECTIONS) else "a freestanding image"
        return Kind(
            "kernel-image" if what.startswith("a kernel") else "freestanding",
            f"{what}: e_entry {elf.entry:#x} is the physical address a boot loader jumps to (inside a PT_LOAD's "
            "p_paddr range, outside every p_vaddr range); it cannot run as a process",
            ((frozenset({"entry_outside_segments", "entry_not_executable", "entry_not_in_code_section"}), "info"),
             (LOADING_CHECKS, "low")),
        )  # fmt: skip
    if not types & USER_SPACE_SEGMENTS and elf.shdrs and _boot_shaped(elf, loads):
        return Kind(
            "freestanding",
            "a freestanding image (boot loader or firmware): no interpreter and none of the segments a Linux "
            "toolchain writes for user space (PT_NOTE, PT_TLS, PT_GNU_RELRO, PT_GNU_EH_FRAME), "
            + ("loaded below the lowest address Linux maps for a process (0x10000)" if _low(loads) else
               "its code run from a read-write-execute image"),
            ((LOADING_CHECKS, "low"),),
        )  # fmt: skip
    return PROGRAM


def cap(findings: list[CheckResult], kind: Kind) -> list[CheckResult]:
    """`findings` with the checks that do not apply to `kind` lowered, the reason added to each."""
    if not kind.caps:
        return findings
    out = []
    for result in findings:
        ceiling = next((top for checks, top in kind.caps if result.check in checks), None)
        if ceiling is None or rank(result.severity) <= rank(ceiling):
            out.append(result)
            continue
        out.append(msgspec.structs.replace(
            result, severity=ceiling, detail=f"{result.detail} [capped from {result.severity}: {kind.reason}]",
            evidence={**result.evidence, "capped_from": result.severity, "kind": kind.name},
        ))  # fmt: skip
    return out


def _entry_is_physical(elf: ElfImage, loads: list[Phdr]) -> bool:
    if elf.entry == 0 or any(ph.vaddr <= elf.entry < ph.vaddr + ph.memsz for ph in loads):
        return False
    return any(ph.paddr != ph.vaddr and ph.paddr <= elf.entry < ph.paddr + ph.memsz for ph in loads)


def _low(loads: list[Phdr]) -> bool:
    return min(ph.vaddr for ph in loads) < MMAP_MIN_ADDR and all(ph.vaddr for ph in loads)


def _boot_shaped(elf: ElfImage, loads: list[Phdr]) -> bool:
    """Linked at a boot address, or a first PT_LOAD mapped read-write-execute whose code sections hold the
    entry point (boot loaders and firmware run from one writable image; Linux user space never is)."""
    if elf.type == ET_EXEC and _low(loads):
        return True
    first = loads[0]
    if first.flags & (PF_W | PF_X) != PF_W | PF_X or not first.vaddr <= elf.entry < first.vaddr + first.memsz:
        return False
    return elf.shdrs.code_sections(elf.entry, False)[1]  # an SHF_EXECINSTR | SHF_ALLOC section holds it


def _section_names(elf: ElfImage) -> set[bytes]:
    """The section names, from a string table of at most 64 KiB (a larger one: none)."""
    if not elf.shdrs or not 0 < elf.shstrndx_eff < len(elf.shdrs):
        return set()
    table = elf.shdrs[elf.shstrndx_eff]
    if table.size > MAX_SHSTRTAB:
        return set()
    strings = elf.read(table.offset, table.size)
    names = set()
    for section in elf.shdrs:
        if 0 < section.name < len(strings):
            end = strings.find(b"\0", section.name)
            names.add(strings[section.name : end if end >= 0 else len(strings)])
    return names
