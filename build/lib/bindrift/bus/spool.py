"""A bounded, ordered spool on disk: every detection is appended here first and published from here, so
neither a bus outage nor a restart loses it and memory stays flat however long the bus is away.

Segment files `<seq>.seg` hold records `<length u32><crc32 u32><body>`; a `cursor` file names the first
record not yet published. When the spool would pass its byte cap, the oldest segment is dropped and its
unpublished records are counted in `dropped`. A torn or corrupt record (a crash mid-write) ends its segment
and is counted in `rejected`. Losing the cursor only republishes, which the bus and the store deduplicate.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)
HEADER = struct.Struct("<II")
MAX_RECORD = 1 << 20
DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_SEGMENT_BYTES = 1 << 20


class Position(NamedTuple):
    """A place in the spool: segment, byte offset in it, and the number of records before it in that segment."""

    seq: int
    offset: int
    record: int


class Spool:
    """Append from any thread; one reader takes records in order and commits what the bus acknowledged."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:  # fmt: skip
        if max_bytes < 2 * segment_bytes:
            raise ValueError("the spool must hold at least two segments")
        self.directory = directory
        self.max_bytes, self.segment_bytes = max_bytes, segment_bytes
        self.dropped = 0  # records lost to the byte cap
        self.rejected = 0  # corrupt records skipped, oversized bodies refused
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise ValueError(f"the spool {directory} is in use by another process") from None
        self._sizes: dict[int, int] = {}
        self._records: dict[int, int] = {}
        self._reader: tuple[int, int] | None = None  # (segment, descriptor) last read
        for path in directory.glob("*.seg"):
            if path.stem.isdigit():
                seq = int(path.stem)
                self._sizes[seq] = path.stat().st_size
                self._records[seq] = self._count(seq)
        self._cursor = self._read_cursor()
        for seq in [s for s in self._sizes if s < self._cursor.seq]:
            self._remove(seq)
        # Never append after what may be a torn tail: a new process writes a new segment.
        self._write_seq = max([*self._sizes, self._cursor.seq - 1, 0]) + 1
        self._open_segment(self._write_seq)
        if self._cursor.seq not in self._sizes:
            self._cursor = Position(min(self._sizes), 0, 0)

    # Writing -----------------------------------------------------------------------------------

    def append(self, body: bytes) -> bool:
        """Add one record; False (counted in `rejected`) when it is larger than MAX_RECORD."""
        if len(body) > MAX_RECORD:
            self.rejected += 1
            log.warning("spool: a %d-byte record is over the %d-byte limit; not spooled", len(body), MAX_RECORD)
            return False
        record = HEADER.pack(len(body), zlib.crc32(body)) + body
        with self._lock:
            if self._sizes[self._write_seq] and self._sizes[self._write_seq] + len(record) > self.segment_bytes:
                os.close(self._fd)
                self._write_seq += 1
                self._open_segment(self._write_seq)
            while sum(self._sizes.values()) + len(record) > self.max_bytes and len(self._sizes) > 1:
                self._drop_oldest()
            os.write(self._fd, record)
            self._sizes[self._write_seq] += len(record)
            self._records[self._write_seq] += 1
        return True

    def _open_segment(self, seq: int) -> None:
        self._fd = os.open(self._path(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._sizes.setdefault(seq, 0)
        self._records.setdefault(seq, 0)

    def _drop_oldest(self) -> None:
        seq = min(self._sizes)
        lost = self._records[seq] - (self._cursor.record if self._cursor.seq == seq else 0)
        self.dropped += lost
        log.warning("spool full (%d bytes): dropped %d unpublished record(s), %d so far", self.max_bytes, lost,
                    self.dropped)  # fmt: skip
        self._remove(seq)
        if self._cursor.seq <= seq:
            self._cursor = Position(min(self._sizes), 0, 0)
            self._write_cursor()

    # Reading -----------------------------------------------------------------------------------

    def read(self, limit: int) -> tuple[list[bytes], Position]:
        """Up to `limit` records from the cursor on, in order, and the position after them."""
        with self._lock:
            bodies: list[bytes] = []
            seq, offset, index = self._cursor
            while len(bodies) < limit:
                if offset >= self._sizes.get(seq, 0):
                    if seq >= self._write_seq:
                        break
                    seq, offset, index = seq + 1, 0, 0
                    continue
                body = self._record_at(seq, offset)
                if body is None:  # corrupt or torn: the rest of this segment is unreadable
                    self.rejected += max(self._records[seq] - index, 1)
                    self._records[seq] = index
                    log.warning("spool: corrupt record in segment %d at byte %d; rest of the segment skipped",
                                seq, offset)  # fmt: skip
                    self._sizes[seq] = offset
                    continue
                bodies.append(body)
                offset, index = offset + HEADER.size + len(body), index + 1
            return bodies, Position(seq, offset, index)

    def _record_at(self, seq: int, offset: int) -> bytes | None:
        if self._reader is None or self._reader[0] != seq:
            if self._reader is not None:
                os.close(self._reader[1])
            self._reader = (seq, os.open(self._path(seq), os.O_RDONLY | os.O_CLOEXEC))
        fd = self._reader[1]
        header = os.pread(fd, HEADER.size, offset)
        if len(header) < HEADER.size:
            return None
        length, crc = HEADER.unpack(header)
        if length > MAX_RECORD:
            return None
        body = os.pread(fd, length, offset + HEADER.size)
        return body if len(body) == length and zlib.crc32(body) == crc else None

    def commit(self, position: Position) -> None:
        """Everything before `position` was published: forget it."""
        with self._lock:
            if position.seq < self._cursor.seq:  # the segment was dropped meanwhile
                return
            self._cursor = position
            for seq in [s for s in self._sizes if s < position.seq]:
                self._remove(seq)
            self._write_cursor()

    @property
    def pending(self) -> int:
        """Records not yet published."""
        with self._lock:
            return max(sum(self._records.values()) - self._cursor.record, 0)

    @property
    def size(self) -> int:
        """Bytes on disk in segment files."""
        with self._lock:
            return sum(self._sizes.values())

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)
            if self._reader is not None:
                os.close(self._reader[1])
                self._reader = None
            os.close(self._lock_fd)  # releases the lock

    # Files -------------------------------------------------------------------------------------

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:012d}.seg"

    def _remove(self, seq: int) -> None:
        if self._reader is not None and self._reader[0] == seq:
            os.close(self._reader[1])
            self._reader = None
        self._path(seq).unlink(missing_ok=True)
        self._sizes.pop(seq, None)
        self._records.pop(seq, None)

    def _count(self, seq: int) -> int:
        offset = count = 0
        while offset < self._sizes[seq] and (body := self._record_at(seq, offset)) is not None:
            offset, count = offset + HEADER.size + len(body), count + 1
        if offset < self._sizes[seq]:  # a torn or damaged tail: what follows it cannot be framed
            self.rejected += 1
            log.warning("spool: segment %d is damaged after record %d; its remaining %d byte(s) are skipped", seq,
                        count, self._sizes[seq] - offset)  # fmt: skip
            self._sizes[seq] = offset
        return count

    def _read_cursor(self) -> Position:
        try:
            seq, offset, index = (int(part) for part in (self.directory / "cursor").read_text().split()[:3])
        except (OSError, ValueError):
            return Position(min(self._sizes, default=1), 0, 0)
        return Position(seq, offset, index)

    def _write_cursor(self) -> None:
        temporary = self.directory / "cursor.tmp"
        temporary.write_text(f"{self._cursor.seq} {self._cursor.offset} {self._cursor.record}\n")
        os.replace(temporary, self.directory / "cursor")
