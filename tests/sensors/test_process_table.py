"""The process table with real processes: snapshots read beneath one /proc/PID, and the writer of a file
that the same process then executes named as it was before that exec."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.agents import wait_for

from bindrift.sensors.runtime.process_table import ProcessTable, snapshot

WRITE_THEN_EXEC = """
import os, shutil, sys, time
shutil.copy("/bin/sleep", sys.argv[1])
os.chmod(sys.argv[1], 0o755)
time.sleep(0.3)  # the test reads this generation first, as the agent does on its exec event
os.execv(sys.argv[1], ["sleep", "30"])
"""


def test_snapshot_of_a_live_and_of_a_gone_process() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        wait_for(lambda: Path(f"/proc/{child.pid}/cmdline").read_bytes() == b"sleep\x0030\x00", 10, "the exec")
        found = snapshot(child.pid)
        assert found is not None
        process, namespace = found
        assert (process.pid, process.ppid, process.comm, process.args) == (child.pid, os.getpid(), "sleep",
                                                                         ["sleep", "30"])  # fmt: skip
        assert process.exe == shutil.which("sleep") or process.exe.endswith("/sleep")
        assert process.uid == os.getuid() and namespace == os.readlink("/proc/self/ns/pid")
    finally:
        child.kill()
        child.wait()
    assert snapshot(child.pid) is None


def test_writer_that_then_execs_the_file_is_named_as_before_the_exec(tmp_path: Path) -> None:
    target = tmp_path / "dropped"
    child = subprocess.Popen([sys.executable, "-c", WRITE_THEN_EXEC, str(target)])
    table = ProcessTable()
    try:
        wait_for(
            lambda: Path(f"/proc/{child.pid}/cmdline").read_bytes().startswith(sys.executable.encode()),
            10,
            "the interpreter",
        )
        assert table.on_exec(child.pid)  # the interpreter's exec, read at once
        wait_for(lambda: Path(f"/proc/{child.pid}/cmdline").read_bytes() == b"sleep\x0030\x00", 10, "the exec")
        assert table.on_exec(child.pid)  # then the exec of the file it wrote
        writer = table.writer(child.pid, str(target), os.stat(target))
        assert writer is not None and writer.pid == child.pid
        assert writer.args[:2] == [sys.executable, "-c"] and writer.exe == os.path.realpath(sys.executable)
        # Another file the process did not run: it is the process as it is now.
        other = tmp_path / "other"
        other.write_bytes(b"x")
        now = table.writer(child.pid, str(other), os.stat(other))
        assert now is not None and now.args == ["sleep", "30"] and now.exe == str(target)
    finally:
        child.kill()
        child.wait()
