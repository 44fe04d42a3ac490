"""Header-anomaly checks on real binaries mutated the way malware mutates them (docs/elf-checks.md §2, §6)."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.elf.reader import parse_elf
from bindrift.analysis.source import BufferSource
from bindrift.analysis.triage import triage
from bindrift.schema.severity import at_least
from bindrift.schema.triage import TriageReport

HOST = HostProfile.parse("x86_64")
TRUE = Path(shutil.which("true") or "/bin/true").resolve()


def _u16(data: bytearray, offset: int, value: int) -> None:
    struct.pack_into("<H", data, offset, value)


def _u32(data: bytearray, offset: int, value: int) -> None:
    struct.pack_into("<I", data, offset, value)


def _u64(data: bytearray, offset: int, value: int) -> None:
    struct.pack_into("<Q", data, offset, value)


def _phdr_offset(data: bytes, p_type: int) -> int:
    (phoff,) = struct.unpack_from("<Q", data, 32)
    (phnum,) = struct.unpack_from("<H", data, 56)
    for i in range(phnum):
        at = phoff + i * 56
        if struct.unpack_from("<I", data, at)[0] == p_type:
            return at
    raise AssertionError(f"no program header of type {p_type}")


def _set_interp(data: bytearray, path: bytes) -> None:
    at = _phdr_offset(data, 3)
    (offset,) = struct.unpack_from("<Q", data, at + 8)
    (filesz,) = struct.unpack_from("<Q", data, at + 32)
    assert len(path) < filesz
    data[offset : offset + filesz] = path.ljust(filesz, b"\0")


def _make_rwx(data: bytearray) -> None:
    at = _phdr_offset(data, 1)
    _u32(data, at + 4, 7)


def _zero_sht(data: bytearray) -> None:
    _u64(data, 40, 0)
    _u16(data, 58, 0)
    _u16(data, 60, 0)
    _u16(data, 62, 0)


Mutation = Callable[[bytearray], None]
MUTATIONS: dict[str, tuple[Mutation, str, str, str]] = {
    # name: (mutation, check, severity, text the detail must contain)
    "shoff_past_eof": (lambda d: _u64(d, 40, len(d) + 0x1000), "sht_beyond_eof", "high", "past the file size"),
    "shnum_ffff": (lambda d: _u16(d, 60, 0xFFFF), "sht_beyond_eof", "high", "e_shnum=65535"),
    "shstrndx_7777": (lambda d: _u16(d, 62, 0x7777), "bad_shstrndx", "high", "e_shstrndx=30583"),
    "shstrndx_not_strtab": (lambda d: _u16(d, 62, 1), "bad_shstrndx", "high", "not SHT_STRTAB"),
    "shentsize_zero": (lambda d: _u16(d, 58, 0), "bad_shentsize", "medium", "e_shentsize=0"),
    "ehsize_zero": (lambda d: _u16(d, 52, 0), "bad_ehsize", "medium", "e_ehsize=0"),
    "ei_version_zero": (lambda d: d.__setitem__(6, 0), "bad_ident", "high", "EI_VERSION=0"),
    "e_version_zero": (lambda d: _u32(d, 20, 0), "bad_ident", "high", "e_version=0"),
    "ei_class_zero": (lambda d: d.__setitem__(4, 0), "bad_ident", "high", "EI_CLASS=0"),
    "ei_data_zero": (lambda d: d.__setitem__(5, 0), "bad_ident", "high", "EI_DATA=0"),
    "ei_data_lies": (lambda d: d.__setitem__(5, 2), "ident_contradicts_header", "high", "ELF64 little-endian"),
    "ei_class_lies": (lambda d: d.__setitem__(4, 1), "ident_contradicts_header", "high", "ELF64 little-endian"),
    "osabi_freebsd": (lambda d: d.__setitem__(7, 9), "osabi_not_linux", "medium", "EI_OSABI=9 (freebsd)"),
    "phoff_in_header": (lambda d: _u64(d, 32, 40), "pht_overlaps_ehdr", "high", "e_phoff=40"),
    "entry_outside": (lambda d: _u64(d, 24, 0xDEADBEEF000), "entry_outside_segments", "high", "0xdeadbeef000"),
    "interp_unusual": (lambda d: _set_interp(d, b"/tmp/.x/ld.so"), "unusual_interpreter", "medium", "/tmp/.x/ld.so"),
    "rwx_load": (_make_rwx, "rwx_segment", "medium", "read-write-execute"),
    "phentsize_changed": (lambda d: _u16(d, 54, 48), "bad_phentsize", "medium", "e_phentsize=48"),
    "truncated": (lambda d: d.__delitem__(slice(8192, None)), "load_beyond_eof", "medium", "beyond the file size"),
}


def _report(data: bytes | bytearray) -> TriageReport:
    report = triage(bytes(data), host=HOST, label="mutated")
    assert report.error is None
    return report


@pytest.fixture(scope="module")
def true_bytes() -> bytes:
    data = TRUE.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "tests expect an x86-64 /bin/true"
    return data


def test_unmodified_binary_is_clean(true_bytes: bytes) -> None:
    report = _report(true_bytes)
    assert (report.arch, report.bits, report.endian, report.type) == ("x86_64", 64, "little", "dyn")
    assert report.linking == "dynamic" and report.runs == "native"
    assert report.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert [f.check for f in report.findings if at_least(f.severity, "low")] == []


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_is_named_with_its_field_values(true_bytes: bytes, name: str) -> None:
    mutate, check, severity, text = MUTATIONS[name]
    data = bytearray(true_bytes)
    mutate(data)
    report = _report(data)
    fired = {f.check: f for f in report.findings}
    assert check in fired, f"{name}: expected {check}, got {sorted(fired)}"
    finding = fired[check]
    assert finding.category == "header-anomaly"
    assert finding.severity == severity
    assert text in finding.detail, finding.detail
    assert finding.ref.startswith(("A", "B"))
    # The machine is still recognised, however the header lies.
    assert report.arch == "x86_64"


def test_zeroed_section_table_is_only_informational(true_bytes: bytes) -> None:
    data = bytearray(true_bytes)
    _zero_sht(data)
    report = _report(data)
    assert [(f.check, f.severity) for f in report.findings if f.category == "header-anomaly"] == [
        ("no_section_table", "info")
    ]


def test_reader_keeps_raw_values_of_lying_header(true_bytes: bytes) -> None:
    data = bytearray(true_bytes)
    _u16(data, 60, 0xFFFF)
    _u64(data, 40, 0xFFFFFFFFFFFFFFFF)
    elf = parse_elf(BufferSource(bytes(data)))
    assert elf is not None
    assert (elf.shnum, elf.shoff) == (0xFFFF, 0xFFFFFFFFFFFFFFFF)
    assert len(elf.shdrs) == 0
    assert "sht-beyond-eof" in elf.problems
    assert elf.phdrs, "program headers are still read"


def test_static_busybox_is_clean(test_binaries: Path) -> None:
    report = triage(test_binaries / "busybox-static-amd64" / "bin" / "busybox", host=HOST)
    assert (report.arch, report.linking, report.type, report.interpreter) == ("x86_64", "static", "exec", None)
    assert [f for f in report.findings if at_least(f.severity, "low")] == []


def test_separate_debug_file_is_not_an_anomaly() -> None:
    debug_files = sorted(Path("/usr/lib/debug/.build-id").glob("*/*.debug"))[:20]
    if not debug_files:
        pytest.skip("no separate debug files installed")
    for path in debug_files:
        report = triage(path, host=HOST, compute_hash=False)
        assert [
            f.check for f in report.findings if f.category == "header-anomaly" and at_least(f.severity, "medium")
        ] == []


def _section_offset(data: bytes, index: int) -> int:
    (shoff,) = struct.unpack_from("<Q", data, 40)
    return shoff + index * 64


def _first_section_of_type(data: bytes, sh_type: int) -> int:
    (shnum,) = struct.unpack_from("<H", data, 60)
    for i in range(1, shnum):
        if struct.unpack_from("<I", data, _section_offset(data, i) + 4)[0] == sh_type:
            return i
    raise AssertionError(f"no section of type {sh_type}")


TABLE_MUTATIONS: dict[str, tuple[Mutation, str, str]] = {
    # name: (mutation, check, text the detail must contain)
    "link_out_of_range": (
        lambda d: _u32(d, _section_offset(d, _first_section_of_type(d, 11)) + 40, 0x4242),
        "section_link_out_of_range", "sh_link=16962",
    ),
    "dynsym_links_non_strtab": (
        lambda d: _u32(d, _section_offset(d, _first_section_of_type(d, 11)) + 40, _first_section_of_type(d, 11)),
        "section_link_wrong_type", "links #",
    ),
    "bad_dynsym_entsize": (
        lambda d: _u64(d, _section_offset(d, _first_section_of_type(d, 11)) + 56, 20),
        "section_bad_entsize", "sh_entsize=20",
    ),
    "rela_info_out_of_range": (
        lambda d: _u32(d, _section_offset(d, _first_section_of_type(d, 4)) + 44, 999),
        "section_info_out_of_range", "sh_info=999",
    ),
    "progbits_with_info": (
        lambda d: _u32(d, _section_offset(d, _first_section_of_type(d, 1)) + 44, 7),
        "section_unexpected_info", "sh_info=7",
    ),
    "filesz_over_memsz": (
        lambda d: _u64(d, _phdr_offset(d, 1) + 40, 1), "segment_filesz_exceeds_memsz", "p_memsz=0x1",
    ),
    "dynamic_past_eof": (
        lambda d: _u64(d, _phdr_offset(d, 2) + 8, len(d) + 64), "segment_beyond_eof", "p_type=0x2",
    ),
    "phdr_not_loaded": (lambda d: _u64(d, _phdr_offset(d, 6) + 16, 0x7FFF0000), "phdr_not_loaded", "0x7fff0000"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TABLE_MUTATIONS))
def test_table_inconsistency_is_reported_low(true_bytes: bytes, name: str) -> None:
    mutate, check, text = TABLE_MUTATIONS[name]
    data = bytearray(true_bytes)
    mutate(data)
    fired = {f.check: f for f in _report(data).findings}
    assert check in fired, f"{name}: expected {check}, got {sorted(fired)}"
    assert fired[check].severity == "low"
    assert text in fired[check].detail, fired[check].detail
