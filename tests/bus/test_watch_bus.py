"""`bindrift watch --bus` and `bindrift worker` together: a foreign ELF written on a watched host file system
becomes a detection on the bus and a finding in PostgreSQL, escalated by the intelligence the workers hold."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest
from tests.bus.test_distributed import BINDRIFT, findings, start_worker, stop_worker
from tests.nats_cluster import NatsCluster

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="fanotify and mounts need root")


@pytest.mark.slow
def test_agent_on_the_bus_and_a_worker_store_the_finding(tmpfs: Path, tmp_path: Path, test_binaries: Path,
                                                         nats_folder: Path, pg_url: str) -> None:  # fmt: skip
    arm64 = (test_binaries / "busybox-static-arm64" / "bin" / "busybox").read_bytes()
    sha = hashlib.sha256(arm64).hexdigest()
    iocs = tmp_path / "iocs.txt"
    iocs.write_text(f"{sha} # bus-test-implant\n")
    added = subprocess.run([BINDRIFT, "intel", "add", str(iocs), "--db", pg_url], capture_output=True, text=True,
                           timeout=60, check=False)  # fmt: skip
    assert added.returncode == 0, added.stderr
    server = NatsCluster(nats_folder, 1)
    server.start(0)
    worker_log, agent_log, metrics = tmp_path / "worker.log", tmp_path / "agent.log", tmp_path / "agent.prom"
    worker = start_worker(server, pg_url, worker_log)
    with agent_log.open("w") as err:
        agent = subprocess.Popen([BINDRIFT, "watch", "--bus", server.urls[0], "--host-path", str(tmpfs),
                                  "--node-name", "edge-7", "--spool", str(tmp_path / "spool"), "--duration", "60",
                                  "--metrics-file", str(metrics)], stdout=subprocess.PIPE, stderr=err)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while f"watching {tmpfs}" not in agent_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"watching {tmpfs}" in agent_log.read_text(), agent_log.read_text()
        subprocess.run(["dd", f"of={tmpfs / 'drop'}", "status=none"], input=arm64, check=True)
        deadline = time.monotonic() + 15
        while not (stored := findings(pg_url)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        agent.terminate()
        out, _ = agent.communicate(timeout=30)
        counts = stop_worker(worker, worker_log)
        server.stop()
    assert list(stored) == [f"{tmpfs}/drop"], agent_log.read_text() + worker_log.read_text()
    finding = stored[f"{tmpfs}/drop"]
    assert finding.category == "Suspicious binary" and finding.severity == "critical", "escalated by the worker's intel"
    assert finding.indicator is not None and finding.indicator.sha256 == sha
    assert [(m.name, m.kind) for m in finding.indicator.matches] == [("bus-test-implant", "sha256")]
    assert finding.file.elf is not None and finding.file.elf.arch == "aarch64"
    writer = finding.writer
    assert writer is not None and writer.pid > 0
    assert writer.exe.endswith("/dd") or writer.exe == "", "dd, unless it ended before /proc was read (docs/agent.md)"
    assert finding.resource.node == "edge-7" and finding.resource.container_id == "" and finding.count == 1
    assert finding.source == "agent" and finding.summary == (
        f"{tmpfs}/drop in edge-7, written by {writer.exe or writer.comm} (pid {writer.pid}); "
        f"matches bus-test-implant ({iocs}); foreign_arch"
    )
    assert out == b"", "with --bus the agent stores and prints nothing itself"
    assert counts == {"stored": 1, "rejected": 0, "failed": 0, "dead_lettered": 0, "redelivered": 0}
    assert "bindrift_bus_published_total 1.0" in metrics.read_text()
    assert "bindrift_bus_spool_pending 0.0" in metrics.read_text()
