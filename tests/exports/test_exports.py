"""Every export's shape, from findings made by the real pipeline and store."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import msgspec
import pytest
from tests.agents import BINDRIFT
from tests.detections import detection

from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import Finding, IntelMatch, Resource
from bindrift.sinks.exports.jsonl import write_jsonl
from bindrift.sinks.exports.metrics import Metrics
from bindrift.sinks.exports.ocsf import to_ocsf
from bindrift.sinks.exports.syslog import SyslogSender, format_message
from bindrift.sinks.exports.webhook import WebhookSender
from bindrift.sinks.store.sql_store import SqlStore

# OCSF 1.8.0 (events/findings/detection_finding.json + base_event.json + objects): required attributes.
OCSF_REQUIRED = {"activity_id", "category_uid", "class_uid", "type_uid", "severity_id", "time", "metadata",
                 "finding_info"}  # fmt: skip
OCSF_OBJECT_REQUIRED = {
    "metadata": {"product", "version"}, "finding_info": {"uid"}, "analytic": {"type_id"},
    "file": {"name", "type_id"}, "device": {"type_id"}, "enrichment": {"name", "value", "data"},
    "malware": {"name", "classification_ids"}, "hash": {"algorithm_id", "value"}, "remediation": {"desc"},
}  # fmt: skip


@pytest.fixture
def finding(store: SqlStore) -> Finding:
    match = IntelMatch(source="iocs.txt", kind="sha256", name="coinminer")
    return FindingsPipeline(store).process(detection(intel=[match]))


def test_ocsf_detection_finding_has_required_attributes(finding: Finding) -> None:
    event = to_ocsf(finding)
    assert event.keys() >= OCSF_REQUIRED
    assert (event["class_uid"], event["category_uid"], event["type_uid"], event["activity_id"]) == (2004, 2, 200401, 1)
    assert event["severity_id"] == 5 and event["status_id"] == 1
    assert event["time"] == int(finding.last_seen.timestamp() * 1000)
    assert OCSF_OBJECT_REQUIRED["metadata"] <= event["metadata"].keys() and event["metadata"]["version"] == "1.8.0"
    info = event["finding_info"]
    assert info["uid"] == finding.id and OCSF_OBJECT_REQUIRED["analytic"] <= info["analytic"].keys()
    assert {a["technique"]["uid"] for a in info["attacks"]} >= {"T1105", "T1106"}
    assert all(a["tactic"]["uid"].startswith("TA") for a in info["attacks"])
    (evidence,) = event["evidences"]
    assert evidence.keys() & {"actor", "process", "file", "container"}
    assert OCSF_OBJECT_REQUIRED["file"] <= evidence["file"].keys()
    assert evidence["file"]["hashes"][0] == {"algorithm_id": 3, "algorithm": "SHA-256", "value": "a" * 64}
    assert evidence["actor"]["process"]["name"] == "cp", "the writer is the actor"
    assert evidence["container"]["uid"] == finding.resource.container_id
    assert evidence["container"]["image"] == {"uid": "sha256:" + "d" * 64, "name": "registry.example/shop/web",
                                              "tag": "1.4"}  # fmt: skip
    assert OCSF_OBJECT_REQUIRED["device"] <= event["device"].keys()
    assert event["resources"][0]["type"] == "Kubernetes Pod" and event["resources"][0]["namespace"] == "shop"
    (enrichment,) = event["enrichments"]
    assert OCSF_OBJECT_REQUIRED["enrichment"] <= enrichment.keys() and "virustotal.com" in enrichment["src_url"]
    assert OCSF_OBJECT_REQUIRED["malware"] <= event["malware"][0].keys()
    assert OCSF_OBJECT_REQUIRED["remediation"] <= event["remediation"].keys()
    json.dumps(event)  # serialisable as is


def test_jsonl_round_trip(finding: Finding) -> None:
    out = io.BytesIO()
    assert write_jsonl([finding, finding], out) == 2
    lines = out.getvalue().splitlines()
    assert msgspec.json.decode(lines[0], type=Finding) == finding


class _FlakyHandler(BaseHTTPRequestHandler):
    failures_left: ClassVar[int] = 0
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_response(503)
        else:
            type(self).received.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, type[_FlakyHandler]]]:
    handler = type("Handler", (_FlakyHandler,), {"failures_left": 2, "received": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", handler
    server.shutdown()
    server.server_close()


def test_webhook_retries_then_delivers(store: SqlStore, webhook_server: tuple[str, type[_FlakyHandler]]) -> None:
    url, handler = webhook_server
    stored = FindingsPipeline(store, outbox=["webhook"]).process(detection())
    result = WebhookSender(store, url, retries=3, backoff_s=0.01).drain()
    assert (result.sent, result.failed) == (1, 0)
    assert [json.loads(body)["id"] for body in handler.received] == [stored.id]
    assert store.pending("webhook") == []


def test_webhook_outbox_survives_a_restart(tmp_path: Path, webhook_server: tuple[str, type[_FlakyHandler]]) -> None:
    url, handler = webhook_server
    db = f"sqlite:///{tmp_path / 'restart.sqlite'}"
    first = SqlStore(db)
    stored = FindingsPipeline(first, outbox=["webhook"]).process(detection())
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}/hook"
    assert WebhookSender(first, dead, retries=1, backoff_s=0.01, timeout_s=2).drain().failed == 1
    first.close()  # the agent restarts
    second = SqlStore(db)
    try:
        handler.failures_left = 0
        assert WebhookSender(second, url, backoff_s=0.01).drain().sent == 1
        assert [json.loads(body)["id"] for body in handler.received] == [stored.id]
    finally:
        second.close()


@pytest.mark.parametrize("url", ["notaurl", "file:///etc/passwd", "ftp://host/x", "http:///nohost", "127.0.0.1:80"])
def test_a_webhook_url_that_is_not_http_is_refused_at_start(store: SqlStore, url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        WebhookSender(store, url)


def test_watch_refuses_a_webhook_url_that_is_not_http(tmp_path: Path) -> None:
    result = subprocess.run([BINDRIFT, "watch", "--db", f"sqlite:///{tmp_path / 'w.db'}", "--webhook", "file:///x",
                             "--duration", "1"], capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 2 and "http:// or https://" in result.stderr, result.stderr


SYSLOG = re.compile(rb"^<(\d+)>1 (\S+) (\S+) bindrift - finding \[bindrift@32473 (.*)\] \xef\xbb\xbf(.*)$", re.S)


def test_syslog_rfc5424_over_udp_and_tcp(finding: Finding) -> None:
    hostile = msgspec.structs.replace(finding, resource=Resource(node="n1", pod='p"]\\x', namespace="ns"))
    raw = format_message(hostile, "node-1")
    match = SYSLOG.match(raw)
    assert match is not None, raw
    assert int(match.group(1)) == 16 * 8 + 2, "local0.crit for a critical finding"
    assert b'pod="p\\"\\]\\\\x"' in match.group(4), "SD-PARAM escapes"
    # A forged line break, a bidi override and a zero-width space in a path are shown, never acted on or lost.
    path = "/tmp/invoice\u202egnp.exe\n<14>1 - forged\u200b"
    forged = msgspec.structs.replace(finding, file=msgspec.structs.replace(finding.file, path=path),
                                     summary="run \u202eexe.sh\r\n")  # fmt: skip
    raw = format_message(forged, "node-1")
    assert b"\n" not in raw and b"\r" not in raw and "\u202e".encode() not in raw and "\u200b".encode() not in raw
    text = raw.decode()
    assert 'path="/tmp/invoice⟨U+202E⟩gnp.exe⟨U+000A⟩<14>1 - forged⟨U+200B⟩"' in text
    assert text.endswith("run ⟨U+202E⟩exe.sh⟨U+000D⟩⟨U+000A⟩")
    long = format_message(msgspec.structs.replace(finding, file=msgspec.structs.replace(finding.file, path="a" * 600)))
    assert f'path="{"a" * 512}…(+88 characters)"'.encode() in long
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(5)
        SyslogSender("127.0.0.1", udp.getsockname()[1], "udp", "node-1").send(finding)
        assert udp.recv(65536) == format_message(finding, "node-1")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(5)
        SyslogSender("127.0.0.1", listener.getsockname()[1], "tcp", "node-1").send(finding)
        conn, _ = listener.accept()
        with conn:
            data = conn.recv(65536)
    length, _, message = data.partition(b" ")
    assert int(length) == len(message) and message == format_message(finding, "node-1"), "octet counting"


def test_prometheus_metrics(finding: Finding) -> None:
    metrics = Metrics()
    metrics.record_finding(finding)
    metrics.record_event("fanotify", "close_write")
    metrics.record_drop("fanotify", "queue_overflow", 3)
    metrics.observe_latency(0.012)
    text = metrics.render().decode()
    assert 'bindrift_findings_total{category="Added Malicious Binary Executed",severity="critical"} 1.0' in text
    assert 'bindrift_events_total{kind="close_write",source="fanotify"} 1.0' in text
    assert 'bindrift_events_dropped_total{reason="queue_overflow",source="fanotify"} 3.0' in text
    assert 'bindrift_detection_latency_seconds_bucket{le="0.025"} 1.0' in text
