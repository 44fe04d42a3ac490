"""The prefilters are sound: on every real sample line, and on hypothesis-made variations of them (other event
types, hooks and names, keys nested, repeated, reordered or spaced, two events in one line), the adapter with
its prefilter gives exactly what the full decode gives (the prefilter switched off), or, for a line the full
decode refuses, ignores it. A prefilter never drops a line the full decode would keep, and what it drops is
counted under the same kind. Tracee's is a typed decode of the name fields alone: it reads what the full
decode reads."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import SHARED

from bindrift.schema.external_event import ExternalEvent, Tool
from bindrift.sensors.ingest import falco, tetragon, tracee
from bindrift.sensors.ingest.common import MalformedEventError
from bindrift.sensors.ingest.reader import make_adapter

SAMPLES = SHARED / "samples"
Outcome = tuple[str, object]


def _outcome(tool: Tool, line: bytes) -> Outcome:
    adapter = make_adapter(tool)
    try:
        events: list[ExternalEvent] = adapter.feed(line)
    except MalformedEventError as exc:
        return "rejected", exc.reason
    return ("kept", events) if events else ("ignored", dict(adapter.stats.ignored))


def _compare(tool: Tool, module: Any, line: bytes) -> tuple[Outcome, Outcome]:
    """(with the prefilter, with the full decode alone)."""
    filtered = _outcome(tool, line)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "_filtered_raw", lambda _line: "")
        full = _outcome(tool, line)
    return filtered, full


def _sound(tool: Tool, module: Any, line: bytes) -> None:
    filtered, full = _compare(tool, module, line)
    if filtered != full:
        assert module._filtered_raw(line), "only a line the prefilter drops may be read otherwise"
        assert filtered[0] == "ignored" and full[0] == "rejected", (line[:300], filtered, full)


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


TETRAGON_EVENTS = [
    json.loads(line) for line in (SAMPLES / "tetragon" / "testdata-events.jsonl").read_text().splitlines()
]
TETRAGON_EVENTS += [json.loads(p.read_bytes()) for p in sorted(SAMPLES.glob("tetragon/*/*.json"))]
TRACEE_EVENTS = [json.loads(line) for name in ("docs-head-events.jsonl", "docs-outputs-2023-events.jsonl")
                 for line in (SAMPLES / "tracee" / name).read_text().splitlines() if line.strip()]  # fmt: skip
FALCO_LINES = [line for p in sorted(SAMPLES.glob("falco/*.jsonl")) for line in p.read_bytes().splitlines() if line]
SAMPLE_LINES: list[tuple[Tool, Any, bytes]] = [
    *(("tetragon", tetragon, _compact(e)) for e in TETRAGON_EVENTS),
    *(("falco", falco, line) for line in FALCO_LINES),
]


@pytest.mark.parametrize(("tool", "module", "line"), SAMPLE_LINES)
def test_every_sample_line_reads_the_same_with_and_without_the_prefilter(tool: Tool, module: Any, line: bytes) -> None:
    filtered, full = _compare(tool, module, line)
    assert filtered == full


def test_the_tetragon_prefilter_drops_the_samples_exits_connects_and_other_kprobes() -> None:
    assert sum(1 for tool, _, line in SAMPLE_LINES if tool == "tetragon" and tetragon._filtered_raw(line)) == 35


HOOKS = ["security_file_permission", "security_path_truncate", "security_file_truncate", "security_kernel_read_file",
         "commit_creds", "", "a\\b", 'x"y', "é"]  # fmt: skip
TYPES = ["process_exit", "process_kprobe", "process_exec", "process_connect", "process_Exit", "process_x9", "time"]


def _reorder(draw: st.DrawFn, record: dict[str, Any]) -> dict[str, Any]:
    keys = list(record)
    return {k: record[k] for k in draw(st.permutations(keys))} if draw(st.booleans()) else record


def _encode(draw: st.DrawFn, record: dict[str, Any]) -> bytes:
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    return json.dumps(record, separators=separators).encode()


@st.composite
def tetragon_lines(draw: st.DrawFn) -> bytes:
    event = json.loads(json.dumps(draw(st.sampled_from(TETRAGON_EVENTS))))
    kind = next(k for k in event if k.startswith("process_"))
    body = event.pop(kind)
    if draw(st.booleans()):
        kind = draw(st.sampled_from(TYPES))
    if draw(st.booleans()):
        hook = draw(st.sampled_from([*HOOKS, None]))
        if hook is None:
            body.pop("function_name", None)
        else:
            body["function_name"] = hook
        body["args"] = [{"file_arg": {"path": "/usr/bin/x"}}, {"int_arg": draw(st.sampled_from([2, 4, "2", "4"]))}]
    if draw(st.booleans()) and isinstance(body.get("process"), dict):
        body["process"]["function_name"] = draw(st.sampled_from(HOOKS))  # a key the decode does not read
    record = {kind: body, **event}
    if draw(st.booleans()):  # a second event type in the same line
        record[draw(st.sampled_from(["process_exec", "process_kprobe"]))] = body
    return _encode(draw, _reorder(draw, record))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tetragon_lines())
def test_tetragon_prefilter_never_drops_what_the_decode_keeps(line: bytes) -> None:
    _sound("tetragon", tetragon, line)


NAMES = ["sched_process_exec", "execve", "magic_write", "dropped_executable", "New executable dropped",
         "security_file_open", "net_packet_dns", "", "exec\\ve", 'a"b', "é"]  # fmt: skip


@st.composite
def tracee_lines(draw: st.DrawFn) -> bytes:
    event: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(TRACEE_EVENTS))))
    for key in ("eventName", "name"):
        if draw(st.booleans()):
            event[key] = draw(st.sampled_from(NAMES))
        elif draw(st.booleans()):
            event.pop(key, None)
    if draw(st.booleans()):  # a name nested where the decode does not read it
        event.setdefault("args", []).append({"name": "eventName", "value": draw(st.sampled_from(NAMES))})
    if draw(st.booleans()):
        event["metadata"] = {"Properties": {"signatureID": draw(st.sampled_from(["TRC-1022", "TRC-2"]))}}
    if draw(st.booleans()):
        event["workload"] = {"process": {"executable": {"path": "/bin/x"}}}
    if draw(st.booleans()):
        event["data"] = [{"name": "pathname", "str": "/usr/bin/x"}]
    event.setdefault("timestamp", 1)
    return _encode(draw, _reorder(draw, event))


def _tracee_head_reads_as_the_event(line: bytes) -> None:
    errors = (msgspec.DecodeError, msgspec.ValidationError)
    try:
        head = tracee._HEAD_DECODER.decode(line)
    except errors:
        with pytest.raises(errors):
            tracee._DECODER.decode(line)
        return
    try:
        event = tracee._DECODER.decode(line)
    except errors:
        return  # refused by the full decode: ignored by its kind, or rejected
    assert (head.event_name, head.name, dict(tracee._properties(head))) == (
        event.event_name, event.name, dict(tracee._properties(event)))  # fmt: skip


@pytest.mark.parametrize("line", [_compact(e) for e in TRACEE_EVENTS])
def test_tracee_head_of_every_sample_reads_as_the_event(line: bytes) -> None:
    _tracee_head_reads_as_the_event(line)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tracee_lines())
def test_tracee_head_reads_as_the_event(line: bytes) -> None:
    _tracee_head_reads_as_the_event(line)
