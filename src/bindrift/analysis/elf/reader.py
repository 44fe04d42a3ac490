"""Raw, tolerant ELF header reader: the file header, program headers and section headers as written.

Hand-written on purpose: LIEF silently clamps or drops corrupt tables and pyelftools raises on them
(measured in docs/elf-checks.md §4), while bindrift must see the exact values an attacker wrote.
The parse itself is compiled (`_native.c`, built with the package): the layout inference (EI_CLASS /
EI_DATA checked against the header), extended numbering, and every bound (program header table ≤ 64 KiB,
≤ 65,536 sections, offsets and sizes with overflow checks) are there; what could not be read is named in
`ElfImage.problems` ("pht-truncated", "sht-beyond-eof", "sht-not-available", ...). Nothing raises on
malformed input.
"""

from __future__ import annotations

from typing import NamedTuple

from bindrift.analysis.elf import _native
from bindrift.analysis.elf._native import ElfImage
from bindrift.analysis.source import ByteSource

__all__ = ["ElfImage", "Phdr", "Shdr", "parse_elf", "read_cstring", "section_name"]

# The first bytes read from every file; the tables are sliced from them when they lie inside.
HEAD_SIZE = 4096
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


_native.bind(Phdr, Shdr)


def parse_elf(src: ByteSource) -> ElfImage | None:
    """Parse the headers of `src`; None when it does not start with the ELF magic."""
    return _native.parse(src, src.read(0, HEAD_SIZE))


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
