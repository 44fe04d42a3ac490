"""What an ELF file is: architecture, class, byte order, type, OS/ABI, interpreter, linking."""

from __future__ import annotations

import struct
from typing import Literal

import msgspec

from bindrift.analysis.elf.constants import (
    DF_1_PIE,
    DT_FLAGS_1,
    ET_DYN,
    PT_DYNAMIC,
    PT_INTERP,
    arch_name,
    osabi_name,
    type_name,
)
from bindrift.analysis.elf.reader import ElfImage

MAX_INTERP = 4096
MAX_DYNAMIC = 64 * 1024


class Identity(msgspec.Struct):
    """The identity fields of a triage report."""

    arch: str
    bits: int
    endian: Literal["little", "big"]
    type: str
    osabi: str
    interpreters: list[str]
    linking: Literal["static", "dynamic"]


def identify(elf: ElfImage) -> Identity:
    """Identity of `elf` as the loader would see it."""
    interps = read_interpreters(elf)
    return Identity(
        arch=arch_name(elf.machine, elf.bits, elf.little),
        bits=elf.bits,
        endian="little" if elf.little else "big",
        type=type_name(elf.type),
        osabi=osabi_name(elf.osabi, elf.machine),
        interpreters=interps,
        linking=_linking(elf, bool(interps)),
    )


def read_interpreters(elf: ElfImage) -> list[str]:
    """The PT_INTERP paths (attacker-controlled text: decoded with escapes, NULs cut)."""
    paths = []
    for ph in elf.phdrs:
        if ph.type != PT_INTERP:
            continue
        raw = elf.read(ph.offset, min(ph.filesz, MAX_INTERP)) if ph.filesz else b""
        raw = raw.split(b"\0", 1)[0]
        paths.append(raw.decode("utf-8", "backslashreplace"))
    return paths


def _linking(elf: ElfImage, has_interp: bool) -> Literal["static", "dynamic"]:
    """Dynamic when a loader is named or the file is a shared object; static-pie counts as static."""
    if has_interp:
        return "dynamic"
    dynamic = next((ph for ph in elf.phdrs if ph.type == PT_DYNAMIC), None)
    if dynamic is None:
        return "static"
    if elf.type == ET_DYN and _is_pie(elf, dynamic.offset, dynamic.filesz):
        return "static"
    return "dynamic"


def _is_pie(elf: ElfImage, offset: int, size: int) -> bool:
    """True when the dynamic section carries DF_1_PIE (a static-pie executable has no PT_INTERP)."""
    order = "<" if elf.little else ">"
    entry = struct.Struct(order + ("qQ" if elf.bits == 64 else "iI"))
    data = elf.read(offset, min(size, MAX_DYNAMIC))
    tag = struct.pack(order + ("q" if elf.bits == 64 else "i"), DT_FLAGS_1)
    pos = data.find(tag)
    while pos >= 0:
        if pos % entry.size == 0 and pos + entry.size <= len(data):
            return bool(entry.unpack_from(data, pos)[1] & DF_1_PIE)
        pos = data.find(tag, pos + 1)
    return False
