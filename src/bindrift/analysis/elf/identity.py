"""What an ELF file is: architecture, class, byte order, type, OS/ABI, interpreter, linking."""

from __future__ import annotations

from typing import Literal

import msgspec

from bindrift.analysis.elf.constants import (
    arch_name,
    osabi_name,
    type_name,
)
from bindrift.analysis.elf.reader import ElfImage


class Identity(msgspec.Struct):
    """The identity fields of a triage report."""

    arch: str
    bits: int
    endian: Literal["little", "big"]
    type: str
    osabi: str
    interpreters: list[str]  # the first three PT_INTERP paths (the kernel uses the first)
    linking: Literal["static", "dynamic"]


def identify(elf: ElfImage) -> Identity:
    """Identity of `elf` as the loader would see it."""
    raw_interps, dynamic = elf.linkage()
    return Identity(
        arch=arch_name(elf.machine, elf.bits, elf.little),
        bits=elf.bits,
        endian="little" if elf.little else "big",
        type=type_name(elf.type),
        osabi=osabi_name(elf.osabi, elf.machine),
        # attacker-controlled text: decoded with escapes
        interpreters=[raw.decode("utf-8", "backslashreplace") for raw in raw_interps],
        linking="dynamic" if dynamic else "static",
    )
