"""A layer blob as an uncompressed stream whose digests are verified while it is read.

The raw blob is hashed as it is pulled (its digest names it in the manifest); when the layer is
compressed and a diff-id is expected (docker save), the uncompressed bytes are hashed too. gzip, zstd
and uncompressed layers are read; corrupt compressed data becomes a `TarFormatError` naming the offset.
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Protocol, cast

from bindrift.sensors.tar_stream import TarFormatError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BUFFER = 1 << 20
ALGORITHMS = {"sha256": 64, "sha512": 128}


class Readable(Protocol):
    """Anything bytes can be read into (a file, a decompressor, a slice)."""

    def readinto(self, buffer: memoryview | bytearray, /) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Expected:
    """The digests a layer must have: of its blob as stored, and of its uncompressed tar (diff-id)."""

    blob: str | None = None
    diff_id: str | None = None


def parse_digest(digest: str) -> tuple[str, str] | None:
    """(algorithm, hex) of an `algorithm:hex` digest bindrift can verify, else None."""
    algorithm, _, hexdigest = digest.partition(":")
    if len(hexdigest) != ALGORITHMS.get(algorithm, -1) or not all(c in "0123456789abcdef" for c in hexdigest):
        return None
    return algorithm, hexdigest


class Slice(io.RawIOBase):
    """`length` bytes of an open file from `start`, read with `preadv` (no shared seek position)."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self._fd, self._pos, self._end = fd, start, start + length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_CUR:
            raise OSError("a blob slice seeks only forward from where it is")
        self._pos += offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        want = min(len(buffer), self._end - self._pos)
        if want <= 0:
            return 0
        got = os.preadv(self._fd, [memoryview(buffer)[:want]], self._pos)
        self._pos += got
        return got


class _Hashing(io.RawIOBase):
    """Passes bytes through, hashing them and counting them."""

    def __init__(self, inner: Readable, algorithm: str) -> None:
        self._inner = inner
        self.hash = hashlib.new(algorithm)
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        got = self._inner.readinto(buffer)
        if got:
            self.hash.update(memoryview(buffer)[:got])
            self.count += got
        return int(got or 0)


class _Decoded(io.RawIOBase):
    """A decompressor's output; its errors become `TarFormatError` at the uncompressed offset."""

    def __init__(self, inner: Readable, kind: str, raw: _Hashing, errors: tuple[type[Exception], ...]) -> None:
        self._inner, self._kind, self._raw, self._errors = inner, kind, raw, errors
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        try:  # a bounded request: decompressors allocate what is asked before copying it out
            got = int(self._inner.readinto(memoryview(buffer)[:BUFFER]) or 0)
        except self._errors as exc:
            raise TarFormatError(
                f"corrupt {self._kind} data ({exc}; compressed offset {self._raw.count})", self.count
            ) from None
        self.count += got
        return got


@contextmanager
def plain_stream(raw: IO[bytes]) -> Iterator[tuple[IO[bytes], bool]]:
    """The uncompressed tar stream of `raw` with nothing verified (a layer read again), and whether it
    can skip by seeking (an uncompressed blob)."""
    buffered = io.BufferedReader(cast(io.RawIOBase, raw), BUFFER)
    magic = buffered.peek(4)[:4]
    kind = "gzip" if magic[:2] == GZIP_MAGIC else "zstd" if magic == ZSTD_MAGIC else None
    if kind is None:
        yield buffered, raw.seekable()
        return
    decoder, _ = _decompressor(kind, buffered)
    try:
        yield io.BufferedReader(cast(io.RawIOBase, decoder), BUFFER), False
    finally:
        decoder.close()


@contextmanager
def layer_stream(raw: IO[bytes], expected: Expected) -> Iterator[tuple[IO[bytes], Callable[[], list[str]]]]:
    """The uncompressed tar stream of `raw`, and a check to call once it has been read to its end: the
    digest mismatches found (empty when every expected digest matched)."""
    blob_alg = _algorithm(expected.blob)
    hashed = _Hashing(cast(Readable, raw), blob_alg)
    buffered = io.BufferedReader(hashed, BUFFER)
    magic = buffered.peek(4)[:4]
    kind = "gzip" if magic[:2] == GZIP_MAGIC else "zstd" if magic == ZSTD_MAGIC else None
    if kind is None:
        stream: IO[bytes] = buffered
        plain: _Hashing | None = None
        if expected.diff_id and _algorithm(expected.diff_id) != blob_alg:
            plain = _Hashing(buffered, _algorithm(expected.diff_id))
            stream = io.BufferedReader(plain, BUFFER)
        yield stream, lambda: _mismatches(expected, hashed, plain or hashed)
        return
    decoder, errors = _decompressor(kind, buffered)
    try:
        decoded = _Decoded(decoder, kind, hashed, errors)
        plain = _Hashing(decoded, _algorithm(expected.diff_id)) if expected.diff_id else None
        stream = io.BufferedReader(plain or decoded, BUFFER)

        def check() -> list[str]:
            while buffered.read(BUFFER):  # anything after the compressed stream still belongs to the blob
                pass
            return _mismatches(expected, hashed, plain)

        yield stream, check
    finally:
        decoder.close()


def _decompressor(kind: str, source: IO[bytes]) -> tuple[Any, tuple[type[Exception], ...]]:
    """The decompressing reader and the exceptions that mean corrupt input."""
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=source, mode="rb"), (OSError, EOFError, zlib.error)
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    return reader, (zstandard.ZstdError, OSError, EOFError)


def _algorithm(digest: str | None) -> str:
    parsed = parse_digest(digest) if digest else None
    return parsed[0] if parsed else "sha256"


def _mismatches(expected: Expected, blob: _Hashing, plain: _Hashing | None) -> list[str]:
    problems = []
    for what, digest, hashed in (("blob digest", expected.blob, blob), ("diff-id", expected.diff_id, plain)):
        if digest is None or hashed is None:
            continue
        parsed = parse_digest(digest)
        if parsed is None:
            problems.append(f"{what} {digest!r} cannot be verified (unsupported or malformed)")
        elif hashed.hash.hexdigest() != parsed[1]:
            problems.append(f"{what} mismatch: expected {digest}, content is {parsed[0]}:{hashed.hash.hexdigest()}")
    return problems
