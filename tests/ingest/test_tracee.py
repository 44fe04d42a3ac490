"""Tracee JSON → external events: the real events in ../shared/samples/tracee (legacy trace.Event), and
events constructed in the exact shapes Tracee writes for what the samples lack (`magic_write`, the
`sched_process_exec` with `sha256`, and the v1beta1 event of Tracee main), said so at each."""

from __future__ import annotations

import io
import json

from tests.conftest import SHARED

from bindrift.schema.external_event import ExternalEvent, ExternalProcess, ToolVerdict
from bindrift.sensors.ingest.reader import read_events
from bindrift.sensors.ingest.tracee import TraceeAdapter

SAMPLES = SHARED / "samples" / "tracee"


def _read(data: bytes) -> tuple[list[ExternalEvent], TraceeAdapter]:
    adapter = TraceeAdapter()
    return list(read_events(io.BytesIO(data), adapter)), adapter


def test_head_docs_events_every_field() -> None:
    events, adapter = _read((SAMPLES / "docs-head-events.jsonl").read_bytes())
    assert (adapter.stats.lines, adapter.stats.kept, adapter.stats.rejected) == (18, 2, 0)
    dropped, execve = events
    assert dropped == ExternalEvent(
        tool="tracee", kind="write", time_ns=1677676197900822209, path="/usr/bin/strace.dpkg-new",
        process=ExternalProcess(pid=4741, vpid=441, comm="dpkg", uid=0),
        parents=[ExternalProcess(pid=4729, vpid=431)],
        container_id="ae95a93ce0c2f1b824ac4b205e4d1a3c8f724d663626c1ad23576efec64318de", container_name="app",
        image="docker.io/library/ubuntu:latest", pod="app-75ff449bcd-hfwnz", namespace="default",
        verdict=ToolVerdict(rule="New executable dropped", priority="2", drift="dropped-executable",
                            field="signatureID=TRC-1022"),
        source_event="New executable dropped",
        facts={"eventName": "New executable dropped", "signatureID": "TRC-1022", "Severity": 2,
               "Technique": "Masquerading", "external_id": "T1036", "Category": "defense-evasion"},
    )  # fmt: skip
    # hostName ("minikube" here, but the pod name inside a pod) is the task's UTS name, never the node
    assert execve == ExternalEvent(
        tool="tracee", kind="exec", time_ns=1684688250477166817, path="/opt/cni/bin/bridge",
        process=ExternalProcess(pid=3242201, vpid=35694, comm="cri-dockerd", args=["/opt/cni/bin/bridge"], uid=0),
        parents=[ExternalProcess(pid=3205483, vpid=1033)], node="", container_id="",  # `container: {}` on the host
        source_event="execve", facts={"eventName": "execve"},
    )  # fmt: skip


def test_2023_docs_events_flat_container_keys() -> None:
    events, adapter = _read((SAMPLES / "docs-outputs-2023-events.jsonl").read_bytes())
    assert (adapter.stats.lines, adapter.stats.kept) == (9, 2)
    execve, exec_done = events
    assert (execve.source_event, execve.path, execve.process.args, execve.process.uid) == (
        "execve", "/bin/ls", ["ls"], 1000)  # fmt: skip
    assert exec_done == ExternalEvent(
        tool="tracee", kind="exec", time_ns=1657295236470126167, path="/usr/bin/exa",
        process=ExternalProcess(pid=2578324, vpid=2578324, comm="exa", args=["exa", "--color=auto"], uid=1000),
        parents=[ExternalProcess(pid=2578238, vpid=2578238)], container_id="", sha256="",  # sha256 "" (exec-hash off)
        source_event="sched_process_exec",
        facts={"eventName": "sched_process_exec", "dev": 271581185, "inode": 2493759, "invoked_from_kernel": 0,
               "ctime": 1653730234432691496, "stdin_type": "S_IFCHR", "inode_mode": 33261, "interp": "/bin/exa",
               "interpreter_pathname": "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
               "interpreter_dev": 271581185, "ineterpreter_inode": 2752590},
    )  # fmt: skip


