"""UPX's on-disk structures in a packed ELF: `l_info` and `p_info` after the program headers, the
PackHeader trailer 36 bytes before the end, and the identification strings of the stub.

Layout (upx/upx `src/stub/src/include/linux.h`, `src/packhead.cpp`, verified on UPX 3.91, 3.95 and
4.2.2 output for eight architectures): `l_info` = {u32 checksum, "UPX!", u16 lsize, u8 version,
u8 format}, then `p_info` = {u32 progid, u32 filesize, u32 blocksize}, all in the target's byte order;
the file ends with the PackHeader ("UPX!", version, format, method, level, …, u32 u_file_size at +24)
followed by a u32 pointing back at `p_info`.
"""

from __future__ import annotations

import re
import struct

import msgspec

from bindrift.analysis.elf.reader import ElfImage, Phdr

UPX_MAGIC = b"UPX!"
TRAILER_FROM_END = 36
# Where UPX stubs keep their strings: the loader sits at the end of the file (first bytes for old formats).
STRING_WINDOW = 256 * 1024
WHOLE_FILE_LIMIT = 8 * 2**20
OVERLAY_WINDOW = 64 * 1024

INFO_STRING = b"$Info: This file is packed with the UPX"
ID_STRING = re.compile(rb"\$Id: UPX (\d{1,2}\.\d{1,3}(?:\.\d{1,3})?)")
PROT_STRING = b"PROT_EXEC|PROT_WRITE failed"

METHODS = {2: "NRV2B", 3: "NRV2B", 4: "NRV2B", 5: "NRV2D", 6: "NRV2D", 7: "NRV2D", 8: "NRV2E", 9: "NRV2E",
           10: "NRV2E", 14: "LZMA", 15: "DEFLATE"}  # fmt: skip
FORMAT_VERSIONS = {11: "UPX 1.x", 12: "UPX 2.x", 13: "UPX 3.x", 14: "UPX 4.x/5.x"}


class LInfo(msgspec.Struct):
    """`l_info` + `p_info` as found right after the program header table (`ElfImage.packer_probe`)."""

    offset: int
    magic: bytes
    lsize: int
    version: int
    format: int
    filesize: int
    blocksize: int
    # Shaped like UPX's (whatever its magic): a known format version, a loader size (0x100–0x8000), a format id.
    plausible: bool


class Trailer(msgspec.Struct):
    """The PackHeader at the end of the file."""

    offset: int
    magic: bytes
    version: int
    format: int
    method: int
    level: int
    u_file_size: int


class UpxEvidence(msgspec.Struct):
    """Everything UPX-shaped in one file; `None`/empty where absent."""

    l_info: LInfo | None
    trailer_magic: bytes
    trailer: Trailer | None = None
    overlay: int = 0
    info_string: bool = False
    id_version: str | None = None
    prot_string: bool = False
    magic_elsewhere: bool = False
    # The R-X PT_LOAD of a UPX-shaped layout (`ElfImage.packer_probe`), None when the layout differs.
    stub_segment: Phdr | None = None

    @property
    def has_strings(self) -> bool:
        return self.info_string or self.id_version is not None


def inspect(elf: ElfImage, evidence: UpxEvidence) -> None:
    """Deeper, bounded look: identification strings, the trailer (wherever overlay junk pushed it)."""
    window = _string_window(elf)
    evidence.info_string = INFO_STRING in window
    match = ID_STRING.search(window)
    evidence.id_version = match.group(1).decode() if match else None
    evidence.prot_string = PROT_STRING in window
    magics = [UPX_MAGIC]
    if evidence.l_info is not None and evidence.l_info.magic != UPX_MAGIC and evidence.l_info.plausible:
        magics.append(evidence.l_info.magic)
    evidence.magic_elsewhere = UPX_MAGIC in window
    _find_trailer(elf, evidence, magics, window)


def _string_window(elf: ElfImage) -> bytes:
    if elf.size <= WHOLE_FILE_LIMIT:
        return elf.src.read(0, elf.size)
    head = elf.src.read(0, STRING_WINDOW)
    return head + elf.src.read(elf.size - STRING_WINDOW, STRING_WINDOW)


def _find_trailer(elf: ElfImage, evidence: UpxEvidence, magics: list[bytes], window: bytes) -> None:
    """The PackHeader: its last occurrence, and how far it is from size-36 (overlay junk after it, or
    bytes cut off it). `UPX!` is searched in the whole string window, so an overlay of any size within it
    is measured; a renamed magic (4 arbitrary bytes) only in the last 64 KiB."""
    order = "<" if elf.little else ">"
    tail_start = max(0, elf.size - OVERLAY_WINDOW)
    tail = elf.src.read(tail_start, elf.size - tail_start)
    # The window is the whole file, or its head and tail: offsets in its tail half map back to the file.
    window_start = 0 if len(window) == elf.size else elf.size - len(window) // 2
    searched = window if window_start == 0 else window[len(window) // 2 :]
    best, found, data, base = -1, b"", b"", 0
    for magic in magics:
        area, area_start = (searched, window_start) if magic == UPX_MAGIC else (tail, tail_start)
        pos = area.rfind(magic)
        while pos >= 0 and not _trailer_shaped(area, pos, order):
            pos = area.rfind(magic, 0, pos)
        if pos >= 0 and area_start + pos > base + best:
            best, found, data, base = pos, magic, area, area_start
    if best < 0:
        return
    version, fmt, method, level = data[best + 4 : best + 8]
    (u_file_size,) = struct.unpack_from(order + "I", data, best + 24)
    offset = base + best
    evidence.trailer = Trailer(offset, found, version, fmt, method, level, u_file_size)
    evidence.overlay = elf.size - TRAILER_FROM_END - offset


def _trailer_shaped(data: bytes, pos: int, order: str) -> bool:
    """A PackHeader: a format version UPX writes, a method it knows, a level 1–10, room for the fields."""
    if pos + 32 > len(data):
        return False
    version, _fmt, method, level = data[pos + 4 : pos + 8]
    return version in FORMAT_VERSIONS and method in METHODS and 1 <= level <= 10
