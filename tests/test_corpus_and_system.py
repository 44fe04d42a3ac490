"""End-to-end quality gates: the labelled development corpus, and this machine's own binaries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.triage import triage
from bindrift.schema.severity import at_least

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
    for top in SYSTEM_DIRS:
        for root, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW | os.O_NONBLOCK)) as fh:
                        if os.fstat(fh.fileno()).st_size >= 64 and fh.read(4) == b"\x7fELF":
                            paths.append(path)
                except OSError:
                    continue
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
