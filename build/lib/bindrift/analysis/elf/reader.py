"""Raw, tolerant ELF header reader: the file header, program headers and section headers as written.

Hand-written on purpose: LIEF silently clamps or drops corrupt tables and pyelftools raises on them
(measured in docs/elf-checks.md §4), while bindrift must see the exact values an attacker wrote.
Every table read is bounded; nothing here raises on malformed input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from bindrift.analysis.source import ByteSource

ELF_MAGIC = b"\x7fELF"
HEAD_SIZE = 4096
# The kernel refuses program header tables over 64 KiB; read no more than that.
MAX_PHT_BYTES = 65536
# Sections beyond this are not parsed (real binaries have < 100; the limit bounds memory).
MAX_SECTIONS = 65536
# Read the table and the rest of the file together when at most this much follows the table.
TAIL_SLACK = 4096
PN_XNUM = 0xFFFF
SHN_XINDEX = 0xFFFF

EHDR_SIZE = {32: 52, 64: 64}
PHDR_SIZE = {32: 32, 64: 56}
SHDR_SIZE = {32: 40, 64: 64}


class Phdr(NamedTuple):
    """One program header, fields in Elf64 order whatever the class."""

    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int


class Shdr(NamedTuple):
    """One section header."""

    name: int
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int


@dataclass(slots=True)
class ElfImage:
    """The raw headers of one ELF file, with the layout (class, byte order) used to read them."""

    src: ByteSource
    head: bytes
    size: int
    bits: int
    little: bool
    ei_class: int
    ei_data: int
    ei_version: int
    osabi: int
    abiversion: int
    type: int
    machine: int
    version: int
    entry: int
    phoff: int
    shoff: int
    flags: int
    ehsize: int
    phentsize: int
    phnum: int
    shentsize: int
    shnum: int
    shstrndx: int
    phdrs: list[Phdr] = field(default_factory=list)
    shdrs: list[Shdr] = field(default_factory=list)
    # Effective counts after the extended-numbering escapes (e_phnum = PN_XNUM, e_shnum = 0).
    phnum_eff: int = 0
    shnum_eff: int = 0
    shstrndx_eff: int = 0
    # True when EI_CLASS / EI_DATA were invalid or contradicted by the header, so the layout was inferred.
    layout_inferred: bool = False
    # Why a table was not (fully) read, e.g. "pht-truncated", "sht-beyond-eof", "sht-not-available".
    problems: list[str] = field(default_factory=list)

    # The end of the file from `tail_offset` on, read once with the section table that usually ends it.
    tail: bytes = b""
    tail_offset: int = 0

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset`, sliced from the head or tail already read when they hold them."""
        if self.tail and offset >= self.tail_offset and offset + length <= self.tail_offset + len(self.tail):
            start = offset - self.tail_offset
            return self.tail[start : start + length]
        return _read_table(self.src, self.head, offset, length)


# Building the named tuples straight from unpacked rows skips `_make`'s length check (the struct layout
# guarantees it), which matters at ~40 sections per file on the scan's hot path.
_new_phdr: Callable[[type[Phdr], tuple[int, ...]], Phdr] = tuple.__new__
_new_shdr: Callable[[type[Shdr], tuple[int, ...]], Shdr] = tuple.__new__

# Header layouts after e_ident, by (bits, little-endian).
_EHDR = {
    (32, True): struct.Struct("<HHIIIIIHHHHHH"),
    (32, False): struct.Struct(">HHIIIIIHHHHHH"),
    (64, True): struct.Struct("<HHIQQQIHHHHHH"),
    (64, False): struct.Struct(">HHIQQQIHHHHHH"),
}
_PHDR = {
    (32, True): struct.Struct("<IIIIIIII"),
    (32, False): struct.Struct(">IIIIIIII"),
    (64, True): struct.Struct("<IIQQQQQQ"),
    (64, False): struct.Struct(">IIQQQQQQ"),
}
_SHDR = {
    (32, True): struct.Struct("<IIIIIIIIII"),
    (32, False): struct.Struct(">IIIIIIIIII"),
    (64, True): struct.Struct("<IIQQQQIIQQ"),
    (64, False): struct.Struct(">IIQQQQIIQQ"),
}


def _plausible(head: bytes, bits: int, little: bool) -> int:
    """How well the header reads under a layout: e_phentsize, e_type and e_machine sanity."""
    fields = _EHDR[(bits, little)].unpack_from(head, 16)
    e_type: int = fields[0]
    e_machine: int = fields[1]
    phentsize: int = fields[8]
    return (phentsize == PHDR_SIZE[bits]) * 4 + (e_type < 5) * 2 + (0 < e_machine < 0x400)


def _layout(head: bytes) -> tuple[int, bool, bool]:
    """The (bits, little, inferred) layout to parse with.

    EI_CLASS / EI_DATA are trusted when the header reads sanely under them; otherwise (invalid or lying
    values) the layout is inferred the way the kernel ends up reading the file: by which layout gives
    a program-header entry size that a loader accepts and a sane e_type / e_machine.
    """
    ei_class, ei_data = head[4], head[5]
    declared = ({1: 32, 2: 64}.get(ei_class), {1: True, 2: False}.get(ei_data))
    if declared[0] is not None and declared[1] is not None:
        bits, little = declared[0], declared[1]
        fields = _EHDR[(bits, little)].unpack_from(head, 16)
        e_type, phnum, phentsize = fields[0], fields[9], fields[8]
        loadable = e_type in (2, 3)
        if phentsize == PHDR_SIZE[bits] or (not loadable and phnum == 0 and (e_type < 5 or e_type >= 0xFE00)):
            return bits, little, False
    candidates = [(b, le) for b in (64, 32) for le in (True, False)]
    # Prefer the declared values on ties, then 64-bit little-endian (the common case).
    candidates.sort(key=lambda c: (c[0] != declared[0], c[1] != declared[1]))
    best = max(candidates, key=lambda c: _plausible(head, *c))
    return best[0], best[1], best != declared


