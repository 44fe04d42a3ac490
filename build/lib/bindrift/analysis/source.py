"""Random-access, bounded views of the bytes being triaged: an open fd, a buffer, or a head/tail window.

Triage never reads a whole file unless asked to: every reader goes through `read(offset, length)`,
which returns at most `length` bytes (fewer at end of file, or when the bytes are not available).
"""

from __future__ import annotations

import os
from typing import Protocol


class ByteSource(Protocol):
    """The bytes of one file. `size` is the real file size even when not every byte is held."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset`; short or empty past the end or where bytes are missing."""
        ...

    @property
    def complete(self) -> bool:
        """False when some bytes of the file are not available (a huge in-stream archive member)."""
        ...


class FdSource:
    """A file read through an already-open descriptor with `os.pread` (no seek position is shared)."""

    __slots__ = ("_fd", "_size")

    def __init__(self, fd: int, size: int | None = None) -> None:
        self._fd = fd
        self._size = os.fstat(fd).st_size if size is None else size

    @property
    def size(self) -> int:
        return self._size

    @property
    def complete(self) -> bool:
        return True

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self._size:
            return b""
        return os.pread(self._fd, min(length, self._size - offset), offset)


class BufferSource:
    """Bytes held in memory (an in-stream archive member, or bytes handed to the API)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = bytes(data)

    @property
    def size(self) -> int:
        return len(self._data)

    @property
    def complete(self) -> bool:
        return True

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0:
            return b""
        return self._data[offset : offset + length]


class WindowSource:
    """The head and tail of a file too large to hold: bytes in between read as missing."""

    __slots__ = ("_head", "_size", "_tail", "_tail_start")

    def __init__(self, head: bytes, tail: bytes, size: int) -> None:
        self._head = head
        self._tail = tail
        self._size = size
        self._tail_start = size - len(tail)

    @property
    def size(self) -> int:
        return self._size

    @property
    def complete(self) -> bool:
        return len(self._head) + len(self._tail) >= self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self._size:
            return b""
        end = min(offset + length, self._size)
        if end <= len(self._head):
            return self._head[offset:end]
        if offset >= self._tail_start:
            return self._tail[offset - self._tail_start : end - self._tail_start]
        if offset < len(self._head):
            return self._head[offset:]  # the rest lies in the gap: short read
        return b""
