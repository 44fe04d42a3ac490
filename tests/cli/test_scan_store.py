"""`bindrift scan --store`: suspicious binaries become stored findings, escalated by intelligence."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    assert known["indicator"]["matches"][0]["name"] == "Mirai dropper build"
    other = by_path[str(armhf)]
    assert (other["severity"], other["file"]["elf"]["arch"]) == ("high", "arm")
    assert other["file"]["triage"][0]["check"] == "foreign_arch"
    assert [t["id"] for t in other["techniques"]] == ["T1105"]
    rescan = bindrift("scan", "--store", "--format", "json", "--host-arch", "x86_64", str(armhf), env=env)
    assert rescan.returncode == 1
    again = [json.loads(line) for line in bindrift("findings", "list", "--format", "json", env=env).stdout.splitlines()]
    assert {f["file"]["path"]: f["count"] for f in again}[str(armhf)] == 2, "a rescan repeats, it does not duplicate"
