"""The evidence store on a real SQLite store: content-addressed copies from a descriptor, the size cap,
verification before hand-out, and retention."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bindrift.response.evidence import EvidenceBudget, EvidenceError, EvidenceStore
from bindrift.schema.finding import FileInfo, Finding, Resource
from bindrift.sinks.store.sql_store import SqlStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _finding(finding_id: str, path: str, sha: str) -> Finding:
    return Finding(id=finding_id, category="Added Binary Executed", severity="low", title="t", summary="s",
                   first_seen=NOW, last_seen=NOW, resource=Resource(node="n1", container_id="c" * 64),
                   file=FileInfo(path=path, sha256=sha, size=3), source="agent")  # fmt: skip


def _fd(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def test_capture_record_and_export(tmp_path: Path, store: SqlStore) -> None:
    data = os.urandom(3 * 2**20 + 17)
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "bin").write_bytes(data)
    evidence = EvidenceStore(tmp_path / "ev", store, budget=EvidenceBudget(max_bytes=4 * 2**20))
    fd = _fd(tmp_path / "bin")
    inode = os.fstat(fd).st_ino
    try:
        (tmp_path / "bin").unlink()  # the attacker deletes it: the descriptor still holds the content
        blob = evidence.capture(fd)
    finally:
        os.close(fd)
    assert blob is not None and (blob.sha256, blob.size, blob.inode) == (sha, len(data), inode)
    assert blob.stored == tmp_path / "ev" / "sha256" / sha[:2] / sha and blob.stored.read_bytes() == data
    assert blob.stored.stat().st_mode & 0o777 == 0o400 and list((tmp_path / "ev" / "tmp").iterdir()) == []
    store.upsert_finding(_finding("f1", "/tmp/x", sha))
    record = evidence.record(blob, _finding("f1", "/tmp/x", sha))
    assert (record.finding_id, record.sha256, record.size, record.path) == ("f1", sha, len(data), "/tmp/x")
    assert record.resource.container_id == "c" * 64 and record.stored == str(blob.stored)
    assert store.list_evidence("f1") == [record] and store.get_evidence(record.id) == record
    stored = store.get_finding("f1")
    assert stored is not None
    [capture] = stored.actions
    assert (capture.action, capture.ok, capture.by) == ("capture", True, "bindrift")
    assert capture.values == {
        "evidence_id": record.id,
        "sha256": sha,
        "size": len(data),
        "path": "/tmp/x",
        "inode": blob.inode,
    }
    out = tmp_path / "out"
    assert evidence.export(record.id, out) == record and out.read_bytes() == data
    with pytest.raises(FileExistsError):
        evidence.export(record.id, out)


def test_size_cap_and_reuse(tmp_path: Path, store: SqlStore) -> None:
    (tmp_path / "big").write_bytes(b"x" * 101)
    (tmp_path / "small").write_bytes(b"y" * 100)
    evidence = EvidenceStore(tmp_path / "ev", store, budget=EvidenceBudget(max_bytes=100))
    for name in ("big", "small"):
        fd = _fd(tmp_path / name)
        try:
            blob = evidence.capture(fd)
            again = evidence.capture(fd, hashlib.sha256(b"y" * 100).hexdigest())
        finally:
            os.close(fd)
        if name == "big":
            assert blob is None and evidence.not_captured == {"too-large": 2}
        else:
            assert blob is not None and again == blob, "a stored copy with the detector's hash is reused"
    assert evidence.not_captured == {"too-large": 2} and evidence.used == 100


def test_a_tampered_copy_is_not_handed_out(tmp_path: Path, store: SqlStore) -> None:
    (tmp_path / "bin").write_bytes(b"original")
    evidence = EvidenceStore(tmp_path / "ev", store)
    fd = _fd(tmp_path / "bin")
    try:
        blob = evidence.capture(fd)
    finally:
        os.close(fd)
    assert blob is not None
    record = evidence.record(blob, _finding("f2", "/bin", blob.sha256))
    blob.stored.chmod(0o600)
    blob.stored.write_bytes(b"replaced")
    with pytest.raises(EvidenceError, match="no longer matches"):
        evidence.export(record.id, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(EvidenceError, match="no evidence ev-missing"):
        evidence.verified_path("ev-missing")


def test_retention_keeps_copies_still_referenced(tmp_path: Path, store: SqlStore) -> None:
    (tmp_path / "a").write_bytes(b"shared")
    (tmp_path / "b").write_bytes(b"alone")
    evidence = EvidenceStore(tmp_path / "ev", store, budget=EvidenceBudget(retention=timedelta(days=30)))
    blobs = []
    for name in ("a", "b"):
        fd = _fd(tmp_path / name)
        try:
            blob = evidence.capture(fd)
        finally:
            os.close(fd)
        assert blob is not None
        blobs.append(blob)
    old = [evidence.record(blobs[0], _finding("old1", "/a", blobs[0].sha256)),
           evidence.record(blobs[1], _finding("old2", "/b", blobs[1].sha256))]  # fmt: skip
    fresh = evidence.record(blobs[0], _finding("new", "/a", blobs[0].sha256))
    assert evidence.purge(now=datetime.now(UTC) + timedelta(days=30, seconds=-5)) == 0
    removed = evidence.purge(now=fresh.captured_at + timedelta(days=30))
    assert removed == 2, [r.id for r in old]
    assert store.list_evidence() == [fresh]
    assert blobs[0].stored.exists() and not blobs[1].stored.exists()
    assert evidence.used == len(b"shared"), "the total follows what retention removed"
