"""Architecture identity and compatibility on real Debian binaries of other architectures."""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bindrift.analysis.arch import BINFMT_DIR, HostProfile
from bindrift.analysis.triage import triage

X86 = HostProfile.parse("x86_64")
BINFMT = Path(BINFMT_DIR)

# (package folder, path inside it) → (arch, bits, endian, type, linking, interpreter)
CASES = {
    ("busybox-static-arm64", "bin/busybox"): ("aarch64", 64, "little", "exec", "static", None),
    ("busybox-static-armhf", "bin/busybox"): ("arm", 32, "little", "exec", "static", None),
    ("busybox-static-mipsel", "bin/busybox"): ("mipsel", 32, "little", "exec", "static", None),
    ("busybox-static-mips64el", "bin/busybox"): ("mips64el", 64, "little", "exec", "static", None),
    ("busybox-static-s390x", "bin/busybox"): ("s390x", 64, "big", "exec", "static", None),
    ("busybox-static-ppc64el", "bin/busybox"): ("ppc64le", 64, "little", "exec", "static", None),
    ("dropbear-bin-arm64", "usr/sbin/dropbear"): (
        "aarch64",
        64,
        "little",
        "dyn",
        "dynamic",
        "/lib/ld-linux-aarch64.so.1",
    ),
    ("dropbear-bin-armhf", "usr/sbin/dropbear"): ("arm", 32, "little", "dyn", "dynamic", "/lib/ld-linux-armhf.so.3"),
    ("curl-mipsel", "usr/bin/curl"): ("mipsel", 32, "little", "dyn", "dynamic", "/lib/ld.so.1"),
}


@pytest.mark.parametrize(("package", "member"), sorted(CASES))
def test_foreign_binary_identity_and_verdict(test_binaries: Path, package: str, member: str) -> None:
    path = test_binaries / package / member
    report = triage(path, host=X86)
    assert report.error is None
    assert (report.arch, report.bits, report.endian, report.type, report.linking, report.interpreter) == CASES[
        (package, member)
    ]
    foreign = [f for f in report.findings if f.category == "incompatible-architecture"]
    assert [(f.check, f.severity) for f in foreign] == [("foreign_arch", "high")]
    assert report.arch in foreign[0].detail and "x86_64" in foreign[0].detail
    assert report.runs == "none"
    # Real Debian builds carry no header anomalies at medium or above.
    assert [
        f.check for f in report.findings if f.category == "header-anomaly" and f.severity in ("medium", "high")
    ] == []


def test_i386_runs_in_compat_mode(test_binaries: Path) -> None:
    report = triage(test_binaries / "busybox-static-i386" / "bin" / "busybox", host=X86)
    assert (report.arch, report.bits, report.runs) == ("i386", 32, "compat")
    assert [(f.check, f.severity) for f in report.findings] == [("compat_only", "info")]


def test_i386_is_foreign_without_compat(test_binaries: Path) -> None:
    report = triage(test_binaries / "busybox-static-i386" / "bin" / "busybox", host=HostProfile.parse("x86_64,"))
    assert report.runs == "none"
    assert [f.check for f in report.findings if f.category == "incompatible-architecture"] == ["foreign_arch"]


def test_arm64_host_runs_arm64_and_armhf_only_with_aarch32(test_binaries: Path) -> None:
    arm64 = test_binaries / "busybox-static-arm64" / "bin" / "busybox"
    armhf = test_binaries / "busybox-static-armhf" / "bin" / "busybox"
    assert triage(arm64, host=HostProfile.parse("arm64")).runs == "native"
    assert triage(armhf, host=HostProfile.parse("aarch64")).runs == "none"
    assert triage(armhf, host=HostProfile.parse("aarch64,arm")).runs == "compat"
    native_x86 = triage(Path(shutil.which("true") or "/bin/true"), host=HostProfile.parse("aarch64"))
    assert native_x86.runs == "none" and native_x86.findings[0].check == "foreign_arch"


def test_old_abi_arm_is_refused_by_arm64_compat(test_binaries: Path) -> None:
    data = bytearray((test_binaries / "busybox-static-armhf" / "bin" / "busybox").read_bytes())
    flags = struct.unpack_from("<I", data, 36)[0]
    struct.pack_into("<I", data, 36, flags & 0x00FFFFFF)
    report = triage(bytes(data), host=HostProfile.parse("aarch64,arm"))
    assert report.runs == "none"
    assert "old-ABI (OABI)" in report.findings[0].detail


def test_unknown_host_arch_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        HostProfile.parse("vax11")


def _escape(data: bytes) -> str:
    return "".join(f"\\x{b:02x}" for b in data)


@contextlib.contextmanager
def _binfmt_handler(name: str, magic: bytes, mask: bytes) -> Iterator[None]:
    """Register a binfmt_misc handler for the test only (mounting binfmt_misc if needed), then remove it."""
    mounted_here = False
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True)
        mounted_here = True
    try:
        (BINFMT / "register").write_text(f":{name}:M:0:{_escape(magic)}:{_escape(mask)}:/bin/false:")
        try:
            yield
        finally:
            (BINFMT / name).write_text("-1")
    finally:
        if mounted_here:
            subprocess.run(["umount", str(BINFMT)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="registering a binfmt_misc handler needs root")
def test_foreign_binary_with_binfmt_handler_runs_only_under_emulation(test_binaries: Path, tmp_path: Path) -> None:
    # Mark a copy of the arm64 busybox in e_ident's padding so that the handler matches this file only and
    # nothing else on the (shared) machine is affected while it is registered.
    data = bytearray((test_binaries / "busybox-static-arm64" / "bin" / "busybox").read_bytes())
    data[9:16] = b"BDTEST!"
    target = tmp_path / "busybox-arm64"
    target.write_bytes(bytes(data))
    name = f"bindrift-test-{os.getpid()}"
    with _binfmt_handler(name, bytes(data[:20]), b"\xff" * 16 + b"\xfe\xff\xff\xff"):
        host = HostProfile.detect()
        report = triage(target, host=host)
    assert report.runs == "emulation"
    finding = next(f for f in report.findings if f.check == "foreign_arch")
    assert f"binfmt_misc handler {name!r} (/bin/false)" in finding.detail
    assert finding.evidence["emulator"] == "/bin/false"
    assert triage(target, host=HostProfile.detect()).runs == "none", "handler removed after the test"