# Constructed: formats.md §3's magic_write and sched_process_exec (legacy shape, in a container).
MAGIC_WRITE = {"timestamp": 1783763098512000000, "processId": 61, "hostProcessId": 48180, "processName": "curl",
               "hostName": "web-7d9c-abc12", "container": {"id": "9965a6a599f6" + "1" * 52, "name": "web",
               "image": "docker.io/library/nginx:1.27", "imageDigest": "sha256:" + "d9" * 32},
               "kubernetes": {"podName": "web-7d9c-abc12", "podNamespace": "shop"}, "eventName": "magic_write",
               "eventId": "1011", "args": [{"name": "pathname", "type": "const char*", "value": "/tmp/kinsing"},
               {"name": "bytes", "type": "bytes", "value": "f0VMRgIBAQAAAAAAAAAAAAIAPgABAAAA"},
               {"name": "dev", "type": "dev_t", "value": 46},
               {"name": "inode", "type": "unsigned long", "value": 1311}]}  # fmt: skip
EXEC_HASH = {"timestamp": 1783763098682419669, "hostProcessId": 48211, "eventName": "sched_process_exec",
             "container": {"id": "9965a6a599f6" + "1" * 52}, "args": [
             {"name": "pathname", "value": "/tmp/kinsing"}, {"name": "dev", "value": 46},
             {"name": "inode", "value": 1311}, {"name": "sha256", "value": "4C3F" + "0" * 60},
             {"name": "argv", "value": ["/tmp/kinsing", "-c", "/tmp/k cfg"]},
             {"name": "pwd", "value": "/tmp"}]}  # fmt: skip


def test_magic_write_and_hashed_exec() -> None:
    events, _ = _read(json.dumps(MAGIC_WRITE).encode() + b"\n" + json.dumps(EXEC_HASH).encode())
    write, execution = events
    assert write == ExternalEvent(
        tool="tracee", kind="write", time_ns=1783763098512000000, path="/tmp/kinsing",
        process=ExternalProcess(pid=48180, vpid=61, comm="curl"), container_id="9965a6a599f6" + "1" * 52,
        container_name="web", image="docker.io/library/nginx:1.27", image_digest="sha256:" + "d9" * 32,
        pod="web-7d9c-abc12", namespace="shop", header=b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x02\0>\0\x01\0\0\0",
        source_event="magic_write", facts={"eventName": "magic_write", "dev": 46, "inode": 1311},
    )  # fmt: skip
    assert (execution.path, execution.sha256, execution.process.args, execution.process.cwd) == (
        "/tmp/kinsing", "4c3f" + "0" * 60, ["/tmp/kinsing", "-c", "/tmp/k cfg"], "/tmp")  # fmt: skip


# Constructed: Tracee main's v1beta1.Event JSON (api/v1beta1/event_json.go): RFC3339Nano timestamp,
# workload.k8s (not workload.pod), typed data values with u_int64 as strings.
V1_EXEC = {"timestamp": "2026-07-11T09:44:58.682419669Z", "id": 2024, "name": "sched_process_exec",
           "policies": {"matched": ["drift"]}, "workload": {
               "process": {"executable": {"path": "/tmp/kinsing"}, "unique_id": 99, "host_pid": 48211, "pid": 62,
                           "real_user": {"id": 0}, "thread": {"name": "kinsing", "tid": 62, "host_tid": 48211},
                           "ancestors": [{"executable": {"path": "/bin/bash"}, "host_pid": 48100, "pid": 1,
                                          "thread": {"name": "bash"}}]},
               "container": {"id": "9965a6a599f6" + "2" * 52, "name": "web",
                             "image": {"id": "sha256:" + "ee" * 32, "repo_digests": ["nginx@sha256:" + "d9" * 32],
                                       "name": "nginx:1.27"}},
               "k8s": {"pod": {"name": "web-7d9c-abc12", "uid": "u"}, "namespace": {"name": "shop"}}},
           "data": [{"name": "pathname", "str": "/tmp/kinsing"}, {"name": "argv", "str_array": {"value": ["kinsing"]}},
                    {"name": "inode", "u_int64": "18446744073709551615"}, {"name": "dev", "u_int32": 46},
                    {"name": "invoked_from_kernel", "bool": False}]}  # fmt: skip
