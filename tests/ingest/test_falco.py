"""Falco alerts → external events: the real alerts in ../shared/samples/falco, and alerts constructed in the
exact shape Falco 0.41+ writes for the cases the samples lack (drift rule, write rules, `<NA>`, wrapped
durations, Falcosidekick's additions), said so at each."""

from __future__ import annotations

import io
import json

from tests.conftest import SHARED

from bindrift.schema.external_event import ExternalEvent, ExternalProcess, ToolVerdict
from bindrift.sensors.ingest.falco import FalcoAdapter
from bindrift.sensors.ingest.reader import read_events

SAMPLES = SHARED / "samples" / "falco"


def _events(data: bytes) -> tuple[list[ExternalEvent], FalcoAdapter]:
    adapter = FalcoAdapter()
    return list(read_events(io.BytesIO(data), adapter)), adapter


def test_syscall_samples_every_field() -> None:
    events, adapter = _events((SAMPLES / "falco-website-syscall-alerts.jsonl").read_bytes())
    # 9 alerts: 7 "Terminal shell in container" (spawned_process: executions), 2 K8s API contacts (filtered).
    assert (adapter.stats.lines, adapter.stats.kept, adapter.stats.rejected) == (9, 7, 0)
    assert {e.verdict.rule for e in events} == {"Terminal shell in container"}
    first = events[0]
    assert first == ExternalEvent(
        tool="falco", kind="exec", time_ns=1610667584834631763, path="",
        process=ExternalProcess(pid=0, vpid=0, comm="sh", exe="", args=["sh"], cwd="", user="root", uid=-1),
        parents=[],  # proc.pname is null in this 2021 alert
        node="", container_id="5892b41bcf46", container_name="", image="", image_digest="", pod="alpine",
        namespace="default", sha256="", header=b"",
        verdict=ToolVerdict(rule="Terminal shell in container", priority="Notice", drift="", field=""),
        source_event="rule: Terminal shell in container", facts={"user.loginuid": -1},
    )  # fmt: skip
    last = events[-1]  # the 2023 alert with source, tags and hostname
    assert last == ExternalEvent(
        tool="falco", kind="exec", time_ns=1685022245478445995, path="",
        process=ExternalProcess(comm="sh", args=["sh", "-c", "clear;", "(bash", "||", "ash", "||", "sh)"],
                                user="root"),
        parents=[ExternalProcess(comm="runc")], node="falco-xczjd", container_id="ee97d9c4186f",
        image="docker.io/library/alpine", pod="kubecon", namespace="default",
        verdict=ToolVerdict(rule="Terminal shell in container", priority="Critical"),
        source_event="rule: Terminal shell in container", facts={"user.loginuid": -1},
    )  # fmt: skip
    assert [e.container_id for e in events] == ["5892b41bcf46", "97c9868ea832", "6ac7d190134e", "97c9868ea832",
                                                "788861c3cf83", "cbd3133ccac6", "ee97d9c4186f"]  # fmt: skip
    assert events[1].image == "alpine" and events[1].process.args == ["sh", "-c", "uptime"]


def test_k8s_audit_samples_are_filtered() -> None:
    events, adapter = _events((SAMPLES / "falco-website-k8saudit-alerts.jsonl").read_bytes())
    assert events == [] and (adapter.stats.lines, adapter.stats.rejected) == (6, 0)


# Constructed: the "Drop and execute new binary in container" alert of formats.md §1 (Falco 0.43.1 shape),
# with Falco's wrapped negative duration, `<NA>` where an older Falco wrote it, and its ancestors.
DROP = {
    "hostname": "node-a",
    "output": "2026-07-11T09:44:58.682419669+0000: Critical Executing binary not part of base image | proc_exe=/tmp/k",
    "output_fields": {
        "container.id": "9965a6a599f6", "container.full_id": "9965a6a599f6" + "0" * 52, "container.name": "web",
        "container.image.repository": "docker.io/library/nginx", "container.image.tag": "1.27",
        "container.image.digest": "<NA>", "evt.arg.flags": "EXE_WRITABLE|EXE_UPPER_LAYER",
        "evt.time": 1783763098682419669, "evt.type": "execve", "k8s.ns.name": "shop", "k8s.pod.name": "web-7d9c-abc12",
        "proc.cmdline": "kinsing -c /tmp/k.cfg", "proc.exe": "kinsing", "proc.exepath": "/tmp/kinsing",
        "proc.exe_ino.ctime_duration_proc_start": 18446744073670260079, "proc.is_exe_upper_layer": True,
        "proc.name": "kinsing", "proc.pid": 48211, "proc.vpid": 62, "proc.ppid": 48100, "proc.pname": "bash",
        "proc.pexepath": "/bin/bash", "proc.aname[2]": "containerd-shim", "proc.apid[2]": 48001,
        "proc.aname[3]": None, "proc.cwd": "/tmp/", "user.loginuid": -1, "user.name": "root", "user.uid": 0,
    },
    "priority": "Critical", "rule": "Drop and execute new binary in container", "source": "syscall",
    "tags": ["PCI_DSS_11.5.1", "TA0003", "container", "maturity_stable", "mitre_persistence", "process"],
    "time": "2026-07-11T09:44:58.682419669Z",
}  # fmt: skip