def parse_elf(src: ByteSource) -> ElfImage | None:
    """Parse the headers of `src`; None when it does not start with the ELF magic."""
    head = src.read(0, HEAD_SIZE)
    if head[:4] != ELF_MAGIC:
        return None
    padded = head if len(head) >= 64 else head.ljust(64, b"\0")
    bits, little, inferred = _layout(padded)
    (
        e_type,
        machine,
        version,
        entry,
        phoff,
        shoff,
        flags,
        ehsize,
        phentsize,
        phnum,
        shentsize,
        shnum,
        shstrndx,
    ) = _EHDR[(bits, little)].unpack_from(padded, 16)
    elf = ElfImage(
        src=src, head=head, size=src.size, bits=bits, little=little,
        ei_class=padded[4], ei_data=padded[5], ei_version=padded[6], osabi=padded[7], abiversion=padded[8],
        type=e_type, machine=machine, version=version, entry=entry, phoff=phoff, shoff=shoff, flags=flags,
        ehsize=ehsize, phentsize=phentsize, phnum=phnum, shentsize=shentsize, shnum=shnum, shstrndx=shstrndx,
        layout_inferred=inferred,
    )  # fmt: skip
    if len(head) < EHDR_SIZE[bits]:
        elf.problems.append("header-truncated")
    _read_sections(elf)
    _read_segments(elf)
    return elf


def _read_table(src: ByteSource, head: bytes, offset: int, length: int) -> bytes:
    """`length` bytes at `offset`, sliced from the head when it holds them."""
    if offset + length <= len(head):
        return head[offset : offset + length]
    return src.read(offset, length)


def _read_segments(elf: ElfImage) -> None:
    phnum = elf.phnum
    if phnum == PN_XNUM and elf.shdrs:
        phnum = elf.shdrs[0].info
    elf.phnum_eff = phnum
    if phnum == 0 or elf.phoff == 0:
        return
    entsize = PHDR_SIZE[elf.bits]
    if elf.phentsize != entsize:
        elf.problems.append("pht-bad-entsize")
        return
    if elf.phoff >= elf.size:
        elf.problems.append("pht-beyond-eof")
        return
    want = min(phnum * entsize, MAX_PHT_BYTES)
    data = _read_table(elf.src, elf.head, elf.phoff, want)
    if len(data) < phnum * entsize:
        elf.problems.append("pht-truncated")
    layout = _PHDR[(elf.bits, elf.little)]
    count = len(data) // entsize
    rows = layout.iter_unpack(data[: count * entsize])
    if elf.bits == 64:
        elf.phdrs = [_new_phdr(Phdr, t) for t in rows]
    else:  # Elf32_Phdr order: type, offset, vaddr, paddr, filesz, memsz, flags, align
        elf.phdrs = [_new_phdr(Phdr, (t[0], t[6], t[1], t[2], t[3], t[4], t[5], t[7])) for t in rows]


def _read_sections(elf: ElfImage) -> None:
    if elf.shoff == 0:
        elf.shnum_eff = elf.shnum
        return
    entsize = SHDR_SIZE[elf.bits]
    layout = _SHDR[(elf.bits, elf.little)]
    shnum = elf.shnum
    shstrndx = elf.shstrndx
    first: Shdr | None = None
    if elf.shentsize == entsize and elf.shoff + entsize <= elf.size:
        raw0 = _read_table(elf.src, elf.head, elf.shoff, entsize)
        if len(raw0) == entsize:
            first = Shdr._make(layout.unpack(raw0))
            if shnum == 0:
                shnum = first.size
            if shstrndx == SHN_XINDEX:
                shstrndx = first.link
    elif shnum == 0:
        elf.problems.append("sht-not-available")
    elf.shnum_eff = shnum
    elf.shstrndx_eff = shstrndx
    if shnum == 0:
        return
    if elf.shentsize != entsize:
        elf.problems.append("sht-bad-entsize")
        return
    if elf.shoff + shnum * entsize > elf.size:
        elf.problems.append("sht-beyond-eof")
        return
    count = min(shnum, MAX_SECTIONS)
    end = elf.shoff + count * entsize
    if end > len(elf.head) and elf.size - end <= TAIL_SLACK:
        # The section table normally ends the file: one read brings it and the tail the packer checks need.
        elf.tail_offset = elf.shoff
        elf.tail = elf.src.read(elf.shoff, elf.size - elf.shoff)
    data = elf.read(elf.shoff, count * entsize)
    if len(data) < count * entsize:
        elf.problems.append("sht-not-available")
        return
    elf.shdrs = [_new_shdr(Shdr, t) for t in layout.iter_unpack(data)]


def read_cstring(src: ByteSource, offset: int, limit: int = 4096) -> bytes | None:
    """The NUL-terminated string at `offset` (at most `limit` bytes); None when unterminated."""
    data = src.read(offset, limit)
    end = data.find(b"\0")
    return data[:end] if end >= 0 else None


def section_name(elf: ElfImage, shdr: Shdr) -> str | None:
    """Name of `shdr` from the section-name string table, when that table is sane."""
    idx = elf.shstrndx_eff
    if not 0 < idx < len(elf.shdrs):
        return None
    strtab = elf.shdrs[idx]
    if shdr.name >= strtab.size:
        return None
    raw = read_cstring(elf.src, strtab.offset + shdr.name, min(256, strtab.size - shdr.name))
    return None if raw is None else raw.decode("ascii", "backslashreplace")
