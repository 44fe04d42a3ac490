"""`bindrift watch --bus` and `bindrift worker`: wrong combinations are refused before anything starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.bus.test_distributed import BINDRIFT

from bindrift.bus.stream import parse_servers, subject_for


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BINDRIFT, *args], capture_output=True, text=True, timeout=60, check=False)


def test_watch_on_the_bus_refuses_local_outputs(tmp_path: Path) -> None:
    result = run("watch", "--bus", "nats://127.0.0.1:1", "--db", f"sqlite:///{tmp_path / 'x.db'}",
                 "--spool", str(tmp_path / "spool"))  # fmt: skip
    assert result.returncode == 2 and "belong to `bindrift worker`" in result.stderr
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "spool").exists()


def test_worker_wants_a_server() -> None:
    result = run("worker", "--bus", " , ")
    assert result.returncode == 2 and "one or more NATS URLs" in result.stderr


def test_server_lists_and_subjects() -> None:
    assert parse_servers("a:4222, nats://b:4223") == ["nats://a:4222", "nats://b:4223"]
    with pytest.raises(ValueError, match="one or more NATS URLs"):
        parse_servers("")
    assert subject_for("node-1.eu") == "bindrift.detections.node-1_eu"
    assert subject_for("") == "bindrift.detections._"
    assert subject_for("x" * 300) == "bindrift.detections." + "x" * 128
