"""Suspicious binaries for `bindrift demo`, made from a harmless binary of this host by the same header
manipulations attackers use: another architecture, a packed-looking body, a lying entry point, writable
code, a section table past the end of the file. They are data for the scanner, never run."""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable
from pathlib import Path

EM_X86_64, EM_AARCH64 = 62, 183
PT_LOAD, PF_X = 1, 1
SOURCE_CANDIDATES = ("/usr/bin/true", "/bin/true", "/usr/bin/ls", "/bin/ls")


def _segments(data: bytearray) -> list[tuple[int, int, int, int, int]]:
    """(header offset, type, flags, file offset, file size) of each program header (64-bit little-endian)."""
    (phoff,) = struct.unpack_from("<Q", data, 32)
    entsize, count = struct.unpack_from("<HH", data, 54)
    found = []
    for index in range(min(count, 64)):
        at = phoff + index * entsize
        p_type, p_flags, p_offset = struct.unpack_from("<IIQ", data, at)
        (p_filesz,) = struct.unpack_from("<Q", data, at + 32)
        found.append((at, p_type, p_flags, p_offset, p_filesz))
    return found


def _foreign(data: bytearray) -> None:
    (machine,) = struct.unpack_from("<H", data, 18)
    struct.pack_into("<H", data, 18, EM_X86_64 if machine == EM_AARCH64 else EM_AARCH64)


def _packed(data: bytearray) -> None:
    struct.pack_into("<Q", data, 40, 0)  # no section table: e_shoff, then e_shentsize, e_shnum, e_shstrndx
    struct.pack_into("<HHH", data, 58, 0, 0, 0)
    rng = random.Random(7)
    for _at, p_type, p_flags, offset, size in _segments(data):
        if p_type == PT_LOAD and p_flags & PF_X and offset + size <= len(data):
            start = max(offset, 4096)
            data[start : offset + size] = rng.randbytes(offset + size - start)


def _entry_outside(data: bytearray) -> None:
    struct.pack_into("<Q", data, 24, 0x7FFF_FFFF_0000)


def _writable_code(data: bytearray) -> None:
    for at, p_type, p_flags, _offset, _size in _segments(data):
        if p_type == PT_LOAD and p_flags & PF_X:
            struct.pack_into("<I", data, at + 4, 7)


def _table_past_end(data: bytearray) -> None:
    struct.pack_into("<Q", data, 40, len(data) + 65536)


SAMPLES: dict[str, Callable[[bytearray], None]] = {
    "dropbear": _foreign,
    "kworker-update": _packed,
    "libprocesshider.so": _entry_outside,
    "sshd-helper": _writable_code,
    "xmrig": _table_past_end,
}


def source_binary() -> Path:
    """A small 64-bit little-endian ELF executable of this host to start from."""
    for candidate in SOURCE_CANDIDATES:
        path = Path(candidate).resolve()
        if path.is_file():
            head = path.read_bytes()[:6]
            if head[:4] == b"\x7fELF" and head[4] == 2 and head[5] == 1:
                return path
    raise FileNotFoundError("no 64-bit little-endian ELF executable found to make demo binaries from")


def write_samples(directory: Path, tag: bytes = b"") -> list[Path]:
    """Write every sample into `directory` (mode 0644: they are never meant to run), `tag` appended so that
    differently tagged sets differ in content; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    original = source_binary().read_bytes()
    written = []
    for name, mutate in SAMPLES.items():
        data = bytearray(original)
        mutate(data)
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data + tag)
        written.append(path)
    return written
