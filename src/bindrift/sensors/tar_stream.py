"""A bounded, strict reader of tar streams (ustar, GNU and PAX), one pass, nothing extracted.

Hand-written because `tarfile` cannot serve hostile layers: it reads a GNU long name or a PAX header
whole into memory (a 1 GiB long name in a 1 MB gzip layer took 7.4 GB of RSS), treats a bad header after
the first as the end of the archive (the rest of the layer silently dropped) and cannot say where a
stream went wrong. Here every metadata size is capped (an oversized entry is an error for that entry
only, its bytes skipped), entries and expanded bytes are capped per stream, a bad header or truncated
data is an error naming the offset, and data after the end-of-archive marker must be zeros.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

BLOCK = 512
SKIP_CHUNK = 1 << 20
# Documented in docs/scan-output.md ("Limits on image layers").
MAX_PATH = 4096
MAX_LINK = 4096
MAX_PAX = 1 << 20
MAX_ENTRIES = 1_000_000
MAX_EXPANDED = 64 * 2**30

REGULAR, HARDLINK, SYMLINK, DIRECTORY, OTHER = "file", "hardlink", "symlink", "dir", "other"
_TYPES = {b"0": REGULAR, b"\0": REGULAR, b"7": REGULAR, b"1": HARDLINK, b"2": SYMLINK, b"5": DIRECTORY}
_META = {b"L", b"K", b"x", b"g"}


class TarFormatError(Exception):
    """The stream cannot be read further (bad header, truncated data, corrupt compression, a cap)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.offset = offset


@dataclass(slots=True)
class TarEntry:
    """One member: `error` set when its metadata broke a cap or made no sense (its data is skipped)."""

    name: str
    kind: str
    size: int
    mode: int
    linkname: str
    offset: int  # where the header block starts, in the uncompressed stream
    data_offset: int
    error: str | None = None


