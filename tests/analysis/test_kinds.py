"""Kind-aware checks on real local builds: separate debug files, kernel images and modules, freestanding
images are reported as their kind with user-space checks capped; ordinary and hostile programs are not."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.triage import triage
from bindrift.schema.severity import at_least
from bindrift.schema.triage import TriageReport

HOST = HostProfile.parse("x86_64")
START = 'void _start(void) { for (;;) __asm__ volatile(""); }\n'
# A kernel-shaped link: code at a high virtual address, loaded at a physical one, entered physically.
KERNEL_SCRIPT = """
ENTRY(phys_start)
phys_start = _start - 0xffffffff80000000;
SECTIONS {
  . = 0xffffffff81000000;
  .text : AT(0x1000000) { *(.text*) }
  .init.text : { *(.init.text) }
  __ksymtab : { *(__ksymtab) }
}
"""


def _gcc(tmp_path: Path, name: str, source: str, *flags: str) -> Path:
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    out = tmp_path / name
    subprocess.run(["gcc", "-O1", "-fno-pic", *flags, "-o", str(out), str(src)], check=True, capture_output=True,
                   timeout=60)  # fmt: skip
    return out


def _worst(report: TriageReport) -> list[tuple[str, str]]:
    return [(f.check, f.severity) for f in report.findings if at_least(f.severity, "medium")]


def test_separate_debug_file_is_capped(tmp_path: Path) -> None:
    debug = tmp_path / "bash.debug"
    subprocess.run(["objcopy", "--only-keep-debug", "/usr/bin/bash", str(debug)], check=True, timeout=60)
    report = triage(debug, host=HOST)
    assert report.kind == "separate-debug" and "no file bytes" in (report.kind_reason or "")
    assert _worst(report) == []
    capped = next(f for f in report.findings if f.check == "packed_generic")
    assert capped.severity == "info" and capped.evidence["capped_from"] == "medium"
    assert triage("/usr/bin/bash", host=HOST).kind == "program"


def test_kernel_image_entry_is_physical(tmp_path: Path) -> None:
    script = tmp_path / "kernel.lds"
    script.write_text(KERNEL_SCRIPT)
    source = START + '__attribute__((section(".init.text"))) void early(void) {}\n'
    vmlinux = _gcc(tmp_path, "vmlinux", source, "-nostdlib", "-static", "-mcmodel=kernel", "-Wl,--build-id=none",
                   f"-Wl,-T,{script}")  # fmt: skip
    report = triage(vmlinux, host=HOST)
    assert report.kind == "kernel-image", report.kind_reason
    assert _worst(report) == []
    entry = next(f for f in report.findings if f.check == "entry_outside_segments")
    assert entry.severity == "info" and "physical address" in entry.detail


def test_kernel_module_is_named(tmp_path: Path) -> None:
    source = (
        'const char license[] __attribute__((section(".modinfo"))) = "license=GPL";\n'
        "int init_module(void) { return 0; }\n"
    )
    module = _gcc(tmp_path, "mod.ko", source, "-c")
    report = triage(module, host=HOST)
    assert (report.kind, _worst(report)) == ("kernel-module", [])
    assert triage(_gcc(tmp_path, "plain.o", "int f(void) { return 1; }\n", "-c"), host=HOST).kind == "program"


@pytest.mark.parametrize("flags", [["-Wl,-Ttext-segment=0x8000"], ["-Wl,--omagic"]], ids=["low-address", "rwx-image"])
def test_freestanding_image_is_capped_at_low(tmp_path: Path, flags: list[str]) -> None:
    image = _gcc(tmp_path, "boot.elf", START, "-nostdlib", "-static", "-Wl,--build-id=none", "-Wl,--omagic", *flags)
    report = triage(image, host=HOST)
    assert report.kind == "freestanding", report
    assert _worst(report) == []
    rwx = next(f for f in report.findings if f.check == "rwx_segment")
    assert rwx.severity == "low" and rwx.evidence["capped_from"] in ("medium", "high")


def test_hand_made_rwx_program_is_not_capped() -> None:
    """A shellcode-style ELF (one RWX PT_LOAD, no sections) stays a program: its RWX segment is high."""
    code = b"\xeb\xfe"
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 62, 1, 0x400078, 64, 0, 0, 64, 56,
                       1, 0, 0, 0)  # fmt: skip
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 0, 0x400000, 0x400000, 0x7A, 0x7A, 0x1000)
    report = triage(ehdr + phdr + code, host=HOST)
    assert report.kind == "program"
    assert ("rwx_segment", "high") in _worst(report)


def test_static_user_space_stays_a_program(test_binaries: Path) -> None:
    for name in ("busybox-static-amd64", "busybox-static-armhf"):
        report = triage(test_binaries / name / "bin" / "busybox", host=HOST)
        assert (report.kind, report.kind_reason) == ("program", None)
