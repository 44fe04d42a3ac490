"""The store on SQLite and on PostgreSQL: upsert semantics, queries, state history, rules, outbox,
retention, and no committed finding lost when the writer is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import msgspec
from tests.detections import POD, T0

from bindrift.findings.suppression import SuppressionRule
from bindrift.schema.finding import FileInfo, Finding, Resource
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore


def make(n: int, **changes: object) -> Finding:
    base = Finding(
        id=f"f{n:04}", category="Added Binary Executed", severity="low", title="added", summary=f"/tmp/bin{n} ran",
        first_seen=T0 + timedelta(minutes=n), last_seen=T0 + timedelta(minutes=n), resource=POD,
        file=FileInfo(path=f"/tmp/bin{n}", sha256=f"{n:064x}"), source="agent",
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def test_upsert_merges_repeats_and_keeps_state(store: SqlStore) -> None:
    first = store.upsert_finding(make(1))
    assert first.count == 1 and first.first_seen == T0 + timedelta(minutes=1)
    store.set_state("f0001", "muted", "alice", "known CI job")
    later = make(1, first_seen=T0 + timedelta(hours=5), last_seen=T0 + timedelta(hours=5), count=1,
                 severity="critical", category="Added Malicious Binary Executed")  # fmt: skip
    merged = store.upsert_finding(later)
    assert merged.count == 2
    assert merged.first_seen == T0 + timedelta(minutes=1), "first seen kept"
    assert merged.last_seen == T0 + timedelta(hours=5)
    assert merged.state == "muted", "a repeat does not reopen a muted finding"
    assert merged.category == "Added Malicious Binary Executed" and merged.severity == "critical"
    assert [(c.state, c.by, c.reason) for c in merged.state_history] == [("muted", "alice", "known CI job")]
    older = store.upsert_finding(make(1, last_seen=T0))
    assert older.last_seen == T0 + timedelta(hours=5) and older.count == 3, "last seen never goes back"


def test_filters_sorting_and_pagination(store: SqlStore) -> None:
    other = Resource(node="node-2", cluster="prod-us", namespace="payments", pod="api-1", container_id="e" * 64,
                     image="registry.example/pay/api@sha256:" + "1" * 64)  # fmt: skip
    for n in range(10):
        store.upsert_finding(make(n, severity="high" if n % 3 == 0 else "low",
                                  resource=other if n >= 7 else POD))  # fmt: skip
    assert store.count_findings() == 10
    assert store.count_findings(FindingFilter(namespace="payments")) == 3
    assert store.count_findings(FindingFilter(pod="web-0", min_severity="high")) == 3  # 0, 3, 6
    assert store.count_findings(FindingFilter(image="registry.example/shop/web")) == 7
    assert store.count_findings(FindingFilter(image="registry.example/pay/api")) == 3
    assert store.count_findings(FindingFilter(node="node-2", cluster="prod-us")) == 3
    assert store.count_findings(FindingFilter(text="/TMP/BIN4")) == 1
    assert store.count_findings(FindingFilter(text="100%_")) == 0, "LIKE wildcards in free text are literal"
    window = FindingFilter(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))
    assert [f.id for f in store.list_findings(window)] == ["f0004", "f0003", "f0002"]
    page = store.list_findings(FindingFilter(sort="first_seen", limit=3, offset=3))
    assert [f.id for f in page] == ["f0003", "f0004", "f0005"]
    by_severity = store.list_findings(FindingFilter(sort="-severity", limit=4))
    assert [f.severity for f in by_severity] == ["high"] * 4
    assert store.counts_by("severity") == {"high": 4, "low": 6}


def test_state_changes_are_recorded(store: SqlStore) -> None:
    store.upsert_finding(make(1))
    store.set_state("f0001", "resolved", "bob", "binary removed, image rebuilt")
    reopened = store.set_state("f0001", "active", "carol", "seen again")
    assert reopened is not None and reopened.state == "active"
    assert [(c.state, c.by) for c in reopened.state_history] == [("resolved", "bob"), ("active", "carol")]
    assert store.set_state("nope", "muted", "x", "y") is None


def test_rules_intel_sources_outbox_and_retention(store: SqlStore) -> None:
    rule = SuppressionRule(id="r1", reason="ci", created_by="alice", created_at=T0, namespace="ci")
    store.add_suppression(rule)
    assert store.suppression_rules() == [rule]
    assert store.remove_suppression("r1") and not store.remove_suppression("r1")
    store.add_intel_source("/etc/bindrift/iocs.txt", "sha256")
    assert store.intel_sources() == [("/etc/bindrift/iocs.txt", "sha256")]
    store.enqueue("webhook", b'{"a": 1}')
    ((outbox_id, payload, attempts),) = store.pending("webhook")
    assert payload == b'{"a": 1}' and attempts == 0
    store.attempted(outbox_id)
    assert store.pending("webhook")[0][2] == 1
    store.delivered(outbox_id)
    assert store.pending("webhook") == []
    for n in range(4):
        store.upsert_finding(make(n))
    assert store.purge(T0 + timedelta(minutes=2)) == 2
    assert [f.id for f in store.list_findings(FindingFilter(sort="first_seen"))] == ["f0002", "f0003"]


WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from bindrift.schema.finding import FileInfo, Finding, Resource
from bindrift.sinks.store.sql_store import SqlStore
store = SqlStore(sys.argv[1])
t0 = datetime(2026, 11, 1, tzinfo=UTC)
for n in range(100000):
    store.upsert_finding(Finding(id=f"k{n}", category="Added Binary Executed", severity="low", title="t",
        summary="s", first_seen=t0, last_seen=t0, resource=Resource(node="n"), file=FileInfo(path=f"/x{n}"),
        source="test"))
    print(f"k{n}", flush=True)
"""


