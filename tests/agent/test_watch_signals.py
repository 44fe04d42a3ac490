"""`bindrift watch` stopped by SIGTERM while it is still starting (a pod deleted right after it was scheduled):
it ends cleanly, exit 0, its store closed and its metrics written, never killed by the signal's default."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="fanotify needs root")


def test_sigterm_while_starting_ends_the_agent_cleanly(tmp_path: Path) -> None:
    log, metrics = tmp_path / "agent.log", tmp_path / "bindrift.prom"
    with log.open("w") as err:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", f"sqlite:///{tmp_path / 'a.db'}", "--duration", "60",
                                  "--metrics-file", str(metrics)], stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    try:
        # The process sensor is chosen while the agent is built, before it says it started: held there.
        wait_for(lambda: "process context from" in log.read_text(), 30, "the agent being built")
        agent.send_signal(signal.SIGSTOP)
        agent.send_signal(signal.SIGTERM)
        agent.send_signal(signal.SIGCONT)
        assert agent.wait(timeout=30) == 0, log.read_text()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert "Traceback" not in log.read_text() and metrics.exists()
