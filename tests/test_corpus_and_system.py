"""End-to-end quality gates: the labelled development corpus, and this machine's own binaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.triage import triage
from bindrift.schema.severity import at_least
from bindrift.sensors.files import iter_files
from bindrift.sensors.targets import DiskFile

BINDRIFT = Path(sys.executable).with_name("bindrift")
SYSTEM_DIRS = ("/usr/bin", "/usr/sbin", "/usr/lib")


def test_development_corpus_scores_every_labelled_row(corpus: Path) -> None:
    scorer = corpus.parent / "tools" / "score_corpus.py"
    result = subprocess.run(
        [sys.executable, str(scorer), str(corpus), "--cmd", f"{BINDRIFT} scan", "--show", "20"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout


def _system_elfs() -> list[str]:
    paths = []
    for found in iter_files(SYSTEM_DIRS):
        if isinstance(found, DiskFile) and found.size >= 64:
            with open(found.path, "rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    paths.append(found.path)
    return paths


def test_no_header_or_tampering_verdicts_on_this_machines_binaries() -> None:
    host = HostProfile.detect()
    paths = _system_elfs()
    assert len(paths) > 500, "expected a Debian system's ELF files under /usr"
    noisy = []
    for path in paths:
        report = triage(path, host=host, compute_hash=False)
        assert report.error is None, (path, report.error)
        noisy += [
            (path, f.check, f.severity)
            for f in report.findings
            if f.category in ("header-anomaly", "tampered-packer") and at_least(f.severity, "medium")
        ]
    assert noisy == []
