"""Streamed SHA-256 with a reused buffer (bounded memory whatever the file size)."""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

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


# Per-file hashing budget of the agent: a file larger than this (a huge or sparse file) is hashed over its
# first CONTENT_BUDGET bytes only (~40 ms), so that one file cannot hold up the findings of others.
CONTENT_BUDGET = 64 * 2**20


class Digest(NamedTuple):
    """`sha256` of the whole file, or "" when it is larger than the budget; `head_sha256` of what was read
    (the first `hashed` bytes: the whole file when not `bounded`)."""

    sha256: str
    head_sha256: str
    hashed: int
    bounded: bool


def sha256_fd_bounded(fd: int, budget: int = CONTENT_BUDGET) -> Digest:
    """SHA-256 of the file behind `fd` read with pread from offset 0, at most `budget` bytes of it."""
    digest = hashlib.sha256()
    buf = bytearray(min(CHUNK, budget + 1))
    view = memoryview(buf)
    offset = 0
    while offset <= budget:
        n = os.preadv(fd, [view[: min(len(buf), budget + 1 - offset)]], offset)
        if n <= 0:
            head = digest.hexdigest()
            return Digest(head, head, offset, False)
        digest.update(view[: min(n, budget - offset)])
        offset += n
    return Digest("", digest.hexdigest(), budget, True)
