"""The compiled ELF reader (analysis/elf/_native.c) against an independent `struct` reading of the same bytes,
on real files of every layout and on hostile headers: lying counts, offsets past the end, sums that overflow
64 bits. No input raises, every read is bounded, and every row read is the row the file holds."""

from __future__ import annotations

import shutil
import struct
from itertools import pairwise, product
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.analysis.counting_source import CountingSource

from bindrift.analysis.elf import _native
from bindrift.analysis.elf.header_checks import MESSAGES, header_checks
from bindrift.analysis.elf.reader import HEAD_SIZE, ElfImage, parse_elf
from bindrift.analysis.packing.upx import FORMAT_VERSIONS
from bindrift.analysis.source import BufferSource

TRUE = Path(shutil.which("true") or "/bin/true").read_bytes()
U64 = 2**64 - 1
# (bits, little) → e_ident class / data bytes, and the header, program and section header layouts.
EHDR = {32: "HHIIIIIHHHHHH", 64: "HHIQQQIHHHHHH"}
PHDR = {32: "IIIIIIII", 64: "IIQQQQQQ"}
SHDR = {32: "IIIIIIIIII", 64: "IIQQQQIIQQ"}


def _expected(data: bytes) -> tuple[tuple[int, ...], list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Header fields, program headers (Elf64 field order) and section headers of a well-formed file."""
    bits = 64 if data[4] == 2 else 32
    order = "<" if data[5] == 1 else ">"
    header = struct.unpack_from(order + EHDR[bits], data, 16)
    _type, _machine, _version, _entry, phoff, shoff, _flags, _eh, phentsize, phnum, shentsize, shnum, _ = header
    phdrs = [struct.unpack_from(order + PHDR[bits], data, phoff + i * phentsize) for i in range(phnum)]
    if bits == 32:  # Elf32_Phdr: type, offset, vaddr, paddr, filesz, memsz, flags, align
        phdrs = [(p[0], p[6], p[1], p[2], p[3], p[4], p[5], p[7]) for p in phdrs]
    shdrs = [struct.unpack_from(order + SHDR[bits], data, shoff + i * shentsize) for i in range(shnum)] if shoff else []
    return header, phdrs, shdrs


def _real_files(test_binaries: Path) -> dict[tuple[int, int], bytes]:
    """One real executable per (EI_CLASS, EI_DATA) found among the test binaries, /bin/true included."""
    found = {(TRUE[4], TRUE[5]): TRUE}
    for path in sorted(test_binaries.rglob("*")):
        if path.is_file() and not path.is_symlink():
            head = path.read_bytes()[:6]
            if head[:4] == b"\x7fELF" and (head[4], head[5]) not in found:
                found[(head[4], head[5])] = path.read_bytes()
    return found


def test_real_files_of_every_layout_read_as_struct_reads_them(test_binaries: Path) -> None:
    files = _real_files(test_binaries)
    assert {(1, 1), (2, 1), (2, 2)} <= files.keys(), "i386 / arm, amd64 and s390x binaries are fetched"
    for data in files.values():
        elf = parse_elf(BufferSource(data))
        assert elf is not None
        header, phdrs, shdrs = _expected(data)
        fields = (elf.type, elf.machine, elf.version, elf.entry, elf.phoff, elf.shoff, elf.flags, elf.ehsize,
                  elf.phentsize, elf.phnum, elf.shentsize, elf.shnum, elf.shstrndx)  # fmt: skip
        assert fields == header
        assert (elf.bits, elf.little, elf.layout_inferred) == (64 if data[4] == 2 else 32, data[5] == 1, False)
        assert [tuple(p) for p in elf.phdrs] == phdrs
        assert [tuple(s) for s in elf.shdrs] == shdrs
        assert (elf.problems, elf.phnum_eff, elf.shnum_eff) == ([], len(phdrs), len(shdrs))
        assert not [condition for condition in elf.header_hits(True) if condition.startswith("section_")]


def _header(data: bytearray, **values: int) -> bytes:
    offsets = {"phoff": (32, "Q"), "shoff": (40, "Q"), "phentsize": (54, "H"), "phnum": (56, "H"),
               "shentsize": (58, "H"), "shnum": (60, "H"), "shstrndx": (62, "H")}  # fmt: skip
    for name, value in values.items():
        offset, fmt = offsets[name]
        struct.pack_into("<" + fmt, data, offset, value)
    return bytes(data)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"shoff": U64 - 10}, "sht-beyond-eof"),  # e_shoff + e_shnum × 64 overflows 64 bits
        ({"shoff": 2**63, "shnum": 0xFFFF}, "sht-beyond-eof"),
        ({"shentsize": 63}, "sht-bad-entsize"),
        ({"phentsize": 57}, "pht-bad-entsize"),
        ({"phoff": U64}, "pht-beyond-eof"),
        ({"phoff": len(TRUE) - 100}, "pht-truncated"),  # 13 headers claimed, under two left in the file
    ],
)
def test_lying_header_fields_are_problems_not_reads(values: dict[str, int], problem: str) -> None:
    src = CountingSource(_header(bytearray(TRUE), **values))
    elf = parse_elf(src)
    assert elf is not None
    assert problem in elf.problems
    assert src.requested <= HEAD_SIZE + len(TRUE)


def test_extended_counts_from_section_zero_are_bounded() -> None:
    data = bytearray(TRUE)
    (shoff,) = struct.unpack_from("<Q", data, 40)
    struct.pack_into("<Q", data, shoff + 32, U64)  # section 0's sh_size: the extended section count
    struct.pack_into("<I", data, shoff + 44, 0x7FFFFFFF)  # section 0's sh_info: the extended program header count
    src = CountingSource(_header(data, shnum=0, phnum=0xFFFF))
    elf = parse_elf(src)
    assert elf is not None
    assert elf.shnum_eff == U64 and "sht-beyond-eof" in elf.problems and len(elf.shdrs) == 0
    assert elf.phnum_eff == 0xFFFF, "no section table read: the escape is kept as written"


def test_section_count_and_program_table_are_capped() -> None:
    """2^16 - 1 program headers asked for: at most 64 KiB of them are read."""
    filler = bytes(64) + bytes(0xFFFF * 56)
    data = bytearray(TRUE[:64]) + filler
    src = CountingSource(_header(data, phoff=64, phnum=0xFFFF, shoff=0, shnum=0))
    elf = parse_elf(src)
    assert elf is not None
    assert len(elf.phdrs) == _native.MAX_PHT_BYTES // 56
    assert "pht-truncated" in elf.problems
    assert src.requested <= HEAD_SIZE + _native.MAX_PHT_BYTES


def test_read_slices_what_was_read_and_asks_the_source_for_the_rest() -> None:
    src = CountingSource(TRUE)
    elf = parse_elf(src)
    assert elf is not None and elf.tail, "/bin/true's section table ends the file: read with the tail"
    asked = src.requested
    assert elf.read(0, 64) == TRUE[:64]
    assert elf.read(elf.tail_offset, 10) == TRUE[elf.tail_offset : elf.tail_offset + 10]
    assert src.requested == asked, "head and tail are sliced, not read again"
    middle = len(TRUE) // 2
    assert elf.read(middle, 16) == TRUE[middle : middle + 16]
    assert elf.read(U64, 16) == b"" and elf.read(2**70, 1) == b"" and elf.read(-5, 4) == b""
    assert src.requested > asked


def test_section_queries() -> None:
    elf = parse_elf(BufferSource(TRUE))
    assert elf is not None
    count, inside = elf.shdrs.code_sections(elf.entry, True)
    assert count >= 1 and inside
    assert elf.shdrs.code_sections(0, True) == (count, False)
    text = next(s for s in elf.shdrs if s.flags & 0x4)
    assert elf.shdrs.sized_at(text.addr) and not elf.shdrs.sized_at(U64)
    assert elf.shdrs.has_type(6) and not elf.shdrs.has_type(0x12345)
    assert not elf.shdrs.nobits_cover(elf.entry)
    bss = next(s for s in elf.shdrs if s.type == 8)
    assert elf.shdrs.nobits_cover(bss.addr)
    with pytest.raises(IndexError):
        elf.shdrs[len(elf.shdrs)]


FIELDS = [(4, "B"), (5, "B"), (6, "B"), (7, "B"), (16, "H"), (18, "H"), (20, "I"), (24, "Q"), (32, "Q"), (40, "Q"),
          (52, "H"), (54, "H"), (56, "H"), (58, "H"), (60, "H"), (62, "H")]  # fmt: skip
EXTREMES = st.sampled_from([0, 1, 2, 0x38, 0x40, 0xFFFF, 0xFFFFFFFF, U64, U64 - 63, 2**63])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(FIELDS), EXTREMES | st.integers(0, 256) | st.integers(0, U64)), max_size=5),
    st.one_of(st.none(), st.integers(4, len(TRUE))),
    st.lists(st.tuples(st.integers(64, len(TRUE) - 1), st.binary(min_size=1, max_size=32)), max_size=3),
    st.booleans(),
)
@example([((7, "B"), 3)], None, [], True)  # ELFOSABI_GNU
@example([((7, "B"), 9)], None, [], True)  # FreeBSD
@example([((7, "B"), 97), ((18, "H"), 40)], None, [], False)  # legacy ARM
@example([((7, "B"), 97)], None, [], False)
def test_mutated_headers_and_tables_read_exactly_what_is_there(
    mutations: list[tuple[tuple[int, str], int]], cut: int | None, junk: list[tuple[int, bytes]], executable: bool
) -> None:
    data = bytearray(TRUE)
    for (offset, fmt), value in mutations:
        struct.pack_into("<" + fmt, data, offset, value & ((1 << (8 * struct.calcsize(fmt))) - 1))
    for offset, chunk in junk:
        data[offset : offset + len(chunk)] = chunk
    data = data[:cut] if cut else data
    src = CountingSource(bytes(data))
    elf = parse_elf(src)
    assert elf is not None
    # Bounded: the head, the program header cap, and the section table with at most TAIL_SLACK after it.
    assert src.requested <= HEAD_SIZE + _native.MAX_PHT_BYTES + 2 * (len(data) + _native.TAIL_SLACK)
    entsize = 56 if elf.bits == 64 else 32
    assert len(elf.phdrs) * entsize <= _native.MAX_PHT_BYTES and len(elf.shdrs) <= _native.MAX_SECTIONS
    order = "<" if elf.little else ">"
    for i, phdr in enumerate(elf.phdrs):  # each row is the bytes at e_phoff + i × entsize, as written
        row = struct.unpack_from(order + PHDR[elf.bits], data, elf.phoff + i * entsize)
        assert tuple(phdr) == (row if elf.bits == 64 else (row[0], row[6], *row[1:6], row[7]))
    for i, shdr in enumerate(elf.shdrs):
        assert tuple(shdr) == struct.unpack_from(order + SHDR[elf.bits], data, elf.shoff + i * elf.shentsize)
    hits = elf.header_hits(executable)
    assert set(hits) <= {*MESSAGES, "interpreter"}
    assert {c: v for c, v in hits.items() if c in FIELD_CONDITIONS} == _expected_field_hits(elf, executable)
    first_sections = []
    for condition, (count, *listed) in ((c, v) for c, v in hits.items() if c.startswith("section_")):
        assert count >= len(listed) >= 1 and len(listed) == min(count, 3)
        assert listed == sorted(set(listed)) and all(0 < i < len(elf.shdrs) for i in listed), condition
        first_sections.append(listed[0])
    assert first_sections == sorted(first_sections)  # kinds listed as a walk of the table meets them


FIELD_CONDITIONS = {
    "bad_ident", "ident_contradicts_header", "bad_ehsize", "bad_phentsize", "pht_beyond_eof", "no_program_headers",
    "pht_overlaps_ehdr", "sht_beyond_eof", "shoff_without_shnum", "bad_shentsize", "shstrndx_undef",
    "shstrndx_out_of_range", "shstrndx_not_strtab", "no_section_table", "unknown_type", "odd_type_executable",
    "osabi_not_linux",
}  # fmt: skip


def _expected_field_hits(elf: ElfImage, executable: bool) -> dict[str, tuple[()]]:
    """The file-header rules of docs/elf-checks.md (B1–B9, B17, A3) over Python integers, which do not
    overflow: the oracle the compiled conditions are held to."""
    hits: list[str] = []
    runnable = elf.type in (2, 3)
    if elf.ei_class not in (1, 2) or elf.ei_data not in (1, 2) or elf.ei_version != 1 or elf.version != 1:
        hits.append("bad_ident")
    elif elf.layout_inferred:
        hits.append("ident_contradicts_header")
    header = 64 if elf.bits == 64 else 52
    if elf.ehsize != header:
        hits.append("bad_ehsize")
    if elf.phnum_eff and elf.phentsize != (56 if elf.bits == 64 else 32):
        hits.append("bad_phentsize")
    if elf.phnum_eff and elf.phoff + elf.phnum_eff * elf.phentsize > elf.size:
        hits.append("pht_beyond_eof")
    if runnable and elf.phnum_eff == 0:
        hits.append("no_program_headers")
    if 0 < elf.phoff < header and elf.phnum_eff:
        hits.append("pht_overlaps_ehdr")
    if elf.shoff and elf.shnum_eff:
        if elf.shoff + elf.shnum_eff * elf.shentsize > elf.size or elf.shoff >= elf.size:
            hits.append("sht_beyond_eof")
    elif elf.shoff and elf.shnum == 0 and elf.shnum_eff == 0:
        hits.append("shoff_without_shnum")
    if elf.shnum_eff and elf.shentsize != (64 if elf.bits == 64 else 40):
        hits.append("bad_shentsize")
    if elf.shnum_eff and not (elf.shstrndx == 0xFFFF and not elf.shdrs):
        index = elf.shstrndx_eff
        if index == 0:
            hits.append("shstrndx_undef")
        elif index >= elf.shnum_eff:
            hits.append("shstrndx_out_of_range")
        elif index < len(elf.shdrs) and elf.shdrs[index].type != 3:
            hits.append("shstrndx_not_strtab")
    if runnable and elf.shoff == 0 and elf.shnum == 0:
        hits.append("no_section_table")
    if not (elf.type in (0, 1, 2, 3, 4) or elf.type >= 0xFE00):
        hits.append("unknown_type")
    elif executable and not runnable:
        hits.append("odd_type_executable")
    if runnable and elf.osabi not in (0, 3) and not (elf.machine == 40 and elf.osabi == 97):
        hits.append("osabi_not_linux")
    return dict.fromkeys(hits, ())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_after_the_magic(tail: bytes) -> None:
    src = CountingSource(b"\x7fELF" + tail)
    elf = parse_elf(src)
    assert elf is not None
    assert elf.bits in (32, 64)
    assert set(elf.header_hits(True)) <= {*MESSAGES, "interpreter"}
    interpreters, _dynamic = elf.linkage()
    assert len(interpreters) <= 3 and all(len(path) <= 4096 and b"\0" not in path for path in interpreters)
    elf.packer_probe()
    parse = HEAD_SIZE + _native.MAX_PHT_BYTES + 2 * (len(tail) + 4 + _native.TAIL_SLACK)
    linkage, packer = 3 * 4096 + 64 * 1024, 24 + 64  # three interpreters, the dynamic section; l_info, the tail
    assert src.requested <= parse + linkage + packer
    assert parse_elf(BufferSource(b"\x7fELX" + tail)) is None


def _expected_segment_hits(elf_type: int, entry: int, size: int, phdrs: list[tuple[int, ...]]) -> dict[str, tuple]:
    """The program-header rules of docs/elf-checks.md (B10, B11, B13, B14) over Python integers, which do not
    overflow: the oracle the compiled checks are held to. No section table (the file has none)."""
    hits: dict[str, tuple] = {}
    loads = [p for p in phdrs if p[0] == 1]
    runnable = elf_type in (2, 3)
    if elf_type != 4:
        beyond = [i for i, p in enumerate(loads) if p[5] and p[2] + p[5] > size]
        if beyond:
            hits["load_beyond_eof"] = (beyond[0], len(beyond))
        rwx = [i for i, p in enumerate(loads) if p[1] & 7 == 7]
        if rwx:
            hits["rwx_segment"] = (rwx[0], len(rwx))
        misaligned = [i for i, p in enumerate(loads) if p[7] > 1 and p[7] & (p[7] - 1) == 0 and (p[3] - p[2]) % p[7]]
        if misaligned:
            hits["segment_misaligned"] = (misaligned[0],)
        ranges = sorted((p[3], p[3] + p[6], i) for i, p in enumerate(loads) if p[6])
        overlaps = [(a[2], b[2]) for a, b in pairwise(ranges) if b[0] < a[1]]
        if overlaps:
            hits["segments_overlap"] = overlaps[0]
        bigger = [i for i, p in enumerate(loads) if p[5] > p[6]]
        if bigger:
            hits["segment_filesz_exceeds_memsz"] = (bigger[0],)
        others = [i for i, p in enumerate(phdrs) if p[0] != 1 and p[5] and p[2] + p[5] > size]
        if others:
            hits["segment_beyond_eof"] = (others[0],)
        pt_phdr = [i for i, p in enumerate(phdrs) if p[0] == 6]
        if pt_phdr and runnable and loads:
            ph = phdrs[pt_phdr[0]]
            if not any(ld[3] <= ph[3] and ph[3] + ph[5] <= ld[3] + ld[5] for ld in loads):
                hits["phdr_not_loaded"] = (pt_phdr[0],)
        dynamics = [i for i, p in enumerate(phdrs) if p[0] == 2]
        if len(dynamics) > 1:
            hits["multiple_dynamic_segments"] = (len(dynamics),)
    if runnable and entry and loads:
        covering = [i for i, p in enumerate(loads) if p[3] <= entry < p[3] + p[6]]
        if not covering:
            hits["entry_outside_segments"] = ()
        elif not any(loads[i][1] & 1 for i in covering):
            hits["entry_not_executable"] = (covering[0],)
    return hits


VALUES = st.sampled_from([0, 1, 0x1000, 0x400000, 2**32 - 1, 2**63, U64 - 0xFFF, U64]) | st.integers(0, U64)
PHDRS = st.lists(
    st.tuples(st.sampled_from([1, 1, 1, 2, 3, 6, 0x6474E551]), st.integers(0, 7), VALUES, VALUES, VALUES, VALUES,
              VALUES, st.sampled_from([0, 1, 2, 0x1000, 0x200000, 3, 2**63])),
    min_size=1, max_size=8,
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(PHDRS, st.sampled_from([2, 3, 4, 1]), VALUES)
def test_segment_checks_follow_integer_arithmetic(phdrs: list[tuple[int, ...]], elf_type: int, entry: int) -> None:
    """Sums past 2^64 (p_vaddr + p_memsz, p_offset + p_filesz) count as past every address and the end of the
    file, as they would with unbounded integers; nothing wraps around."""
    table = b"".join(struct.pack("<IIQQQQQQ", *p) for p in phdrs)
    data = bytearray(TRUE[:64]) + table
    struct.pack_into("<HHIQQQIHHHHHH", data, 16, elf_type, 62, 1, entry, 64, 0, 0, 64, 56, len(phdrs), 64, 0, 0)
    elf = parse_elf(BufferSource(bytes(data)))
    assert elf is not None and [tuple(p) for p in elf.phdrs] == phdrs
    segment_hits = {c: v for c, v in elf.header_hits(False).items() if c in SEGMENT_CONDITIONS}
    assert segment_hits == _expected_segment_hits(elf_type, entry, len(data), phdrs)


SEGMENT_CONDITIONS = {
    "load_beyond_eof", "rwx_segment", "segment_misaligned", "segments_overlap", "segment_filesz_exceeds_memsz",
    "segment_beyond_eof", "phdr_not_loaded", "multiple_dynamic_segments", "entry_outside_segments",
    "entry_not_executable",
}  # fmt: skip


def _expected_packer_layout(elf_type: int, entry: int, size: int, phdrs: list[tuple[int, ...]]) -> tuple | None:
    """The stub layout and expanding-code rules of analysis/packing over Python integers (the oracle of
    `packer_probe`): (stub PT_LOAD, expanding PT_LOAD, code bytes present), None when neither they nor a missing
    section table (these files have none) would lead to the deeper look; indices count PT_LOADs."""
    if elf_type not in (2, 3):
        return None
    loads = [p for p in phdrs if p[0] == 1]
    expanding = next((i for i, p in enumerate(loads) if p[1] & 1 and p[6] >= 2 * p[5] and p[6] - p[5] >= 0x10000), None)
    stub = None
    if len(loads) == 2 and not any(p[0] in (2, 3) for p in phdrs):
        code = next((i for i, p in enumerate(loads) if p[1] & 3 == 1), None)
        data = next((i for i, p in enumerate(loads) if p[1] & 3 == 2), None)
        if code is not None and data is not None and loads[code][2] == 0 and loads[data][5] <= 0x1000:
            at = entry - loads[code][3]
            if 2 * loads[code][5] >= size and loads[code][5] // 2 <= at < loads[code][5]:
                stub = code
    return stub, expanding, any(p[1] & 1 and p[5] for p in loads)


@settings(max_examples=500, deadline=None)
@given(PHDRS, st.sampled_from([2, 3, 4, 1]), VALUES)
def test_packer_layout_follows_integer_arithmetic(phdrs: list[tuple[int, ...]], elf_type: int, entry: int) -> None:
    """The stub layout and the expanding segment as unbounded integers decide them (p_memsz ≥ 2 × p_filesz
    near 2^64, an entry below the segment); no section table, so every runnable file gets its probe."""
    _probe_matches_oracle(phdrs, elf_type, entry)


def test_upx_format_versions_are_the_packers() -> None:
    assert set(_native.UPX_FORMAT_VERSIONS) == set(FORMAT_VERSIONS)


def _probe_matches_oracle(phdrs: list[tuple[int, ...]], elf_type: int, entry: int) -> None:
    table = b"".join(struct.pack("<IIQQQQQQ", *p) for p in phdrs)
    data = bytearray(TRUE[:64]) + table
    struct.pack_into("<HHIQQQIHHHHHH", data, 16, elf_type, 62, 1, entry, 64, 0, 0, 64, 56, len(phdrs), 64, 0, 0)
    elf = parse_elf(BufferSource(bytes(data)))
    assert elf is not None
    probe = elf.packer_probe()
    assert (probe if probe is None else probe[2:]) == _expected_packer_layout(elf_type, entry, len(data), phdrs)


def test_stub_layout_at_its_edges() -> None:
    """Every combination of two PT_LOADs at the edges of UPX's stub shape: this 176-byte file needs a code
    segment (read-execute) of ≥ 88 file bytes from offset 0 with the entry in its second half, and a
    writable data segment of at most a page of file bytes; in either order."""
    edges = product([5, 7, 1, 4], [0, 1], [0, 87, 88, 89, 176, 2**63, U64], [0, 0x400000, U64 - 10], [6, 7, 2],
                    [0, 0x1000, 0x1001], [-1, 0, 43, 44, 45, 87, 88, 89, 2**63], [False, True])  # fmt: skip
    for code_flags, code_offset, code_size, vaddr, data_flags, data_size, at, data_first in edges:
        code = (1, code_flags, code_offset, vaddr, vaddr, code_size, code_size, 0x1000)
        data = (1, data_flags, 0x1000, 0x10000, 0x10000, data_size, 0x20000, 0x1000)
        _probe_matches_oracle([data, code] if data_first else [code, data], 2, (vaddr + at) % 2**64)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0, 0x10000, 0x10001, 2**63 - 1, 2**63, U64]), st.sampled_from([-1, 0, 1, 0xFFFF, 0x10000]),
       st.booleans())  # fmt: skip
def test_expanding_segment_at_its_edges(filesz: int, slack: int, double: bool) -> None:
    memsz = min(max((2 * filesz if double else filesz + 0x10000) + slack, 0), U64)
    phdrs = [(1, 5, 0, 0x400000, 0x400000, filesz, memsz, 0x1000)]
    _probe_matches_oracle(phdrs, 3, 0x400000)


def test_many_interpreters_cost_three_reads() -> None:
    """A table of 1,000 PT_INTERP entries, each claiming 4 KiB past the head: counted in full, three read."""
    count, far = 1000, 64 + 1000 * 56 + 8192
    table = b"".join(struct.pack("<IIQQQQQQ", 3, 4, far, 0, 0, 4096, 4096, 1) for _ in range(count))
    data = bytearray(TRUE[:64]) + table + bytes(8192) + b"/lib/ld.so\0".ljust(4096, b"x")
    struct.pack_into("<HHIQQQIHHHHHH", data, 16, 3, 62, 1, 0, 64, 0, 0, 64, 56, count, 64, 0, 0)
    src = CountingSource(bytes(data))
    elf = parse_elf(src)
    assert elf is not None and len(elf.phdrs) == count
    before = src.requested
    assert elf.linkage()[0] == [b"/lib/ld.so"] * 3
    assert src.requested - before == 3 * 4096
    (multiple,) = [f for f in header_checks(elf, ["/lib/ld.so"] * 3) if f.check == "multiple_interpreters"]
    assert multiple.evidence["count"] == count
