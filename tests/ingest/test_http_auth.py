"""`ingest --listen` as a trust boundary, against the real command on loopback: no token or a wrong one is
refused (401), a read token may not post (403), bodies over the byte or line bound are refused (413), a token
over its rate gets 429 with Retry-After, another tool's output 400; and a 3 MB request of forged events, then
SIGTERM, leaves no process behind within a few seconds (the unanalysed events counted)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.ingest.test_falco import DROP

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
ADMIN = "ingest-admin-secret-0123456789"
READER = "ingest-reader-secret-0123456789"


@dataclass
class Listener:
    process: subprocess.Popen[bytes]
    port: int

    def post(self, body: bytes, token: str | None = ADMIN) -> tuple[int, dict[str, str], dict[str, object]]:
        """(status, headers, JSON answer)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
        try:
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), json.loads(response.read() or b"{}")
        finally:
            connection.close()

    def get(self, path: str, token: str | None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stop(self) -> tuple[float, str]:
        """SIGTERM; (seconds until the process was gone, its stderr)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        _out, err = self.process.communicate(timeout=60)
        return time.monotonic() - started, err.decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_listener(tmp_path: Path, *extra: str) -> Listener:
    tokens = tmp_path / "tokens"
    fd = os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"admin falco {ADMIN}\nread viewer {READER}\n")
    port = _free_port()
    process = subprocess.Popen([BINDRIFT, "ingest", "--from", "falco", "--db", f"sqlite:///{tmp_path / 'h.db'}",
                                "--listen", str(port), "--tokens-file", str(tokens), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Listener(process, port)
        except OSError:
            assert process.poll() is None, process.communicate()[1].decode()
            assert time.monotonic() < deadline, "the listener did not start"
            time.sleep(0.05)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    started = start_listener(tmp_path, "--max-request-lines", "50", "--max-request-mb", "0.25", "--rate", "2")
    yield started
    if started.process.poll() is None:
        started.stop()


def forged(n: int) -> bytes:
    """`n` drift alerts, each for its own container not on this node: each one an event-only finding to store."""
    lines = []
    for i in range(n):
        fields = {**DROP["output_fields"], "container.id": f"{i:012x}", "container.full_id": f"{i:064x}"}  # type: ignore[dict-item]
        lines.append(json.dumps({**DROP, "output_fields": fields}))
    return "\n".join(lines).encode()


def test_authentication_bounds_and_rate(listener: Listener) -> None:
    one = json.dumps(DROP).encode()
    status, headers, answer = listener.post(one, token=None)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer") and "token" in str(answer["error"])
    assert listener.post(one, token="not-the-secret-0123456789")[0] == 401
    assert listener.post(one, token=READER)[0] == 403
    assert listener.get("/metrics", None)[0] == 401
    status, headers, answer = listener.post(one)
    assert (status, answer) == (202, {"kept": 1, "rejected": 0, "ignored": 0})
    # over the line bound (50) and over the byte bound (0.25 MiB, declared or not)
    assert listener.post(forged(51))[0] == 413
    assert listener.post(b"[" + b" " * (300 << 10) + b"]")[0] == 413
    # Tetragon's output posted to a Falco input: named, refused
    tetragon = b'{"process_exec":{"process":{"binary":"/bin/sh"}},"node_name":"n","time":"2026-07-11T09:44:58Z"}'
    status, _headers, answer = listener.post(tetragon)
    assert status == 400 and "looks like tetragon output" in str(answer["error"])
    # 2 lines a second in bursts of 50 (a request's bound), 2 taken above: 48 lines pass, 50 more are over the
    # rate, answered with the ~25 s they would wait (however slow this shared machine is, far from refilled)
    assert listener.post(forged(48))[0] == 202
    status, headers, answer = listener.post(forged(50))
    assert status == 429 and 10 <= int(headers["retry-after"]) <= 26, (status, headers, answer)
    status, metrics = listener.get("/metrics", READER)
    assert status == 200
    assert b'bindrift_ingest_lines_total{outcome="kept",tool="falco"} 49.0' in metrics
    assert b"bindrift_ingest_rejected_lines_total" in metrics
    elapsed, err = listener.stop()
    assert listener.process.returncode == 0 and elapsed < 10, err
    assert "49 events kept" in err


@pytest.mark.slow
def test_a_3mb_request_then_sigterm_stops_promptly(tmp_path: Path) -> None:
    body = forged(2500)
    assert 3 << 20 < len(body) < 4 << 20
    started = start_listener(tmp_path)
    status, _headers, answer = started.post(body)
    assert (status, answer.get("kept")) == (202, 2500), answer
    time.sleep(0.5)  # the analysis is under way, writing finding after finding
    elapsed, err = started.stop()
    assert started.process.returncode == 0, err
    assert elapsed < 6, f"{elapsed:.1f} s to stop"
    summary = next(line for line in err.splitlines() if line.startswith("bindrift ingest:"))
    assert "2500 events kept" in summary and "events not analysed (stopped)" in summary, summary