def test_drop_and_execute_alert_every_field() -> None:
    events, adapter = _events(json.dumps(DROP).encode() + b"\n")
    assert adapter.stats.kept == 1
    assert events[0] == ExternalEvent(
        tool="falco", kind="exec", time_ns=1783763098682419669, path="/tmp/kinsing",
        process=ExternalProcess(pid=48211, vpid=62, comm="kinsing", exe="/tmp/kinsing",
                                args=["kinsing", "-c", "/tmp/k.cfg"], cwd="/tmp/", user="root", uid=0),
        parents=[ExternalProcess(pid=48100, comm="bash", exe="/bin/bash"),
                 ExternalProcess(pid=48001, comm="containerd-shim")],
        node="node-a", container_id="9965a6a599f6" + "0" * 52, container_name="web",
        image="docker.io/library/nginx:1.27", image_digest="", pod="web-7d9c-abc12", namespace="shop",
        verdict=ToolVerdict(rule="Drop and execute new binary in container", priority="Critical",
                            drift="upper-layer", field="proc.is_exe_upper_layer=true"),
        source_event="rule: Drop and execute new binary in container",
        facts={"evt.arg.flags": "EXE_WRITABLE|EXE_UPPER_LAYER", "proc.is_exe_upper_layer": True,
               "proc.exe_ino.ctime_duration_proc_start": -39291537, "user.loginuid": -1},
    )  # fmt: skip


def test_na_in_text_number_and_flag_fields() -> None:
    # Older Falco wrote `<NA>` into output_fields where newer ones write null, in fields of any type.
    missing = ("proc.ppid", "proc.pname", "proc.pexepath", "proc.aname[2]", "user.uid", "proc.is_exe_upper_layer",
               "proc.cwd")  # fmt: skip
    fields = {**DROP["output_fields"], **dict.fromkeys(missing, "<NA>")}  # type: ignore[dict-item]
    event = _events(json.dumps({**DROP, "output_fields": fields}).encode())[0][0]
    assert (event.parents, event.process.uid, event.process.cwd) == ([], -1, "")
    # the flags still say upper layer; the `<NA>` flag is neither true nor kept as a fact
    assert event.verdict.field == "evt.arg.flags=EXE_WRITABLE|EXE_UPPER_LAYER"
    assert "proc.is_exe_upper_layer" not in event.facts


def test_verdict_from_flags_memfd_and_rule_alone() -> None:
    fields = {"evt.time": 1, "proc.exepath": "/tmp/x", "proc.name": "x"}
    flags_only = {**DROP, "output_fields": {**fields, "evt.arg.flags": "EXE_WRITABLE|EXE_UPPER_LAYER"}}
    memfd_fields = {**fields, "proc.exepath": "memfd:payload (deleted)", "proc.is_exe_from_memfd": True}
    memfd = {**DROP, "rule": "Fileless execution via memfd_create", "output_fields": memfd_fields}
    rule_only = {**DROP, "output_fields": fields}
    lines = b"\n".join(json.dumps(a).encode() for a in (flags_only, memfd, rule_only))
    events, _ = _events(lines)
    assert [(e.kind, e.path, e.verdict.drift, e.verdict.field) for e in events] == [
        ("exec", "/tmp/x", "upper-layer", "evt.arg.flags=EXE_WRITABLE|EXE_UPPER_LAYER"),
        ("exec", "memfd:payload (deleted)", "memfd", "proc.is_exe_from_memfd=true"),
        ("exec", "/tmp/x", "upper-layer", "rule=Drop and execute new binary in container"),
    ]  # fmt: skip
    # argv[0] (proc.exe) is attacker-controlled: a relative one is never taken as the path
    relative = {**DROP, "output_fields": {"evt.time": 1, "evt.type": "execve", "proc.exe": "./x"}}
    assert _events(json.dumps(relative).encode())[0][0].path == ""