class TarStream:
    """Entries of a tar stream in order; `read(n)` reads from the current entry's data before the next."""

    def __init__(
        self,
        stream: IO[bytes],
        *,
        max_entries: int = MAX_ENTRIES,
        max_expanded: int = MAX_EXPANDED,
        seek_skip: bool = False,
    ) -> None:
        """`seek_skip`: skip data by seeking (an archive being indexed; nothing hashed, no trailer check)."""
        self._stream = stream
        self._seek_skip = seek_skip
        self._max_entries = max_entries
        self._max_expanded = max_expanded
        self.offset = 0
        self._left = 0  # data bytes of the current entry not yet consumed
        self._pad = 0
        self._scratch = bytearray(SKIP_CHUNK)

    def read(self, size: int) -> bytes:
        """Up to `size` bytes of the current entry's data (short only at the entry's end)."""
        size = min(size, self._left)
        data = self._exact(size)
        self._left -= size
        return data

    def peek(self, size: int) -> bytes:
        """Up to `size` bytes of the current entry's data without consuming them (fewer when the stream's
        buffer holds fewer: the caller then reads)."""
        peek = getattr(self._stream, "peek", None)
        return peek(size)[: min(size, self._left)] if peek is not None else b""

    def __iter__(self) -> Iterator[TarEntry]:
        count = 0
        globals_: dict[str, str] = {}
        while True:
            self._skip(self._left + self._pad)
            self._left = self._pad = 0
            entry = self._next(globals_)
            if entry is None:
                if not self._seek_skip:
                    self._drain_trailer()
                return
            count += 1
            if count > self._max_entries:
                raise TarFormatError(f"more than {self._max_entries} entries", entry.offset)
            yield entry

    def _next(self, globals_: dict[str, str]) -> TarEntry | None:
        """The next real entry, with its GNU long name / PAX records applied; None at end of archive."""
        pax: dict[str, str] = {}
        long_name = long_link = None
        error: str | None = None
        while True:
            start = self.offset
            header = self._exact(BLOCK, eof_ok=True)
            if not header or header == bytes(BLOCK):
                return None
            typeflag, size, mode = _parse_header(header, start)
            if typeflag not in _META:
                break
            if self.offset + size > self._max_expanded:
                raise TarFormatError(f"layer expands beyond {self._max_expanded} bytes", start)
            if size > (MAX_PAX if typeflag in b"xg" else MAX_PATH if typeflag == b"L" else MAX_LINK):
                error = f"{_META_NAMES[typeflag]} of {size} bytes exceeds the cap"
                self._skip(size + _padding(size))
                continue
            data = self._exact(size)
            self._skip(_padding(size))
            if typeflag == b"L":
                long_name = _cstr(data)
            elif typeflag == b"K":
                long_link = _cstr(data)
            else:
                records = _pax_records(data)
                if records is None:
                    error = "malformed PAX header"
                else:
                    (pax if typeflag == b"x" else globals_).update(records)
        fields = {**globals_, **pax}
        name = long_name or fields.get("path") or _ustar_name(header)
        link = long_link or fields.get("linkpath") or _cstr(header[157:257])
        if "size" in fields:
            try:
                size = int(fields["size"])
            except ValueError:
                raise TarFormatError("PAX size is not a number", start) from None
            if size < 0:
                raise TarFormatError("PAX size is negative", start)
        if len(name) > MAX_PATH or len(link) > MAX_LINK:
            error = error or "path or link target longer than the cap"
        if "GNU.sparse.major" in fields or "GNU.sparse.size" in fields or typeflag == b"S":
            error = error or "sparse member (not supported)"
        kind = _TYPES.get(typeflag, OTHER)
        has_data = kind in (REGULAR, OTHER) and typeflag not in b"3456"
        self._left = size if has_data else 0
        self._pad = _padding(size) if has_data else 0
        if self.offset + self._left > self._max_expanded:
            raise TarFormatError(f"layer expands beyond {self._max_expanded} bytes", start)
        if error is not None:
            name = name[:MAX_PATH]
        return TarEntry(name, kind, size if has_data else 0, mode, link[:MAX_LINK], start, self.offset, error)

    def _exact(self, size: int, *, eof_ok: bool = False) -> bytes:
        data = self._stream.read(size) if size else b""
        while len(data) < size:
            more = self._stream.read(size - len(data))
            if not more:
                if eof_ok and not data:
                    return b""
                raise TarFormatError("stream truncated", self.offset + len(data))
            data += more
        self.offset += size
        return data

    def _skip(self, size: int) -> None:
        if self._seek_skip and size > 0:
            self._stream.seek(size, os.SEEK_CUR)
            self.offset += size
            return
        view = memoryview(self._scratch)
        while size > 0:
            got = self._stream.readinto(view[: min(size, SKIP_CHUNK)])  # type: ignore[attr-defined]
            if not got:
                raise TarFormatError("stream truncated", self.offset)
            self.offset += got
            size -= got

    def _drain_trailer(self) -> None:
        """After the end-of-archive block only zeros may follow (blocking padding); read them all, so
        digests cover the whole stream and data hidden after the end is an error, not ignored."""
        view = memoryview(self._scratch)
        while True:
            got = self._stream.readinto(view)  # type: ignore[attr-defined]
            if not got:
                return
            if view[:got].tobytes().strip(b"\0"):
                raise TarFormatError("data after the end-of-archive marker", self.offset)
            self.offset += got


_META_NAMES = {b"L": "GNU long name", b"K": "GNU long link", b"x": "PAX header", b"g": "PAX global header"}


def _parse_header(header: bytes, offset: int) -> tuple[bytes, int, int]:
    stored = _number(header[148:156], offset, "checksum")
    block = header[:148] + b"        " + header[156:]
    unsigned = sum(block)
    if stored != unsigned and stored != unsigned - 256 * sum(1 for b in block if b > 127):  # signed-char tars
        raise TarFormatError("bad tar header checksum", offset)
    size = _number(header[124:136], offset, "size")
    mode = _number(header[100:108], offset, "mode") if header[100:108].strip(b" \0") else 0
    return header[156:157], size, mode


def _number(field: bytes, offset: int, what: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        if field[0] & 0x40:
            raise TarFormatError(f"negative {what}", offset)
        return int.from_bytes(bytes([field[0] & 0x3F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarFormatError(f"bad tar header ({what} is not octal)", offset) from None


def _padding(size: int) -> int:
    return -size % BLOCK


def _cstr(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _ustar_name(header: bytes) -> str:
    name = _cstr(header[0:100])
    if header[257:263] == b"ustar\0":  # POSIX ustar: a prefix; GNU ("ustar  ") keeps times there
        prefix = _cstr(header[345:500])
        if prefix:
            return f"{prefix}/{name}"
    return name


def _pax_records(data: bytes) -> dict[str, str] | None:
    """`LEN key=value\\n` records; None when malformed."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        if space < 0 or not data[pos:space].isdigit():
            return None
        length = int(data[pos:space])
        end = pos + length
        if length <= space - pos or end > len(data) or data[end - 1 : end] != b"\n":
            return None
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq:
            return None
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos = end
    return records
