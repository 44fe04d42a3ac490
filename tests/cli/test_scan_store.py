"""`bindrift scan --store`: suspicious binaries become stored findings, escalated by intelligence."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.provenance import PackageIndex, apply
from bindrift.analysis.source import BufferSource
from bindrift.analysis.triage import triage_source
from bindrift.cli.scan_store import ScanFindings
from bindrift.sinks.store.sql_store import SqlStore

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
TRUE = os.path.realpath(shutil.which("true") or "/usr/bin/true")


def bindrift(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BINDRIFT, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120,
                          check=False)  # fmt: skip


def test_scan_store_records_suspicious_binaries_with_intel(tmp_path: Path, test_binaries: Path) -> None:
    env = {"BINDRIFT_DB": f"sqlite:///{tmp_path / 'scan.db'}", "BINDRIFT_CONFIG": str(tmp_path / "none.toml")}
    arm64 = test_binaries / "busybox-static-arm64" / "bin" / "busybox"
    armhf = test_binaries / "busybox-static-armhf" / "bin" / "busybox"
    iocs = tmp_path / "iocs.txt"
    iocs.write_text(hashlib.sha256(arm64.read_bytes()).hexdigest() + "  # Mirai dropper build\n")
    assert bindrift("intel", "add", str(iocs), env=env).returncode == 0
    scan = bindrift("scan", "--store", "--format", "json", "--host-arch", "x86_64", TRUE, str(arm64), str(armhf),
                    env=env)  # fmt: skip
    assert scan.returncode == 1, scan.stderr
    assert "2 suspicious binary finding(s) stored" in scan.stderr
    listed = [
        json.loads(line) for line in bindrift("findings", "list", "--format", "json", env=env).stdout.splitlines()
    ]
    by_path = {f["file"]["path"]: f for f in listed}
    assert set(by_path) == {str(arm64), str(armhf)}, "the native binary raises nothing"
    known = by_path[str(arm64)]
    assert (known["category"], known["severity"]) == ("Suspicious binary", "critical")
    assert known["title"] == "Suspicious binary found", "a scan sees files at rest, not their write"
    assert known["indicator"]["matches"][0]["name"] == "Mirai dropper build"
    other = by_path[str(armhf)]
    assert (other["severity"], other["file"]["elf"]["arch"]) == ("high", "arm")
    assert other["file"]["triage"][0]["check"] == "foreign_arch"
    assert [t["id"] for t in other["techniques"]] == ["T1105"]
    rescan = bindrift("scan", "--store", "--format", "json", "--host-arch", "x86_64", str(armhf), env=env)
    assert rescan.returncode == 1
    again = [json.loads(line) for line in bindrift("findings", "list", "--format", "json", env=env).stdout.splitlines()]
    assert {f["file"]["path"]: f["count"] for f in again}[str(armhf)] == 2, "a rescan repeats, it does not duplicate"


def x32_executable() -> bytes:
    """A minimal x32 program (ELF32, e_machine x86-64): one R-X PT_LOAD whose entry loops forever."""
    code = b"\xeb\xfe"
    size = 52 + 32 + len(code)
    ident = b"\x7fELF\x01\x01\x01" + bytes(9)
    ehdr = struct.pack("<16sHHIIIIIHHHHHH", ident, 2, 62, 1, 0x400054, 52, 0, 0, 52, 32, 1, 0, 0, 0)
    return ehdr + struct.pack("<8I", 1, 0, 0x400000, 0x400000, size, size, 5, 0x1000) + code


def test_scan_finding_severity_follows_the_triage(tmp_path: Path, test_binaries: Path) -> None:
    env = {"BINDRIFT_DB": f"sqlite:///{tmp_path / 'scan.db'}", "BINDRIFT_CONFIG": str(tmp_path / "none.toml")}
    x32 = tmp_path / "x32-tool"
    x32.write_bytes(x32_executable())
    armhf = test_binaries / "busybox-static-armhf" / "bin" / "busybox"
    scan = bindrift("scan", "--store", "--format", "json", "--host-arch", "x86_64", "--min-severity", "info",
                    str(x32), str(armhf), env=env)  # fmt: skip
    assert scan.returncode == 1, scan.stderr
    (report, _) = [json.loads(line) for line in scan.stdout.splitlines()]
    assert {f["check"]: f["severity"] for f in report["findings"]}["x32_abi_disabled"] == "low"
    listed = [
        json.loads(line) for line in bindrift("findings", "list", "--format", "json", env=env).stdout.splitlines()
    ]
    by_path = {f["file"]["path"]: f for f in listed}
    assert by_path[str(x32)]["severity"] == "low", "a low-only triage is a low finding"
    assert by_path[str(armhf)]["severity"] == "high"
    assert {f["title"] for f in listed} == {"Suspicious binary found"}


@pytest.mark.slow
def test_packaged_file_stored_only_when_intelligence_matches(tmp_path: Path) -> None:
    """OpenSBI (scripts/test.sh installs it) is RISC-V firmware shipped by Debian: packaged, capped, not
    stored; once a threat-intelligence list names its hash, its checks count again."""
    env = {"BINDRIFT_DB": f"sqlite:///{tmp_path / 'scan.db'}", "BINDRIFT_CONFIG": str(tmp_path / "none.toml")}
    firmware = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf"
    quiet = bindrift("scan", "--store", "--format", "json", "--host-arch", "x86_64", firmware, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["provenance"] == "packaged"
    assert "0 suspicious binary finding(s) stored" in quiet.stderr
    iocs = tmp_path / "iocs.txt"
    iocs.write_text(hashlib.sha256(Path(firmware).read_bytes()).hexdigest() + "  # trojaned firmware\n")
    assert bindrift("intel", "add", str(iocs), env=env).returncode == 0
    known = bindrift("scan", "--store", "--format", "json", "--host-arch", "x86_64", firmware, env=env)
    assert "1 suspicious binary finding(s) stored" in known.stderr
    (finding,) = [
        json.loads(line) for line in bindrift("findings", "list", "--format", "json", env=env).stdout.splitlines()
    ]
    assert finding["severity"] == "critical"
    assert finding["file"]["triage"][0]["severity"] == "high", "the capped check is restored"


def test_packaged_file_with_tampering_is_stored_without_intelligence(
    tmp_path: Path, test_binaries: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records may list a tampered file (a hostile package or image): its evidence of tampering is not capped,
    so it is stored; a packaged foreign binary, capped whole, is not."""
    monkeypatch.setenv("BINDRIFT_CONFIG", str(tmp_path / "none.toml"))
    lying = bytearray(Path(TRUE).read_bytes())
    lying[52:54] = (72).to_bytes(2, "little")  # e_ehsize: 64 in every ELF64 file
    foreign = (test_binaries / "busybox-static-armhf" / "bin" / "busybox").read_bytes()
    files = {"usr/bin/true": bytes(lying), "usr/bin/busybox": foreign}
    index = PackageIndex.from_dpkg([("evil", "".join(f"{hashlib.md5(d).hexdigest()}  {p}\n" for p, d in files.items())
                                     .encode(), 0)])  # fmt: skip
    store = SqlStore(f"sqlite:///{tmp_path / 'scan.db'}")
    sink = ScanFindings(store)
    for path, data in files.items():
        report = triage_source(BufferSource(data), path=f"/{path}", host=HostProfile.parse("x86_64"))
        apply(report, index, source=BufferSource(data))
        assert report.provenance == "packaged"
        sink(report)
    assert sink.stored == 1
    (finding,) = store.list_findings()
    assert finding.file.path == "/usr/bin/true" and "bad_ehsize" in {c.check for c in finding.file.triage}
    store.close()
