"""The evidence store: a finding's binary, copied through the event's descriptor at detection time (before
an attacker can delete it) into a content-addressed folder, `<dir>/sha256/ab/abcd…`, with its metadata in
the database. Every copy is re-read and its SHA-256 checked before it is kept and before it is handed out.

A budget bounds what the workload can make it hold (`EvidenceBudget`): a cap per file and in total, a
free-space floor on its file system, a byte rate per container, and retention applied while running. What
is not captured is counted by reason and remembered for its finding (`take_skipped`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bindrift.response.store_protocol import ResponseStore
from bindrift.schema.finding import Finding, ResponseAction
from bindrift.schema.response import EvidenceRecord

log = logging.getLogger(__name__)
CHUNK = 1 << 20
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_RETENTION = timedelta(days=30)
MAX_REMEMBERED = 1_000  # captures not made, kept until their finding is stored
MAX_CONTAINERS = 10_000  # rate buckets


@dataclass(frozen=True, slots=True)
class EvidenceBudget:
    """How much the evidence store may hold and take in: `max_bytes` per file, `max_total_bytes` in all,
    never leaving less than `min_free_bytes` free on its file system, `container_bytes_per_hour` from any
    one container (a bucket that refills continuously), records older than `retention` purged every
    `purge_every_s` while running."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_total_bytes: int = 1 * 2**30
    min_free_bytes: int = 1 * 2**30
    container_bytes_per_hour: int = 256 * 2**20
    retention: timedelta = DEFAULT_RETENTION
    purge_every_s: float = 3600.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float = field(default_factory=time.monotonic)


class EvidenceError(Exception):
    """Evidence missing, or its stored copy no longer matches its SHA-256."""


@dataclass(frozen=True, slots=True)
class Blob:
    """A verified copy in the store."""

    sha256: str
    size: int
    stored: Path
    inode: int = 0  # of the file the copy was made from


