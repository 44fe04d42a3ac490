"""Hostile input: mutated real samples (bytes flipped, cut, spliced) never crash an adapter — each line
gives events or a MalformedEventError (which the reader counts), never another exception."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import SHARED

from bindrift.schema.external_event import Tool
from bindrift.sensors.ingest.common import MalformedEventError
from bindrift.sensors.ingest.reader import make_adapter

SAMPLES = SHARED / "samples"
LINES: dict[Tool, list[bytes]] = {
    "falco": (SAMPLES / "falco" / "falco-website-syscall-alerts.jsonl").read_bytes().splitlines(),
    "tetragon": (SAMPLES / "tetragon" / "testdata-events.jsonl").read_bytes().splitlines()
    + [json.dumps(json.loads(p.read_bytes())).encode() for p in sorted(SAMPLES.glob("tetragon/ebpf-book/*.json"))],
    "tracee": (SAMPLES / "tracee" / "docs-outputs-2023-events.jsonl").read_bytes().splitlines(),
    "auditd": (SAMPLES / "auditd" / "audit-userspace-test4.log").read_bytes().splitlines(),
}  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Tool, list[bytes]]:
    tool: Tool = draw(st.sampled_from(sorted(LINES)))  # type: ignore[arg-type]
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        line = bytearray(draw(st.sampled_from(LINES[tool])))
        for _ in range(draw(st.integers(0, 8))):
            at = draw(st.integers(0, max(len(line) - 1, 0)))
            action = draw(st.sampled_from(["flip", "cut", "insert"]))
            if action == "flip" and line:
                line[at] = draw(st.integers(0, 255))
            elif action == "cut":
                del line[at:]
            else:
                line[at:at] = draw(
                    st.sampled_from([b'"', b"{", b"]", b"\\u0000", b"-1", b"18446744073709551616", b"null"])
                )
        lines.append(bytes(line))
    return tool, lines


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_mutated_lines_never_crash(case: tuple[Tool, list[bytes]]) -> None:
    tool, lines = case
    adapter = make_adapter(tool)
    events = []
    for line in lines:
        with contextlib.suppress(MalformedEventError):  # any other exception fails the test
            events += adapter.feed(line)
    events += adapter.flush()
    assert all(e.tool == tool and e.kind in ("exec", "write") and isinstance(e.time_ns, int) for e in events)