def test_sigkill_mid_write_loses_no_committed_finding(store_url: str) -> None:
    SqlStore(store_url).close()  # schema ready before the writer starts
    child = subprocess.Popen([sys.executable, "-c", WRITER, store_url], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    assert child.stdout is not None
    committed = []
    deadline = time.monotonic() + 60
    while len(committed) < 150 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        committed.append(line.strip())
    os.kill(child.pid, signal.SIGKILL)  # mid-stream: the writer is inside its next transaction
    child.wait(timeout=30)
    assert len(committed) >= 150, "the writer did not get going"
    reopened = SqlStore(store_url)
    try:
        stored = {f.id for f in reopened.list_findings(FindingFilter(limit=10_000))}
    finally:
        reopened.close()
    assert set(committed) <= stored


def _open_and_close(url: str) -> None:
    SqlStore(url).close()


def test_processes_opening_a_fresh_database_together_all_succeed(store_url: str) -> None:
    """A deployment's workers and API start at once against a new database: the migration runs once."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_open_and_close, args=(store_url,)) for _ in range(5)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * 5
    store = SqlStore(store_url)
    try:
        assert store.count_findings() == 0
    finally:
        store.close()


def test_sightings_out_of_order_widen_the_span(store: SqlStore) -> None:
    """A bus redelivery can bring an earlier sighting after a later one: first and last seen cover both."""
    from tests.detections import detection

    from bindrift.findings.pipeline import FindingsPipeline

    pipeline = FindingsPipeline(store)
    pipeline.process(detection(minutes=60))
    pipeline.process(detection(minutes=0))
    merged = pipeline.process(detection(minutes=30))
    assert (merged.count, merged.first_seen, merged.last_seen) == (3, T0, T0 + timedelta(minutes=60))


def test_get_findings_whole_in_one_call(store: SqlStore) -> None:
    from tests.detections import detection

    from bindrift.findings.pipeline import FindingsPipeline
    from bindrift.schema.finding import FileInfo, ResponseAction

    pipeline = FindingsPipeline(store)
    a = pipeline.process(detection())
    b = pipeline.process(detection(file=FileInfo(path="/tmp/y", sha256="c" * 64)))
    store.set_state(a.id, "muted", "alice", "lab")
    store.record_action(b.id, ResponseAction("kill", "bob", T0, detail="killed pid 4242"))
    found = {f.id: f for f in store.get_findings([a.id, "unknown", b.id])}
    assert set(found) == {a.id, b.id}
    assert [(c.state, c.by, c.reason) for c in found[a.id].state_history] == [("muted", "alice", "lab")]
    assert found[a.id].actions == [] and found[b.id].state_history == []
    assert [(x.action, x.by, x.detail) for x in found[b.id].actions] == [("kill", "bob", "killed pid 4242")]
    assert found[a.id] == store.get_finding(a.id)
