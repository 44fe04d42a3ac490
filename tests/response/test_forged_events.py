"""The issue's attack, as real commands: a forged Falco event with `container.id: "host"` names a host file
and a host process; `bindrift ingest` stores its finding; `bindrift respond quarantine` / `kill` on it are
refused (no container scope), the host file keeps its mode and the process lives. `--force` is recorded in
the audit log, and still refuses a process that is not the one the event named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from tests.agents import BINDRIFT

from bindrift.schema.finding import Finding
from bindrift.sinks.store.sql_store import SqlStore

pytestmark = pytest.mark.slow  # six commands, each a Python start-up


def _ingest(db: str, alert: dict[str, object]) -> Finding:
    result = subprocess.run([BINDRIFT, "ingest", "--from", "falco", "--db", db, "-"], input=json.dumps(alert).encode(),
                            capture_output=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    (finding,) = [msgspec.json.decode(line, type=Finding) for line in result.stdout.splitlines()]
    return finding


def _respond(db: str, verb: str, finding_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BINDRIFT, "respond", verb, finding_id, "--by", "mallory-test", "--db", db, *extra],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


@pytest.fixture
def host_process() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "120"])
    yield process
    process.kill()
    process.wait(timeout=10)


def test_a_forged_host_event_acts_on_nothing_without_force(
    tmp_path: Path, test_binaries: Path, host_process: subprocess.Popen[bytes]
) -> None:
    target = tmp_path / "usr-local-bin-tool"  # stands for any host file the forger picks
    shutil.copy(test_binaries / "busybox-static-arm64" / "bin" / "busybox", target)
    target.chmod(0o755)
    db = f"sqlite:///{tmp_path / 'forged.db'}"
    alert = {"hostname": "node-f", "priority": "Critical", "rule": "Drop and execute new binary in container",
             "source": "syscall", "time": "2026-12-04T04:00:00.000000001Z", "output_fields": {
                 "container.id": "host", "evt.time": 1796356800000000001, "evt.type": "execve",
                 "proc.exepath": str(target), "proc.pid": host_process.pid, "proc.name": "tool",
                 "proc.cmdline": "tool", "user.uid": 0}}  # fmt: skip
    finding = _ingest(db, alert)
    assert finding.resource.container_id == "" and finding.process is not None
    assert finding.process.pid == host_process.pid

    quarantine = _respond(db, "quarantine", finding.id)
    assert quarantine.returncode == 1
    assert quarantine.stderr == ("failed: refused: the finding has no container scope: its target would be on the "
                                 "host: re-run with --force to act anyway (recorded with the action)\n")  # fmt: skip
    kill = _respond(db, "kill", finding.id)
    assert kill.returncode == 1 and kill.stderr.startswith("failed: refused: the finding has no container scope")
    assert target.stat().st_mode & 0o777 == 0o755 and host_process.poll() is None, "nothing was touched"

    forced_kill = _respond(db, "kill", finding.id, "--force")  # the event's pid runs sleep, not the named file
    assert forced_kill.returncode == 1
    assert f"failed: refused: pid {host_process.pid} now runs " in forced_kill.stderr
    assert host_process.poll() is None

    forced = _respond(db, "quarantine", finding.id, "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout == (f"done: {target} made unexecutable (mode 755 → 000) (forced: the finding has no "
                             "container scope: its target would be on the host)\n")  # fmt: skip
    assert target.stat().st_mode & 0o777 == 0
    os.chmod(target, 0o755)
    store = SqlStore(db)
    try:
        log = [action for _id, action in store.audit_log(finding.id)]
    finally:
        store.close()
    assert [(a.action, a.ok) for a in log] == [("quarantine", False), ("kill", False), ("kill", False),
                                               ("quarantine", True)]  # fmt: skip
    assert {a.by for a in log} == {"mallory-test"}
    assert log[-1].values["forced"] == "the finding has no container scope: its target would be on the host"
    assert log[-1].values["verified"] == "sha256" and log[0].values == {"refused": True}
