"""The evidence store: a finding's binary, copied through the event's descriptor at detection time (before
an attacker can delete it) into a content-addressed folder, `<dir>/sha256/ab/abcd…`, with its metadata in
the database. Every copy is re-read and its SHA-256 checked before it is kept and before it is handed out.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bindrift.response.store_protocol import ResponseStore
from bindrift.schema.finding import Finding, ResponseAction
from bindrift.schema.response import EvidenceRecord

log = logging.getLogger(__name__)
CHUNK = 1 << 20
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_RETENTION = timedelta(days=30)


class EvidenceError(Exception):
    """Evidence missing, or its stored copy no longer matches its SHA-256."""


@dataclass(frozen=True, slots=True)
class Blob:
    """A verified copy in the store."""

    sha256: str
    size: int
    stored: Path


def _hash_file(path: Path, limit: int) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while size <= limit and (chunk := fh.read(CHUNK)):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class EvidenceStore:
    """Copies binaries into `root` (mode 0700) and records them; files above `max_bytes` are not kept."""

    def __init__(self, root: str | os.PathLike[str], store: ResponseStore, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 retention: timedelta = DEFAULT_RETENTION) -> None:  # fmt: skip
        self.root = Path(root)
        self.store = store
        self.max_bytes = max_bytes
        self.retention = retention
        self.too_large = 0
        self.failed = 0
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)

    def blob_path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def capture(self, fd: int, sha256: str = "") -> Blob | None:
        """Copy the file behind `fd` (read with pread from offset 0). None when it is larger than the cap or
        the copy failed (both counted and logged). When `sha256` (already computed by the detector) is
        stored with the same size, that copy is reused."""
        try:
            size = os.fstat(fd).st_size
            known = self.blob_path(sha256) if len(sha256) == 64 else None
            if known is not None and known.is_file() and known.stat().st_size == size:
                return Blob(sha256, size, known)
            if size > self.max_bytes:
                self.too_large += 1
                log.info("evidence not captured: %d bytes is over the %d-byte cap", size, self.max_bytes)
                return None
            return self._copy(fd)
        except OSError as exc:
            self.failed += 1
            log.warning("evidence not captured: %s", exc)
            return None

    def _copy(self, fd: int) -> Blob | None:
        tmp = self.root / "tmp" / uuid.uuid4().hex
        digest, size = hashlib.sha256(), 0
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o400)
        try:
            while chunk := os.pread(fd, CHUNK, size):
                size += len(chunk)
                if size > self.max_bytes:  # grew while being copied
                    self.too_large += 1
                    return None
                digest.update(chunk)
                os.write(out, chunk)
            os.fsync(out)
        finally:
            os.close(out)
            if size > self.max_bytes:
                tmp.unlink(missing_ok=True)
        sha = digest.hexdigest()
        if _hash_file(tmp, self.max_bytes) != (sha, size):
            tmp.unlink(missing_ok=True)
            self.failed += 1
            log.warning("evidence copy of %s failed verification", sha)
            return None
        final = self.blob_path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
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
            values={"evidence_id": record.id, "sha256": blob.sha256, "size": blob.size},
        ))  # fmt: skip
        return record

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
        records, kept = self.store.purge_evidence((now or datetime.now(UTC)) - self.retention)
        for sha in {r.sha256 for r in records} - kept:
            self.blob_path(sha).unlink(missing_ok=True)
        return len(records)
