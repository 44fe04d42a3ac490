"""A byte source that counts what is asked of it, for the reader's bounded-read tests."""

from __future__ import annotations

from bindrift.analysis.source import BufferSource


class CountingSource(BufferSource):
    """Counts the bytes asked for, to prove reads stay bounded whatever the header claims."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.requested = 0

    def read(self, offset: int, length: int) -> bytes:
        self.requested += max(length, 0)
        return super().read(offset, length)
