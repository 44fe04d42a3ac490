"""The BPF ring buffer read straight from its memory mapping, as libbpf's `ring_buffer__consume` does, but
with no callback per record: one pass copies every committed record out and moves the consumer position
once. (libbpf calls a ctypes callback per record, which cost more than decoding the record.)

The layout is the kernel's (`kernel/bpf/ringbuf.c`): page 0, writable, holds the consumer position; page 1,
read-only, the producer position; the data area follows, mapped twice in a row so that a record wrapping
around the end reads as one. Each record starts with an 8-byte header (length with the busy and discard
bits, page offset) and is padded to 8 bytes. x86-64 orders these loads and the store as the kernel's
acquire/release pairs require."""

from __future__ import annotations

import mmap
import struct

BUSY, DISCARD = 1 << 31, 1 << 30
HEADER = 8
POSITION = struct.Struct("<Q")
LENGTH = struct.Struct("<I")


class RingReader:
    """The consumer side of a BPF_MAP_TYPE_RINGBUF map of `size` bytes (a power of two)."""

    def __init__(self, map_fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._producer = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._data = memoryview(self._producer)[page:]
        self._mask = size - 1

    def read(self) -> list[bytes]:
        """Every record committed since the last read, in order (a record still being written ends the pass:
        it and those after it are read next time)."""
        consumer = POSITION.unpack_from(self._consumer)[0]
        producer = POSITION.unpack_from(self._producer)[0]
        data, mask, length_of = self._data, self._mask, LENGTH.unpack_from
        records = []
        while consumer < producer:
            at = consumer & mask
            length = length_of(data, at)[0]
            if length & BUSY:
                break
            size = length & ~(BUSY | DISCARD)
            if not length & DISCARD:
                records.append(data[at + HEADER : at + HEADER + size].tobytes())
            consumer += (size + HEADER + 7) & ~7
        POSITION.pack_into(self._consumer, 0, consumer)
        return records

    def close(self) -> None:
        self._data.release()
        self._producer.close()
        self._consumer.close()
