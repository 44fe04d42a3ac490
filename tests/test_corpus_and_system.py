"""End-to-end quality gates: the labelled development corpus, and this machine's own binaries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        if isinstance(found, DiskFile) and os.lstat(found.path).st_size >= 64:
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


# Packages whose legitimate ELF files once raised medium-or-higher verdicts (issue 14): separate debug
# files, boot loaders and firmware. scripts/test.sh installs them.
NATIVE_PACKAGES = ("libc6-dbg", "syslinux-common", "grub-pc-bin", "opensbi", "qemu-system-data")


def _package_elfs(package: str) -> list[str]:
    listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, timeout=60, check=False)
    if listed.returncode != 0:
        pytest.fail(f"{package} is not installed (scripts/test.sh installs it)")
    paths = []
    for line in listed.stdout.splitlines():  # files and the directories that hold them: files only
        path = Path(line)
        if path.is_file() and not path.is_symlink() and path.stat().st_size >= 64:
            with path.open("rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    paths.append(str(path))
    return paths


def test_native_packages_raise_nothing_at_medium_or_above(tmp_path: Path) -> None:
    paths = [path for package in NATIVE_PACKAGES for path in _package_elfs(package)]
    assert len(paths) > 300, "debug files, syslinux modules, grub images, OpenSBI and qemu firmware"
    listing = tmp_path / "files"
    listing.write_bytes(b"\0".join(p.encode() for p in paths))
    result = subprocess.run(
        [str(BINDRIFT), "scan", "--format", "json", "--min-severity", "medium", "--files-from", str(listing)],
        capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["path"], r["findings"]) for r in reports if r["findings"]] == []
    assert result.returncode == 0, result.stderr[-2000:]
    assert {r["provenance"] for r in reports} == {"packaged"}
    # Without the package records, the kind-aware checks alone keep header and packing verdicts below
    # medium (another architecture's firmware is still reported as such).
    host = HostProfile.detect()
    loud = []
    for path in paths:
        report = triage(path, host=host, compute_hash=False)
        loud += [(path, f.check) for f in report.findings
                 if f.category != "incompatible-architecture" and at_least(f.severity, "medium")]  # fmt: skip
    assert loud == []


@pytest.mark.slow
def test_extra_corpus_classes_score_every_labelled_row(tmp_path: Path, test_binaries: Path, corpus: Path) -> None:
    """scripts/build_corpus.py builds debug files, boot images, firmware, kernel- and module-shaped files and
    every UPX trick on every architecture; the scorer must pass all of its labelled rows."""
    project = Path(__file__).resolve().parent.parent
    built = subprocess.run(
        [sys.executable, str(project / "scripts" / "build_corpus.py"), str(tmp_path / "extra"),
         "--binaries", str(test_binaries), "--per-package", "25"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    scorer = corpus.parent / "tools" / "score_corpus.py"
    result = subprocess.run(
        [sys.executable, str(scorer), str(tmp_path / "extra"), "--cmd", f"{BINDRIFT} scan", "--show", "20"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tampered-packer              recall 100.0% (63/63)" in result.stdout
