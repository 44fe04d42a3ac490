"""Provenance: dpkg and apk records mark files packaged (findings capped) or modified, on this host and
from records handed in as an image scan would."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.packages import build_rpm, rpm_root

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.provenance import PackageIndex, apply, host, host_index
from bindrift.analysis.source import BufferSource
from bindrift.analysis.triage import triage, triage_source

HOST = HostProfile.parse("x86_64")
BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
TRUE = os.path.realpath(shutil.which("true") or "/usr/bin/true")


def _md5sums(path: Path) -> bytes:
    return f"{hashlib.md5(path.read_bytes()).hexdigest()}  {str(path).lstrip('/')}\n".encode()


def _triaged(path: Path, index: PackageIndex) -> tuple[str | None, str | None, list[tuple[str, str]], list[str]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        report = triage(fd, host=HOST, label=str(path))
        apply(report, index, fd=fd)
    finally:
        os.close(fd)
    return report.package, report.provenance, [(f.check, f.severity) for f in report.findings], report.notes


def test_packaged_file_is_capped_and_a_modified_one_named(tmp_path: Path, test_binaries: Path) -> None:
    foreign = tmp_path / "busybox"
    shutil.copy(test_binaries / "busybox-static-armhf" / "bin" / "busybox", foreign)
    index = PackageIndex.from_dpkg([("busybox-static:armhf", _md5sums(foreign), 0)])
    package, provenance, findings, _ = _triaged(foreign, index)
    assert (package, provenance) == ("busybox-static", "packaged")
    assert findings == [("foreign_arch", "info")], "capped: the package manager installed it as it is"
    with foreign.open("ab") as handle:
        handle.write(b"\0")
    package, provenance, findings, notes = _triaged(foreign, index)
    assert (package, provenance) == ("busybox-static", "modified")
    assert ("foreign_arch", "high") in findings, "a modified packaged file keeps its findings"
    assert any("modified packaged file: busybox-static" in note for note in notes)
    elsewhere = tmp_path / "other"
    shutil.copy(foreign, elsewhere)
    assert _triaged(elsewhere, index)[:2] == (None, None), "only the recorded path is looked up"


def test_apk_records_and_image_bytes(tmp_path: Path) -> None:
    data = Path(TRUE).read_bytes()
    sha1 = base64.b64encode(hashlib.sha1(data).digest()).decode()
    installed = f"C:Q1x\nP:busybox\nV:1.36\nF:bin\nR:true\na:0:0:755\nZ:Q1{sha1}\nF:etc\nR:motd\nZ:Q1!!\n\n".encode()
    index = PackageIndex.from_apk(installed)
    assert index.dropped == 1, "the malformed checksum is counted"
    report = triage_source(BufferSource(data), path="/bin/true", host=HOST)
    apply(report, index, source=BufferSource(data))
    assert (report.package, report.provenance) == ("busybox", "packaged")
    changed = data[:-1] + bytes([data[-1] ^ 1])
    report = triage_source(BufferSource(changed), path="/bin/true", host=HOST)
    apply(report, index, source=BufferSource(changed))
    assert report.provenance == "modified"


def test_host_scan_names_the_package() -> None:
    index = host_index()
    assert index is not None and index.count() > 1000
    coreutils = index.lookup(TRUE)
    assert coreutils is not None and coreutils.package == "coreutils"
    result = subprocess.run([BINDRIFT, "scan", "--format", "json", TRUE], capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["package"], report["provenance"]) == ("coreutils", "packaged")
    listed = subprocess.run([BINDRIFT, "scan", "--format", "json", "--no-hash", TRUE], capture_output=True,
                            timeout=60, check=False)  # fmt: skip
    assert json.loads(listed.stdout)["provenance"] is None, "not looked up without hashing when nothing is capped"


def test_unchanged_since_install_is_trusted_and_a_later_write_is_not(tmp_path: Path) -> None:
    """dpkg writes md5sums after the files: a file whose ctime is not later is packaged without re-hashing;
    any write moves ctime past the install and the content is compared."""
    tool = tmp_path / "tool"
    shutil.copy(TRUE, tool)
    installed = time.time_ns()
    index = PackageIndex.from_dpkg([("coreutils", _md5sums(tool), installed)])

    def scan() -> tuple[str | None, str | None]:
        report = triage(tool, host=HOST, label=str(tool), packages=lambda: index)
        return report.package, report.provenance

    assert scan() == ("coreutils", "packaged")
    time.sleep(0.05)
    with tool.open("ab") as handle:
        handle.write(b"\0")
    assert scan() == ("coreutils", "modified")


@pytest.mark.skipif(not shutil.which("rpmbuild"), reason="needs rpm (rpmbuild)")
def test_host_rpm_database(tmp_path: Path, test_binaries: Path, monkeypatch: pytest.MonkeyPatch,
                           caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """The host's rpm sqlite database names the package (name-version-release.arch) and caps a packaged
    file; a Berkeley DB `Packages` beside it is reported as unsupported."""
    armbox = (test_binaries / "busybox-static-arm64" / "bin" / "busybox").read_bytes()
    root = rpm_root(tmp_path, [build_rpm(tmp_path, "armbox", {"usr/bin/armbox": armbox}, 8)])
    folder = root / "var" / "lib" / "rpm"
    (folder / "Packages").write_bytes(bytes(12) + b"\x61\x15\x06\x00")
    monkeypatch.setattr(host, "RPM_FOLDERS", (str(folder),))
    (index,) = host._rpm_indexes({})
    assert "unsupported rpm database format (Berkeley DB)" in caplog.text
    installed = root / "usr" / "bin" / "armbox"
    report = triage(installed, host=HOST, label="/usr/bin/armbox", packages=lambda: index)
    assert (report.package, report.provenance) == ("armbox-1.0-1.x86_64", "packaged")
    assert [(f.check, f.severity) for f in report.findings] == [("foreign_arch", "info")]
    installed.write_bytes(armbox + b"\0")
    report = triage(installed, host=HOST, label="/usr/bin/armbox", packages=lambda: index)
    assert report.provenance == "modified"
    assert any("modified packaged file: armbox-1.0-1.x86_64" in note and "sha256 in rpm's record" in note
               for note in report.notes)  # fmt: skip
