"""The issue's evidence scenario, scaled down, with a real agent and a real podman container: distinct large
binaries written, executed and deleted one after another. The evidence store stays under its total cap;
each binary not kept says so on its finding, the loss is counted in the metrics and reported as
*Coverage degraded*."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_for
from tests.containers import busybox_rootfs_tar, make_podman, podman_available

from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

pytestmark = [pytest.mark.skipif(not podman_available(), reason="needs podman, as root"), pytest.mark.slow]
BINARIES = 6
CAP_MB = 5  # room for two of the ~1.9 MiB binaries


def test_distinct_large_binaries_keep_the_store_under_its_cap(tmp_path: Path, test_binaries: Path) -> None:
    podman = make_podman(tmp_path / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(busybox, tmp_path / "rootfs.tar")),
           "localhost/bdbudget:latest")  # fmt: skip
    db, log, metrics = f"sqlite:///{tmp_path / 'agent.db'}", tmp_path / "agent.log", tmp_path / "metrics.prom"
    evidence = tmp_path / "evidence"
    with log.open("w") as err:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--evidence-dir", str(evidence),
                                  "--evidence-total-mb", str(CAP_MB), "--evidence-max-mb", "4",
                                  "--metrics-file", str(metrics), "--duration", "120"],
                                 stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    cid = ""
    try:
        wait_for(lambda: "agent started" in log.read_text() or agent.poll() is not None, 20, "the agent")
        cid = podman("run", "-d", "--name", f"bdbudget-{uuid.uuid4().hex[:8]}", "localhost/bdbudget:latest",
                     "sleep", "300").strip()  # fmt: skip
        wait_for(lambda: f"watching container {cid}" in log.read_text(), 30, "discovery")  # a loaded, shared machine
        script = "; ".join(f"mkdir /tmp/d{i} && cp /bin/busybox /tmp/d{i}/true && echo {i} >> /tmp/d{i}/true && "
                           f"/tmp/d{i}/true && sleep 0.3 && rm -r /tmp/d{i}" for i in range(BINARIES))  # fmt: skip
        subprocess.run(["podman", "exec", cid, "sh", "-c", script], env=podman.env, check=True, timeout=60)

        def findings() -> list[str]:
            store = SqlStore(db)
            try:
                return [f.id for f in store.list_findings(FindingFilter(container_id=cid))]
            finally:
                store.close()

        wait_for(lambda: len(findings()) == BINARIES, 60, "a finding per binary")
        wait_for(lambda: _not_captured(db) >= BINARIES - 2, 30, "the Coverage degraded report")
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        if cid:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False,
                           timeout=60)  # fmt: skip
        podman.reset()
    held = sum(p.stat().st_size for p in (evidence / "sha256").glob("*/*"))
    assert 0 < held <= CAP_MB * 2**20, held
    store = SqlStore(db)
    try:
        captures = [a for f in store.list_findings(FindingFilter(container_id=cid))
                    for a in (store.get_finding(f.id) or f).actions if a.action == "capture"]  # fmt: skip
    finally:
        store.close()
    # The agent sees every container on the machine: others' captures may share the cap, never exceed it.
    kept = [a for a in captures if a.ok]
    refused = [a for a in captures if not a.ok]
    assert len(captures) == BINARIES and len(kept) <= 2 and len(refused) >= BINARIES - 2
    assert sum(int(str(a.values["size"])) for a in kept) <= held
    assert {a.values["reason"] for a in refused} == {"total-cap"}
    assert all(a.detail.startswith("evidence not captured: the store holds ") for a in refused)
    assert _not_captured(db) >= len(refused), "reported as Coverage degraded"
    dropped = [line for line in metrics.read_text().splitlines()
               if line.startswith('bindrift_events_dropped_total{reason="total-cap",source="evidence"}')]  # fmt: skip
    assert len(dropped) == 1 and float(dropped[0].split()[-1]) >= len(refused)


def _not_captured(db: str) -> int:
    """Captures not made since the agent started, as its latest Coverage degraded report says."""
    store = SqlStore(db)
    try:
        reports = [e for f in store.list_findings(FindingFilter()) if f.category == "Coverage degraded"
                   for e in f.evidence if e.kind == "evidence-not-captured"]  # fmt: skip
    finally:
        store.close()
    return max((int(str(e.values["since_start"])) for e in reports), default=0)
