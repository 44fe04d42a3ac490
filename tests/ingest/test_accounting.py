"""Honest accounting: every line of every real sample is kept, rejected with a reason, or ignored by kind; a
sample given to another tool's adapter is named as that tool's (exit 2); input nothing could be read of
exits 1; a Tetragon exec without `process.binary` is counted; the counters reach the Prometheus metrics."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import SHARED

from bindrift.schema.external_event import Tool
from bindrift.sensors.ingest.reader import make_adapter, read_events
from bindrift.sensors.ingest.sniff import sniff

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
SAMPLES = SHARED / "samples"
FILES: dict[Tool, list[Path]] = {
    "falco": [SAMPLES / "falco" / "falco-website-syscall-alerts.jsonl", SAMPLES / "falco" /
              "falco-website-k8saudit-alerts.jsonl"],
    "tetragon": [SAMPLES / "tetragon" / "testdata-events.jsonl"],
    "tracee": [SAMPLES / "tracee" / "docs-head-events.jsonl", SAMPLES / "tracee" / "docs-outputs-2023-events.jsonl"],
    "auditd": [SAMPLES / "auditd" / "audit-userspace-test4.log"],
}  # fmt: skip


def _tetragon_book() -> bytes:
    """The ebpf-book and docs events, one compact line each, as Tetragon's export writes them."""
    paths = sorted(SAMPLES.glob("tetragon/ebpf-book/*.json")) + sorted(SAMPLES.glob("tetragon/docs-content/*.json"))
    return b"\n".join(json.dumps(json.loads(p.read_bytes()), separators=(",", ":")).encode() for p in paths)


def _check(tool: str, data: bytes, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BINDRIFT, "ingest", "--from", tool, "--check", *extra, "-"], input=data.decode(),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


@pytest.mark.parametrize("tool", sorted(FILES))
def test_every_line_of_the_samples_is_accounted_for(tool: Tool) -> None:
    data = b"\n".join(path.read_bytes() for path in FILES[tool]) + (b"\n" + _tetragon_book() if tool == "tetragon"
                                                                   else b"")  # fmt: skip
    adapter = make_adapter(tool)
    events = list(read_events(io.BytesIO(data), adapter))
    s = adapter.stats
    assert s.lines == len([line for line in data.splitlines() if line.strip()])
    assert s.lines == s.kept_lines + s.rejected + s.ignored_lines, s
    assert s.kept == len(events) > 0 and s.rejected == sum(s.reasons.values())
    assert all(kind and n > 0 for kind, n in s.ignored.items())
    if tool == "falco":
        assert s.ignored == {
            "source=k8s_audit": 6,
            "rule=Contact K8S API Server From Container (neither an exec nor a write)": 2,
        }
    if tool == "tetragon":  # exits, connects, closes, listens, throttles, other kprobes: each counted by kind
        assert {"process_exit", "process_connect", "process_close", "process_listen"} <= set(s.ignored)
    if tool == "auditd":
        assert (s.kept, s.kept_lines, s.ignored_lines) == (2, 13, 0)


@pytest.mark.parametrize("tool", sorted(FILES))
def test_each_sample_sniffs_as_its_tool(tool: Tool) -> None:
    first = next(line for line in FILES[tool][0].read_bytes().splitlines() if line.strip())
    assert sniff(first) == tool


def test_another_tools_file_is_named_and_exits_2() -> None:
    for tool, paths in FILES.items():
        for other in FILES:
            if other == tool:
                continue
            result = _check(other, paths[0].read_bytes())
            assert result.returncode == 2, (tool, other, result.stderr)
            assert f"looks like {tool} output, not {other} (use --from {tool})" in result.stderr


def test_nothing_readable_exits_1_and_names_the_reasons(tmp_path: Path) -> None:
    result = _check("falco", b"hello\n{not json\n[]\n")
    assert result.returncode == 1, result.stderr
    assert "3 lines read, 0 events kept, 3 rejected, 0 ignored" in result.stderr
    assert "rejected: not a Falco alert 3" in result.stderr
    assert "none of the 3 lines could be read as falco events" in result.stderr
    assert _check("falco", b"").returncode == 0, "an empty input is not an error"


def test_tetragon_exec_without_binary_is_counted(tmp_path: Path) -> None:
    bare = {
        "process_exec": {"process": {"pid": 7, "start_time": "2026-07-11T09:44:58Z"}},
        "time": "2026-07-11T09:44:58Z",
    }
    exit_ = {"process_exit": {"process": {"pid": 7, "binary": "/bin/sh"}}, "time": "2026-07-11T09:44:59Z"}
    data = b"\n".join(json.dumps(e, separators=(",", ":")).encode() for e in (bare, exit_))
    metrics = tmp_path / "ingest.prom"
    result = _check("tetragon", data, "--metrics-file", str(metrics))
    assert result.returncode == 0, result.stderr
    assert "2 lines read, 0 events kept, 1 rejected, 1 ignored" in result.stderr
    assert "rejected: process_exec without process.binary 1" in result.stderr
    assert "ignored: process_exit 1" in result.stderr
    text = metrics.read_text()
    assert (
        'bindrift_ingest_rejected_lines_total{reason="process_exec without process.binary",tool="tetragon"} 1.0' in text
    )
    assert 'bindrift_ingest_ignored_lines_total{kind="process_exit",tool="tetragon"} 1.0' in text
    assert 'bindrift_ingest_lines_total{outcome="kept",tool="tetragon"} 0.0' in text


def test_hostile_kinds_are_bounded_and_shown_escaped() -> None:
    lines = [json.dumps({"eventName": f"evil\u202e{i}", "timestamp": 1}).encode() for i in range(100)]
    result = _check("tracee", b"\n".join(lines))
    assert result.returncode == 0, result.stderr
    assert "100 ignored" in result.stderr and "\u202e" not in result.stderr and "evil\\u202e" in result.stderr
    assert "other 36" in result.stderr, "64 kinds by name, the rest together"
