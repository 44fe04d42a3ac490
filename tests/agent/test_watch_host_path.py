"""`bindrift watch --host-path`: a foreign ELF written on a watched host file system is a suspicious
binary naming its writer. A private tmpfs keeps the machine's other activity out of the test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_logged, wait_stored

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="fanotify and mounts need root")


def test_foreign_binary_written_on_a_host_path(tmpfs: Path, tmp_path: Path, test_binaries: Path) -> None:
    db = f"sqlite:///{tmp_path / 'host.db'}"
    log = tmp_path / "agent.log"
    metrics = tmp_path / "bindrift.prom"
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(10)
    syslog = f"127.0.0.1:{collector.getsockname()[1]}"
    with log.open("w") as err:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--host-path", str(tmpfs), "--duration", "60",
                                  "--syslog", syslog, "--metrics-file", str(metrics)],
                                 stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    try:
        wait_logged(log, f"watching {tmpfs}")
        arm64 = (test_binaries / "busybox-static-arm64" / "bin" / "busybox").read_bytes()
        writer = subprocess.Popen(["dd", f"of={tmpfs / 'drop'}", "status=none"], stdin=subprocess.PIPE)
        writer.communicate(arm64, timeout=30)
        assert writer.returncode == 0
        found = wait_stored(db, keep=lambda f: f.file.path.endswith("/drop"))
        message = collector.recv(65536)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        collector.close()
    (finding,) = found
    assert b"Suspicious binary" in message and finding.id.encode() in message, "the finding went to syslog"
    assert 'bindrift_findings_total{category="Suspicious binary",severity="high"} 1.0' in metrics.read_text()
    assert finding.category == "Suspicious binary" and finding.severity == "high"
    assert finding.file.elf is not None and finding.file.elf.arch == "aarch64"
    assert finding.writer is not None and finding.writer.pid == writer.pid
    # dd exits within a millisecond of its write: on a loaded machine it can be gone before /proc is read.
    assert finding.writer.comm == "dd" or finding.writer.exe.endswith("/dd") or finding.writer.comm == ""
    assert finding.resource.container_id == ""


def test_batched_process_events_still_name_a_writer_that_lives(tmpfs: Path, tmp_path: Path,
                                                               test_binaries: Path) -> None:  # fmt: skip
    """`--batch-process-events`: a writer alive for longer than the 10 ms batch is named in full."""
    db = f"sqlite:///{tmp_path / 'batched.db'}"
    log = tmp_path / "agent.log"
    with log.open("w") as err:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--host-path", str(tmpfs), "--duration", "60",
                                  "--batch-process-events"], stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    try:
        wait_logged(log, f"watching {tmpfs}")
        source = test_binaries / "busybox-static-arm64" / "bin" / "busybox"
        write = "import sys, time; open(sys.argv[1], 'wb').write(open(sys.argv[2], 'rb').read()); time.sleep(0.5)"
        subprocess.run([sys.executable, "-c", write, str(tmpfs / "dropped"), str(source)], check=True, timeout=30)
        found = wait_stored(db, keep=lambda f: f.file.path.endswith("/dropped"))
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    (finding,) = found
    assert finding.category == "Suspicious binary" and finding.file.elf is not None
    assert finding.writer is not None and finding.writer.args[:2] == [sys.executable, "-c"]
    assert finding.writer.exe == os.path.realpath(sys.executable) and finding.writer.uid == 0
