"""An image's reports held until its last layer is read, then given their provenance.

The layers stream top-most first and a package database usually lies in the lowest, so no member's
provenance can be decided before the image ends. Each credited report waits, with the digests its
package record may ask for (MD5, SHA-1, SHA-256: computed while its bytes were at hand, by a hashing
thread that overlaps the stream: hashlib releases the GIL), encoded in a spooled temporary file: memory
stays bounded (`IN_MEMORY`, and `PENDING` bytes awaiting their digests) however many files the image
has. A layer that fails verification has its reports and package databases dropped, counted in its error.
"""

from __future__ import annotations

import struct
import tempfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import msgspec

from bindrift.analysis.provenance.verdict import apply, digests
from bindrift.schema.severity import rank
from bindrift.schema.triage import TriageReport
from bindrift.sensors.package_db import PackageDbFile
from bindrift.sensors.targets import ImageMember, ScanError

IN_MEMORY = 32 * 2**20
PENDING = 64 * 2**20  # member bytes held while their digests are computed
RECORD_ALGORITHMS = ("md5", "sha1")  # dpkg and old rpm; apk (rpm's SHA-256 is the member's own hash)
_LENGTH = struct.Struct("<I")


class _Held(msgspec.Struct, array_like=True):
    report: TriageReport
    digests: dict[str, bytes]


class HeldImage:
    """The credited reports and package databases of the image being read."""

    def __init__(self, compute_hash: bool) -> None:
        self.compute_hash = compute_hash
        self.db_files: list[PackageDbFile] = []  # of the layer being read
        self._credited_dbs: list[PackageDbFile] = []
        self._spool = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)  # noqa: SIM115 - closed by release()
        self._layer_start = 0
        self._layer_count = 0
        self._count = 0
        self._encoder = msgspec.msgpack.Encoder()
        self._hasher: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[TriageReport, Future[dict[str, bytes]] | None, int, str | None]] = deque()
        self._pending_bytes = 0

    def add(self, report: TriageReport, member: ImageMember) -> None:
        """Hold `report`, with the digests of `member`'s bytes its record may need (when the file is
        hashed, or has a finding a record could cap)."""
        future = None
        if member.source is not None and (self.compute_hash or any(rank(f.severity) for f in report.findings)):
            algorithms = RECORD_ALGORITHMS + (() if member.sha256 else ("sha256",))
            self._hasher = self._hasher or ThreadPoolExecutor(1, thread_name_prefix="bindrift-digests")
            future = self._hasher.submit(digests, member.source, algorithms)
            self._pending_bytes += member.size
        self._pending.append((report, future, member.size if future else 0, member.sha256))
        self._layer_count += 1
        self._write(PENDING)

    def _write(self, pending: int) -> None:
        """Spool the pending reports in order: those whose digests are done, and, waiting for them, as many
        more as leave at most `pending` bytes held (-1: all of them)."""
        while self._pending:
            report, future, size, sha256 = self._pending[0]
            if future is not None and not future.done() and self._pending_bytes <= pending:
                return
            self._pending.popleft()
            try:
                found = future.result() if future is not None else {}
            except OSError:  # a spilled member's temporary file failed: its content is not compared
                found = {}
            self._pending_bytes -= size
            if sha256:  # over every byte, even of a member kept only in part
                found["sha256"] = sha256.encode()
            encoded = self._encoder.encode(_Held(report, found))
            self._spool.write(_LENGTH.pack(len(encoded)) + encoded)

    def layer_end(self, image: str, layer: str, problems: list[str]) -> Iterator[ScanError]:
        """Credit the layer's reports and databases, or drop them and say so."""
        self._write(-1)
        if problems:
            lost = f"; {self._layer_count} file(s) of this layer not reported" if self._layer_count else ""
            if self.db_files:
                lost += f"; {len(self.db_files)} package database file(s) of this layer not applied"
            for problem in problems:
                yield ScanError(f"{image}@{layer}", problem + lost)
            self._spool.seek(self._layer_start)
            self._spool.truncate()
        else:
            self._count += self._layer_count
            self._credited_dbs += self.db_files
        self._layer_start = self._spool.tell()
        self._layer_count = 0
        self.db_files = []

    def release(self, root_links: dict[str, str]) -> Iterator[TriageReport | ScanError]:
        """The held reports with their provenance, after the errors of refused package databases."""
        from bindrift.analysis.provenance.image import image_index

        usable = []
        for found in self._credited_dbs:
            if found.content is None:
                yield ScanError(f"{found.image}!{found.path}", found.error or "package database refused")
            else:
                usable.append((found.kind, found.path, found.content))
        image = self._credited_dbs[0].image if self._credited_dbs else ""
        index, problems = image_index(usable, root_links) if usable else (None, [])
        self._credited_dbs = []
        for path, problem in problems:
            yield ScanError(f"{image}!{path}", problem)
        self._write(-1)
        if self._hasher is not None:
            self._hasher.shutdown()
        decoder = msgspec.msgpack.Decoder(_Held)
        self._spool.seek(0)
        for _ in range(self._count):
            (length,) = _LENGTH.unpack(self._spool.read(_LENGTH.size))
            held = decoder.decode(self._spool.read(length))
            report = held.report
            record = index.lookup(report.path) if index is not None and report.is_elf else None
            if record is not None and index is not None:
                apply(report, index, record=record, digest=held.digests.get(record.algorithm), verify=self.compute_hash)
            yield report
        self._spool.close()
