"""`bindrift scan` as a whole process: the framework-free front end and the typer command agree, and
workers that encode their own JSON Lines produce exactly the single-process output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bindrift.sensors.files import iter_files
from bindrift.sensors.targets import DiskFile

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


def test_a_long_list_keeps_its_order_with_directories_and_errors_in_it(tmp_path: Path) -> None:
    """A `--files-from` list is shared out as given; a directory in it is walked where it stands (by the
    parent, in batches), and a FIFO, a missing path and a symlink to a directory are reported in place:
    the output is the walk of the list, the same with one process or two."""
    files, inner = tmp_path / "files", tmp_path / "dir" / "deeper"
    files.mkdir()
    inner.mkdir(parents=True)
    true = Path("/usr/bin/true").read_bytes()
    for i in range(400):
        (files / f"f{i:03}").write_bytes(true)
    for i in range(70):
        (inner.parent / f"g{i:02}").write_bytes(true)
        (inner / f"h{i:02}").write_bytes(true)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(inner)
    roots = [str(files / f"f{i:03}") for i in range(400)]
    roots[150:150] = [str(inner.parent), str(tmp_path / "fifo")]
    roots[300:300] = [str(tmp_path / "missing"), str(tmp_path / "link"), str(files / "f000")]
    listing = tmp_path / "list"
    listing.write_text("\n".join(roots) + "\n")
    expected = [found.path for found in iter_files(roots) if isinstance(found, DiskFile)]
    assert len(expected) == 400 + 140 + 70 + 1
    outputs = []
    for jobs in ("1", "2"):
        result = _run("--format", "json", "--no-hash", "--min-severity", "info", "--jobs", jobs,
                      "--files-from", str(listing))  # fmt: skip
        assert result.returncode == 2, result.stderr  # the FIFO and the missing path are errors
        assert [json.loads(line)["path"] for line in result.stdout.splitlines()] == expected
        assert b"611 ELF file(s)" in result.stderr and b"2 error(s)" in result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
