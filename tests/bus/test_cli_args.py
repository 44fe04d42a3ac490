"""`bindrift watch --bus` and `bindrift worker`: wrong combinations are refused before anything starts."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
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


def test_worker_metrics_listen_on_the_address_given(tmp_path: Path) -> None:
    # The bus is unreachable: the worker keeps retrying, its metrics are served meanwhile, and SIGTERM ends it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    worker = subprocess.Popen([BINDRIFT, "worker", "--bus", "nats://127.0.0.1:1", "--db",
                               f"sqlite:///{tmp_path / 'w.db'}", "--metrics-port", str(port),
                               "--metrics-address", "127.0.0.2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline, body = time.monotonic() + 30, ""
        while time.monotonic() < deadline and not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=2) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(0.2)
        assert "bindrift_bus_published_total" in body
        with pytest.raises(OSError):  # not on the default loopback address
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
        worker.terminate()  # stops while still retrying its first connection (a pod being deleted)
        assert worker.wait(timeout=30) == 0  # generous: a loaded machine; a worker that ignores SIGTERM never ends
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
