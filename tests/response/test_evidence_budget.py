"""The evidence budget on a real store and real file systems: the total cap, the free-space floor (a small
tmpfs), the per-container rate, retention applied while running; what is not captured is recorded on the
finding, counted, and reported once as *Coverage degraded*."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bindrift.response.evidence import EvidenceBudget, EvidenceStore
from bindrift.response.responder import Responder
from bindrift.schema.finding import FileInfo, Finding, Resource
from bindrift.sinks.store.sql_store import SqlStore

LARGE = EvidenceBudget(max_bytes=2**30, max_total_bytes=2**40, min_free_bytes=0, container_bytes_per_hour=2**40)


def _capture(evidence: EvidenceStore, path: Path, scope: str = "c1") -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return evidence.capture(fd, "", scope) is not None
    finally:
        os.close(fd)


def _files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    made = []
    for i in range(count):
        (folder / f"b{i}").write_bytes(os.urandom(size))
        made.append(folder / f"b{i}")
    return made


def _finding(finding_id: str, path: str, sha: str) -> Finding:
    now = datetime.now(UTC)
    return Finding(id=finding_id, category="Added Binary Executed", severity="low", title="t", summary="s",
                   first_seen=now, last_seen=now, resource=Resource(node="n1", container_id="c" * 64),
                   file=FileInfo(path=path, sha256=sha, size=100), source="agent")  # fmt: skip


def test_total_cap_records_what_is_not_captured(tmp_path: Path, store: SqlStore) -> None:
    skipped: list[str] = []
    budget = EvidenceBudget(max_bytes=100, max_total_bytes=250, min_free_bytes=0, container_bytes_per_hour=2**40)
    evidence = EvidenceStore(tmp_path / "ev", store, budget=budget, on_skip=skipped.append)
    files = _files(tmp_path / "src", 3, 100)
    assert [_capture(evidence, f) for f in files] == [True, True, False]
    held = sum(p.stat().st_size for p in (tmp_path / "ev" / "sha256").glob("*/*"))
    assert held == evidence.used == 200 and skipped == ["total-cap"] and evidence.not_captured == {"total-cap": 1}
    assert EvidenceStore(tmp_path / "ev", store, budget=budget).used == 200, "measured again at start"

    fd = os.open(files[2], os.O_RDONLY)
    try:
        inode = os.fstat(fd).st_ino
        assert evidence.capture(fd, "9" * 64, "c1") is None
    finally:
        os.close(fd)
    finding = _finding("f1", "/tmp/b2", "9" * 64)
    store.upsert_finding(finding)
    responder = Responder(store, evidence=evidence)
    responder.on_finding(finding, None)
    stored = store.get_finding("f1")
    assert stored is not None
    [capture] = stored.actions
    assert (capture.action, capture.ok) == ("capture", False)
    assert capture.detail == "evidence not captured: the store holds 200 bytes: 100 more is over its 250-byte cap"
    assert capture.values == {"reason": "total-cap", "sha256": "9" * 64, "path": "/tmp/b2", "inode": inode}

    fd = os.open(files[2], os.O_RDONLY)
    try:
        assert evidence.capture(fd, "9" * 64, "c1") is None  # the same binary again: still no room
    finally:
        os.close(fd)
    responder.on_finding(store.get_finding("f1") or finding, None)
    assert store.audit_log("f1") == [("f1", capture)], "a repeat adds no second refusal to the finding"
    assert "9" * 64 not in evidence.skipped, "taken, not kept"

    degraded = responder.housekeeping(Resource(node="n1"))
    assert degraded is not None and degraded.category == "Coverage degraded"
    assert degraded.evidence[0].summary == (
        "3 binaries not captured as evidence (3 total-cap); 3 since the agent started"
    )
    assert degraded.evidence[0].values == {"total-cap": 3, "since_start": 3}
    assert responder.housekeeping(Resource(node="n1")) is None, "reported once"


def test_free_space_floor_on_a_small_file_system(tmp_path: Path, tmpfs: Path, store: SqlStore) -> None:
    budget = EvidenceBudget(max_bytes=2**30, max_total_bytes=2**40, min_free_bytes=11 * 2**20,
                            container_bytes_per_hour=2**40)  # fmt: skip
    evidence = EvidenceStore(tmpfs / "ev", store, budget=budget)  # a 16 MiB tmpfs
    files = _files(tmp_path / "src", 3, 3 * 2**20)
    assert [_capture(evidence, f) for f in files] == [True, False, False]
    vfs = os.statvfs(tmpfs)
    assert vfs.f_bavail * vfs.f_frsize >= 11 * 2**20 and evidence.not_captured == {"free-space": 2}


def test_per_container_rate(tmp_path: Path, store: SqlStore) -> None:
    budget = EvidenceBudget(max_bytes=2**30, max_total_bytes=2**40, min_free_bytes=0, container_bytes_per_hour=250)
    evidence = EvidenceStore(tmp_path / "ev", store, budget=budget)
    files = _files(tmp_path / "src", 4, 100)
    assert [_capture(evidence, f, "noisy") for f in files[:3]] == [True, True, False]
    assert _capture(evidence, files[3], "quiet"), "another container has its own allowance"
    assert evidence.not_captured == {"container-rate": 1}
    evidence.buckets["noisy"].at -= 3600.0  # an hour on: the bucket is full again
    assert _capture(evidence, files[2], "noisy")


def test_retention_applies_while_running(tmp_path: Path, store: SqlStore) -> None:
    budget = EvidenceBudget(max_bytes=100, max_total_bytes=250, min_free_bytes=0, container_bytes_per_hour=2**40,
                            retention=timedelta(0), purge_every_s=3600)  # fmt: skip
    evidence = EvidenceStore(tmp_path / "ev", store, budget=budget)
    files = _files(tmp_path / "src", 3, 100)
    for i, path in enumerate(files[:2]):
        fd = os.open(path, os.O_RDONLY)
        try:
            blob = evidence.capture(fd, "", "c1")
        finally:
            os.close(fd)
        assert blob is not None
        evidence.record(blob, _finding(f"f{i}", str(path), blob.sha256))
    assert not _capture(evidence, files[2]) and evidence.maintain() == 0, "not due yet"
    assert evidence.maintain(now=time.monotonic() + 3600) == 2
    assert evidence.used == 0 and store.list_evidence() == []
    assert _capture(evidence, files[2]), "room again, without a restart"
