"""Streamed SHA-256 with a reused buffer (bounded memory whatever the file size)."""

from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20


def sha256_fd(fd: int) -> str:
    """Hex SHA-256 of the whole file behind `fd`, read with pread from offset 0."""
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    offset = 0
    while True:
        n = os.preadv(fd, [buf], offset)
        if n <= 0:
            break
        digest.update(view[:n])
        offset += n
    return digest.hexdigest()
