"""Streamed SHA-256 with a reused buffer (bounded memory whatever the file size)."""

from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20


def sha256_fd(fd: int) -> str:
    """Hex SHA-256 of the whole file behind `fd`, read with pread from offset 0."""
    return digests_fd(fd, ("sha256",))[0]


def digests_fd(fd: int, algorithms: tuple[str, ...]) -> list[str]:
    """Hex digests (hashlib names, e.g. sha256 and a package record's md5) of the whole file behind `fd`,
    in one read with pread from offset 0."""
    digests = [hashlib.new(name, usedforsecurity=False) for name in algorithms]
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    offset = 0
    while True:
        n = os.preadv(fd, [buf], offset)
        if n <= 0:
            break
        for digest in digests:
            digest.update(view[:n])
        offset += n
    return [digest.hexdigest() for digest in digests]
