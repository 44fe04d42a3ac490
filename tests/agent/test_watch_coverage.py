"""Lost sensor events are never silent: while the agent is stopped, a burst of process events overflows
its proc-connector socket (procfs) or its eBPF ring buffer (ebpf); when it runs again the loss is counted,
exposed in its metrics, and raised as a *Coverage degraded* finding."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_logged, wait_stored

from bindrift.sinks.store.sql_store import FindingFilter

BURST = "i=0; while [ $i -lt 12000 ]; do /bin/true; i=$((i+1)); done"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="the proc connector needs root")]


@pytest.mark.parametrize(("sensor", "source", "reason"), [("procfs", "proc_connector", "enobufs"),
                                                          ("ebpf", "ebpf", "ring_full")])  # fmt: skip
def test_lost_events_raise_coverage_degraded(tmp_path: Path, sensor: str, source: str, reason: str) -> None:
    db = f"sqlite:///{tmp_path / 'coverage.db'}"
    log, metrics = tmp_path / "agent.log", tmp_path / "bindrift.prom"
    with log.open("w") as err:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--node-name", "node-cov", "--duration", "120",
                                  "--metrics-file", str(metrics), "--process-sensor", sensor],
                                 stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    try:
        wait_logged(log, "agent started", 30)
        time.sleep(0.5)
        os.kill(agent.pid, signal.SIGSTOP)
        try:
            subprocess.run(["sh", "-c", BURST], check=True, timeout=120)  # fork, exec, exit: three events each
        finally:
            os.kill(agent.pid, signal.SIGCONT)
        # The sensor-queue loss (other containers on this shared machine may have coverage findings of their own).
        found = wait_stored(db, FindingFilter(category="Coverage degraded", node="node-cov"), 30,
                            keep=lambda finding: finding.file.path == "sensor-queues")  # fmt: skip
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    (finding,) = found
    assert finding.severity == "medium" and finding.source == "agent" and finding.resource.container_id == ""
    (loss,) = finding.evidence
    lost = loss.values["process_events_lost"]
    assert loss.values["process_sensor"] == sensor
    assert loss.kind == "loss" and isinstance(lost, int) and lost > 0 and loss.values["total_lost"] == lost
    assert "lost message" in loss.summary
    counter = f'bindrift_events_dropped_total{{reason="{reason}",source="{source}"}}'
    exposed = [line for line in metrics.read_text().splitlines() if line.startswith(counter)]
    assert len(exposed) == 1 and float(exposed[0].split()[-1]) >= lost
