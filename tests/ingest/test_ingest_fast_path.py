"""`bindrift ingest` parsed without typer (cli/ingest_args.py) answers as the typer command does: the same exit
status, summary, findings and metrics for the same command line; what it does not handle goes to typer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from tests.conftest import SHARED
from tests.ingest.test_falco import DROP

from bindrift.cli.ingest_args import quick_ingest
from bindrift.schema.finding import Finding

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
TYPER = "import sys; from bindrift.cli.main import app; sys.argv[0] = 'bindrift'; app()"
SAMPLES = SHARED / "samples"


def _both(args: list[str], data: bytes = b"") -> tuple[subprocess.CompletedProcess[bytes], ...]:
    """The console script (fast path) and the typer application, on the same command line and input."""
    return tuple(
        subprocess.run([*command, "ingest", *args], input=data, capture_output=True, timeout=120, check=False)
        for command in ([BINDRIFT], [sys.executable, "-c", TYPER])
    )


@pytest.mark.parametrize(
    ("tool", "sample"),
    [("falco", "falco/falco-website-syscall-alerts.jsonl"), ("tetragon", "tetragon/testdata-events.jsonl"),
     ("tracee", "tracee/docs-head-events.jsonl"), ("auditd", "auditd/audit-userspace-test4.log"),
     ("tetragon", "falco/falco-website-syscall-alerts.jsonl")],  # the last: another tool's file, exit 2
)  # fmt: skip
def test_check_of_a_sample_answers_as_typer(tool: str, sample: str, tmp_path: Path) -> None:
    fast, full = _both(["--from", tool, "--check", "--metrics-file", str(tmp_path / "m.prom"), str(SAMPLES / sample)])
    assert (fast.returncode, fast.stderr) == (full.returncode, full.stderr)
    assert b"lines read" in fast.stderr


def test_stdin_and_nothing_readable_answer_as_typer() -> None:
    fast, full = _both(["--from", "falco", "--check"], b"hello\n{not json\n")
    assert fast.returncode == full.returncode == 1
    assert fast.stderr == full.stderr


def test_store_run_gives_the_same_findings(tmp_path: Path) -> None:
    data = json.dumps(DROP).encode() + b"\n"
    results = []
    for name, command in (("fast", [BINDRIFT]), ("typer", [sys.executable, "-c", TYPER])):
        db = f"sqlite:///{tmp_path / name}.db"
        args = ["ingest", "--from", "falco", "--db", db, "--cluster", "prod", "--node-name", "n1", "-"]
        results.append(subprocess.run([*command, *args], input=data, capture_output=True, timeout=120, check=False))
    fast, full = results
    assert fast.returncode == full.returncode == 0, fast.stderr
    assert fast.stderr == full.stderr and b"1 findings (1 from the event alone)" in fast.stderr
    found = [msgspec.json.decode(r.stdout.splitlines()[0], type=Finding) for r in results]
    assert [(f.category, f.file.path, f.resource.cluster, f.resource.node) for f in found] == [
        ("Added Binary Executed", "/tmp/kinsing", "prod", "node-a")] * 2  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [["--from", "falco", "--help"], ["--from", "falco", "--listen", "8080"], ["--from", "falco", "--bus", "nats://x"],
     ["--from", "splunk", "-"], ["-"], ["--from", "falco", "a", "b"], ["--from", "falco", "/nonexistent/file"]],
)  # fmt: skip
def test_what_it_does_not_handle_goes_to_typer(argv: list[str]) -> None:
    assert quick_ingest(argv) is None


def test_missing_file_named_by_typer() -> None:
    fast, full = _both(["--from", "falco", "--check", "/nonexistent/file"])
    assert fast.returncode == full.returncode == 2 and fast.stderr == full.stderr
    assert b"No such file or directory" in fast.stderr