def test_writes_and_filtered_syscalls() -> None:
    # Constructed: "Write below binary dir" (open_write) and a plain openat read, as Falco writes them.
    base = {"priority": "Error", "source": "syscall", "time": "2026-07-11T09:44:58.000000001Z"}
    write = {**base, "rule": "Write below binary dir", "output_fields": {
        "evt.type": "openat", "evt.is_open_write": True, "fd.name": "/usr/bin/ls", "proc.pid": 9, "proc.name": "cp",
        "proc.cmdline": "cp /tmp/x /usr/bin/ls", "container.id": "host", "evt.time": 1783763098000000001}}  # fmt: skip
    read = {**base, "rule": "Read sensitive file untrusted", "output_fields": {
        "evt.type": "openat", "evt.is_open_write": False, "fd.name": "/etc/shadow", "evt.time": 2}}  # fmt: skip
    rule_no_type = {**base, "rule": "Write below etc", "output_fields": {"fd.name": "/etc/ld.so.preload"}}
    connect = {**base, "rule": "Outbound connection", "output_fields": {"evt.type": "connect", "evt.time": 3}}
    lines = b"\n".join(json.dumps(a).encode() for a in (write, read, rule_no_type, connect))
    events, adapter = _events(lines)
    assert (adapter.stats.lines, adapter.stats.kept) == (4, 2)
    assert [(e.kind, e.path, e.container_id, e.process.pid, e.time_ns) for e in events] == [
        ("write", "/usr/bin/ls", "", 9, 1783763098000000001),
        ("write", "/etc/ld.so.preload", "", 0, 1783763098000000001),  # no evt.time: the alert's `time`, with ns
    ]  # fmt: skip


def test_falcosidekick_payload() -> None:
    # Constructed: Falcosidekick's webhook re-post of the drop alert (types.go FalcoPayload): uuid added,
    # customfields merged into output_fields, RFC3339Nano time, source defaulted.
    payload = {key: value for key, value in DROP.items() if key != "source"}
    payload["uuid"] = "2a5b6e1c-9d0f-4c6b-8f4e-0c6c1f4a7f10"
    payload["output_fields"] = {**DROP["output_fields"], "environment": "prod"}  # type: ignore[dict-item]
    events, _ = _events(json.dumps(payload).encode())
    assert events[0].facts["uuid"] == "2a5b6e1c-9d0f-4c6b-8f4e-0c6c1f4a7f10"
    assert (events[0].path, events[0].verdict.drift) == ("/tmp/kinsing", "upper-layer")


def test_malformed_lines_are_counted_not_fatal() -> None:
    good = json.dumps(DROP).encode()
    bad = [b"{not json", b'{"rule": 5, "output_fields": {}}', b'{"rule":"x"}', b"[1,2]",
           json.dumps({**DROP, "output_fields": {"proc.pid": {"nested": 1}}}).encode(),
           json.dumps({**DROP, "time": "yesterday", "output_fields": {"evt.type": "execve"}}).encode()]  # fmt: skip
    huge = b'{"rule":"' + b"x" * (2 << 20) + b'"}'
    events, adapter = _events(b"\n".join([good, *bad, huge, good]) + b"\n")
    assert len(events) == 2 and all(e.path == "/tmp/kinsing" for e in events)
    assert (adapter.stats.lines, adapter.stats.kept, adapter.stats.rejected) == (9, 2, 7)


def test_lines_filtered_on_their_raw_bytes_are_counted_not_decoded() -> None:
    # A connect alert is decided on its bytes: a field bindrift would reject when decoding is never read.
    connect = b'{"output_fields":{"evt.type":"connect","proc.pid":{"nested":1}},"rule":"r","source":"syscall"}'
    read = b'{"output_fields":{"evt.is_open_write":false,"evt.type":"openat","proc.pid":[]},"rule":"r"}'
    events, adapter = _events(connect + b"\n" + read + b"\n")
    assert events == [] and (adapter.stats.lines, adapter.stats.rejected) == (2, 0)
    # The same alerts spaced out (not Falco's compact output) take the full decode, which rejects them.
    events, adapter = _events(connect.replace(b'":', b'": ') + b"\n" + read.replace(b'":', b'": ') + b"\n")
    assert events == [] and (adapter.stats.lines, adapter.stats.rejected) == (2, 2)


def test_key_text_inside_a_string_value_does_not_filter_the_alert() -> None:
    # An attacker's command line spelling out a filtered evt.type and a read-only open: JSON escapes the quotes,
    # so the raw bytes never match the structural keys and the real evt.type (an open for writing) decides.
    fields = {
        **DROP["output_fields"],
        "evt.type": "openat",
        "fd.name": "/usr/bin/x",
        "evt.is_open_write": True,
        "proc.cmdline": 'sh -c {"evt.type":"connect","evt.is_open_write":false}',
    }  # type: ignore[dict-item]
    events, _ = _events(json.dumps({**DROP, "output_fields": fields}, separators=(",", ":")).encode())
    assert [(e.kind, e.path) for e in events] == [("write", "/usr/bin/x")]
    unsorted = {"evt.type": "openat", "fd.name": "/etc/x", "evt.time": 1, "evt.is_open_write": True}
    events, _ = _events(json.dumps({**DROP, "output_fields": unsorted}, separators=(",", ":")).encode())
    assert [(e.kind, e.path) for e in events] == [("write", "/etc/x")]
