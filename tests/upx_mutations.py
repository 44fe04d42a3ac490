"""The UPX tampering seen in IoT malware (docs/elf-checks.md §1.2, §6), applied to real UPX output.

Shared by the triage tests and the runtime-agent tests. Each function returns new bytes.
"""

from __future__ import annotations

import random
import re
import struct

UPX_MAGIC = b"UPX!"
STRINGS = re.compile(rb"\$(Info|Id): [^$]{0,200}\$")


def _l_info(data: bytes) -> int:
    """Offset of l_info: right after the program header table."""
    order = "<" if data[5] == 1 else ">"
    if data[4] == 2:
        (phoff,) = struct.unpack_from(order + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 54)
    else:
        (phoff,) = struct.unpack_from(order + "I", data, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 42)
    return int(phoff + phnum * phentsize)


def rename_magic(data: bytes, new: bytes | None = None, seed: int = 1) -> bytes:
    """Replace every `UPX!` with the same other 4 bytes (Mirai 'Gayfemboy' used 10 f0 00 00)."""
    replacement = new if new is not None else bytes(random.Random(seed).randrange(256) for _ in range(4))
    assert len(replacement) == 4 and replacement != UPX_MAGIC
    return data.replace(UPX_MAGIC, replacement)


def zero_p_info(data: bytes) -> bytes:
    """Zero p_filesize and p_blocksize (Elastic's Linux_Packer_Patched_UPX pattern)."""
    out = bytearray(data)
    at = _l_info(data) + 12
    out[at + 4 : at + 12] = bytes(8)
    return bytes(out)


def skew_p_filesize(data: bytes) -> bytes:
    """Make p_filesize disagree with the trailer's original size."""
    out = bytearray(data)
    order = "<" if data[5] == 1 else ">"
    at = _l_info(data) + 16
    (size,) = struct.unpack_from(order + "I", out, at)
    struct.pack_into(order + "I", out, at, size + 4096)
    return bytes(out)


def append_overlay(data: bytes, count: int = 23, seed: int = 2) -> bytes:
    """Append junk bytes after the PackHeader."""
    return data + bytes(random.Random(seed).randrange(256) for _ in range(count))


def blank_strings(data: bytes) -> bytes:
    """Overwrite the `$Info: …$` and `$Id: …$` identification strings with NUL bytes."""
    return STRINGS.sub(lambda m: bytes(len(m.group(0))), data)


def cut_packheader(data: bytes, count: int = 36) -> bytes:
    """Cut the last `count` bytes: the PackHeader and its back pointer (the program still runs)."""
    return data[:-count]


def scrub_fully(data: bytes, seed: int = 3) -> bytes:
    """Remove every UPX marker: magics renamed, l_info and the PackHeader zeroed, strings and the loader's
    error message blanked. Only the stub's segment layout and the compressed bytes remain."""
    out = bytearray(blank_strings(rename_magic(data, seed=seed)))
    at = _l_info(data)
    out[at : at + 12] = bytes(12)
    out[-36:] = bytes(36)
    return bytes(out).replace(b"PROT_EXEC|PROT_WRITE failed", bytes(27))


def all_mutations(data: bytes) -> bytes:
    """Every mutation at once."""
    return append_overlay(blank_strings(zero_p_info(rename_magic(data))))
