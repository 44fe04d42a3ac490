"""`bindrift scan` as a whole process: the framework-free front end and the typer command agree, and
workers that encode their own JSON Lines produce exactly the single-process output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([BINDRIFT, "scan", *args], capture_output=True, timeout=300, check=False)


def test_workers_writing_their_own_output_match_one_process() -> None:
    one = _run("--format", "json", "--no-hash", "--jobs", "1", "/usr/bin")
    two = _run("--format", "json", "--no-hash", "--jobs", "2", "/usr/bin")
    assert one.returncode == two.returncode and one.returncode != 2, one.stderr
    assert one.stdout.count(b"\n") > 5 * 64, "enough batches for worker processes"
    assert one.stdout == two.stdout
    assert one.stderr.splitlines()[-1] == two.stderr.splitlines()[-1], "same summary"


def test_help_and_usage_errors_still_come_from_the_typer_command() -> None:
    helped = _run("--help")
    assert helped.returncode == 0 and b"--min-severity" in helped.stdout
    for bad in (["--format", "xml", "/usr/bin/true"], ["--host-arch", "nonsense", "/usr/bin/true"], ["--bogus"], []):
        result = _run(*bad)
        assert result.returncode == 2 and b"Usage: bindrift scan" in result.stdout + result.stderr, (bad, result.stderr)


def test_quick_front_end_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = _run("--format", "json", "--host-arch", "x86_64", "-o", str(out), "/usr/bin/true")
    assert result.returncode == 0 and b'"path":"/usr/bin/true"' in out.read_bytes()