V1_DROPPED = {"timestamp": "2026-07-11T09:44:58.5Z", "id": 6029, "name": "dropped_executable",
              "workload": {"process": {"host_pid": 48180, "thread": {"name": "curl"}}},
              "data": [{"name": "path", "str": "/tmp/kinsing"}],
              "threat": {"name": "New executable dropped", "severity": "MEDIUM",
                         "mitre": {"technique": {"id": "T1036", "name": "Masquerading"}}}}  # fmt: skip


def test_v1beta1_events() -> None:
    events, adapter = _read(json.dumps(V1_EXEC).encode() + b"\n" + json.dumps(V1_DROPPED).encode())
    assert adapter.stats.kept == 2
    execution, dropped = events
    assert execution == ExternalEvent(
        tool="tracee", kind="exec", time_ns=1783763098682419669, path="/tmp/kinsing",
        process=ExternalProcess(pid=48211, vpid=62, comm="kinsing", exe="/tmp/kinsing", args=["kinsing"], uid=0),
        parents=[ExternalProcess(pid=48100, vpid=1, comm="bash", exe="/bin/bash")],
        container_id="9965a6a599f6" + "2" * 52, container_name="web", image="nginx:1.27",
        image_digest="sha256:" + "d9" * 32, pod="web-7d9c-abc12", namespace="shop", source_event="sched_process_exec",
        facts={"eventName": "sched_process_exec", "inode": "18446744073709551615", "dev": 46,
               "invoked_from_kernel": False},
    )  # fmt: skip
    assert (dropped.kind, dropped.path, dropped.time_ns, dropped.verdict) == (
        "write", "/tmp/kinsing", 1783763098500000000,
        ToolVerdict(rule="New executable dropped", priority="MEDIUM", drift="dropped-executable",
                    field="eventName=dropped_executable"))  # fmt: skip


def test_malformed_and_filtered() -> None:
    lines = [b'{"eventName": "magic_write"}', b'{"eventName": "execve", "timestamp": "soon", "args": []}',
             b'{"eventName": "execve", "timestamp": 1, "args": {"a": 1}}', b"null",
             b'{"eventName": "openat", "timestamp": 1}',
             b'{"eventName": "execve", "timestamp": 1, "args": []}']  # fmt: skip
    events, adapter = _read(b"\n".join(lines))
    # no timestamp, a bad time, args not a list, not an object, a pathless execve: rejected; openat: ignored
    assert events == [] and (adapter.stats.lines, adapter.stats.rejected) == (6, 5)
    assert adapter.stats.reasons == {"Tracee event without a timestamp": 1, "bad time": 1, "not a Tracee event": 2,
                                     "execve without a path": 1}  # fmt: skip
    assert adapter.stats.ignored == {"eventName=openat": 1}


def test_other_events_are_counted_by_name_from_the_head_alone() -> None:
    """Every sample event bindrift does not keep (opens, reads, packets, clones, closes, the custom event) is
    counted under its name, read by the head decode (tests/ingest/test_prefilters.py: it reads what the full
    decode reads)."""
    from bindrift.sensors.ingest import tracee

    lines = [line for name in ("docs-head-events.jsonl", "docs-outputs-2023-events.jsonl")
             for line in (SAMPLES / name).read_bytes().splitlines() if line.strip()]  # fmt: skip
    dropped = 0
    for line in lines:
        adapter = TraceeAdapter()
        if adapter.feed(line):
            continue
        dropped += 1
        head = tracee._HEAD_DECODER.decode(line)
        assert adapter.stats.ignored == {f"eventName={head.event_name or head.name}": 1}, line[:200]
    assert dropped >= 18


def test_a_repeated_argument_is_its_last_value_in_the_facts() -> None:
    """Constructed: a legacy exec naming `dev` twice; the facts, like the arguments, hold the last value."""
    base = {"timestamp": 1, "eventName": "execve", "processId": 7}
    for values, fact in ((["5", ["x"]], None), ([["x"], 5], 5), ([4, 5], 5)):
        event = {**base, "args": [{"name": "pathname", "value": "/bin/x"}] + [
            {"name": "dev", "value": value} for value in values]}  # fmt: skip
        (kept,) = TraceeAdapter().feed(json.dumps(event).encode())
        assert kept.facts.get("dev") == fact, values