def _hash_file(path: Path, limit: int) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while size <= limit and (chunk := fh.read(CHUNK)):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class EvidenceStore:
    """Copies binaries into `root` (mode 0700) and records them, within `budget`. `on_skip(reason)` is
    called for each capture not made (metrics). `capture` may run on another thread than the rest (the
    agent copies on its content worker): the budget's bookkeeping is behind a lock, the copy is not."""

    def __init__(self, root: str | os.PathLike[str], store: ResponseStore, *, budget: EvidenceBudget | None = None,
                 on_skip: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.root = Path(root)
        self.store = store
        self.budget = budget or EvidenceBudget()
        self.max_bytes = self.budget.max_bytes
        self.retention = self.budget.retention
        self.on_skip = on_skip
        self.not_captured: Counter[str] = Counter()
        self.skipped: OrderedDict[str, tuple[str, str, int]] = OrderedDict()  # sha256 → (reason, detail, inode)
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.purged_at = time.monotonic()
        self._lock = threading.RLock()
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.used = self._measure()

    def blob_path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def _measure(self) -> int:
        """Bytes held now (the store's own two-level folder: bounded by what the budget let in)."""
        total = 0
        for sub in (self.root / "sha256").glob("*/*"):
            try:
                total += sub.lstat().st_size
            except OSError:
                continue
        return total

    def capture(self, fd: int, sha256: str = "", scope: str = "") -> Blob | None:
        """Copy the file behind `fd` (read with pread from offset 0), charged to the container `scope`. When
        `sha256` (already computed by the detector) is stored with the same size, that copy is reused. None
        when the budget refuses it or the copy failed: counted, logged and kept for `take_skipped`."""
        self.maintain()
        try:
            st = os.fstat(fd)
            known = self.blob_path(sha256) if len(sha256) == 64 else None
            if known is not None and known.is_file() and known.stat().st_size == st.st_size:
                return Blob(sha256, st.st_size, known, st.st_ino)
            with self._lock:
                refusal = self._refusal(st.st_size, scope)
            if refusal is not None:
                self._skip(sha256, st.st_ino, *refusal)
                return None
            blob = self._copy(fd, st.st_size)
        except OSError as exc:
            self._skip(sha256, 0, "failed", f"copy failed: {exc}")
            return None
        if blob is None:
            self._skip(sha256, st.st_ino, "failed", "the copy failed verification, or the file grew while copied")
            return None
        return Blob(blob.sha256, blob.size, blob.stored, st.st_ino)

    def _refusal(self, size: int, scope: str) -> tuple[str, str] | None:
        """(reason, detail) when the budget does not allow `size` more bytes from `scope`."""
        b = self.budget
        if size > b.max_bytes:
            return "too-large", f"{size} bytes is over the {b.max_bytes}-byte cap per file"
        if self.used + size > b.max_total_bytes:
            return (
                "total-cap",
                f"the store holds {self.used} bytes: {size} more is over its {b.max_total_bytes}-byte cap",
            )
        vfs = os.statvfs(self.root)
        free = vfs.f_bavail * vfs.f_frsize
        if free - size < b.min_free_bytes:
            return "free-space", f"{free} bytes free: {size} more would leave less than {b.min_free_bytes}"
        bucket = self._bucket(scope or "host")
        if size > bucket.tokens:
            return "container-rate", (f"{scope or 'the host'} is over its {b.container_bytes_per_hour} bytes per "
                                      f"hour ({int(bucket.tokens)} left now)")  # fmt: skip
        bucket.tokens -= size
        return None

    def _bucket(self, scope: str) -> _Bucket:
        rate = self.budget.container_bytes_per_hour
        bucket = self.buckets.pop(scope, None) or _Bucket(float(rate))
        now = time.monotonic()
        bucket.tokens, bucket.at = min(float(rate), bucket.tokens + (now - bucket.at) * rate / 3600.0), now
        self.buckets[scope] = bucket  # to the end: the least recently used bucket goes first
        if len(self.buckets) > MAX_CONTAINERS:
            self.buckets.popitem(last=False)
        return bucket

    def _skip(self, sha256: str, inode: int, reason: str, detail: str) -> None:
        if reason == "failed":
            log.warning("evidence not captured: %s", detail)
        else:
            log.info("evidence not captured: %s", detail)
        with self._lock:
            self.not_captured[reason] += 1
            self.skipped.pop(sha256, None)
            self.skipped[sha256] = (reason, detail, inode)
            if len(self.skipped) > MAX_REMEMBERED:
                self.skipped.popitem(last=False)
        if self.on_skip is not None:
            self.on_skip(reason)

    def take_skipped(self, sha256: str) -> tuple[str, str, int] | None:
        """Why the capture for `sha256` was not made (reason, detail, inode), once."""
        with self._lock:
            return self.skipped.pop(sha256, None)

    def maintain(self, now: float | None = None) -> int:
        """Retention while running: purge when `purge_every_s` has passed since the last time. Records purged."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self.purged_at < self.budget.purge_every_s:
                return 0
            self.purged_at = now
            return self.purge()

    def _copy(self, fd: int, limit: int) -> Blob | None:
        """The copy of at most `limit` bytes (the size the budget allowed): None when the file grew past it."""
        tmp = self.root / "tmp" / uuid.uuid4().hex
        digest, size = hashlib.sha256(), 0
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o400)
        try:
            while chunk := os.pread(fd, CHUNK, size):
                size += len(chunk)
                if size > limit:  # grew while being copied
                    return None
                digest.update(chunk)
                os.write(out, chunk)
            os.fsync(out)
        finally:
            os.close(out)
            if size > limit:
                tmp.unlink(missing_ok=True)
        sha = digest.hexdigest()
        if _hash_file(tmp, limit) != (sha, size):
            tmp.unlink(missing_ok=True)
            log.warning("evidence copy of %s failed verification", sha)
            return None
        final = self.blob_path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if not final.exists():
                self.used += size
            os.replace(tmp, final)  # same content under the same name: replacing an existing copy is harmless
        return Blob(sha, size, final)

    def record(self, blob: Blob, finding: Finding, by: str = "bindrift") -> EvidenceRecord:
        """The metadata row for `finding`, and a `capture` action on the finding."""
        now = datetime.now(UTC)
        record = EvidenceRecord(
            id="ev-" + uuid.uuid4().hex[:16], finding_id=finding.id, sha256=blob.sha256, size=blob.size,
            path=finding.file.path, resource=finding.resource, captured_at=now, stored=str(blob.stored),
        )  # fmt: skip
        self.store.add_evidence(record)
        self.store.record_action(finding.id, ResponseAction(
            "capture", by, now, detail=f"copied {blob.size} bytes, sha256 {blob.sha256} verified",
            values={"evidence_id": record.id, "sha256": blob.sha256, "size": blob.size, "path": finding.file.path,
                    "inode": blob.inode or None},
        ))  # fmt: skip
        return record

    def record_skipped(self, finding: Finding, by: str = "bindrift") -> bool:
        """A failed `capture` action on `finding` when its binary was not captured (why, and the inode of the
        file then, for `verify`). False when nothing was skipped for it."""
        skipped = self.take_skipped(finding.file.sha256)
        if skipped is None:
            return False
        reason, detail, inode = skipped
        self.store.record_action(finding.id, ResponseAction(
            "capture", by, datetime.now(UTC), ok=False, detail=f"evidence not captured: {detail}",
            values={"reason": reason, "sha256": finding.file.sha256, "path": finding.file.path, "inode": inode or None},
        ))  # fmt: skip
        return True

    def verified_path(self, evidence_id: str) -> tuple[EvidenceRecord, Path]:
        """The record and its stored file, after checking the file still has the recorded SHA-256."""
        record = self.store.get_evidence(evidence_id)
        if record is None:
            raise EvidenceError(f"no evidence {evidence_id}")
        path = self.blob_path(record.sha256)
        try:
            found = _hash_file(path, max(record.size, self.max_bytes))
        except OSError as exc:
            raise EvidenceError(f"evidence {evidence_id}: stored copy unreadable: {exc}") from exc
        if found != (record.sha256, record.size):
            raise EvidenceError(f"evidence {evidence_id}: stored copy no longer matches sha256 {record.sha256}")
        return record, path

    def export(self, evidence_id: str, dest: str | os.PathLike[str]) -> EvidenceRecord:
        """Write a verified copy to `dest` (mode 0400, never executable)."""
        record, path = self.verified_path(evidence_id)
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o400)
        with path.open("rb") as src, os.fdopen(out, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        return record

    def purge(self, now: datetime | None = None) -> int:
        """Retention: delete records older than the retention period, and files no record uses any more."""
        with self._lock:
            records, kept = self.store.purge_evidence((now or datetime.now(UTC)) - self.retention)
            for sha in {r.sha256 for r in records} - kept:
                path = self.blob_path(sha)
                try:
                    size = path.lstat().st_size
                    path.unlink()
                except FileNotFoundError:
                    continue
                self.used = max(0, self.used - size)
            return len(records)
