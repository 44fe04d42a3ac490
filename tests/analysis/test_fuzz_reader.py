"""Fuzzing the reader and triage: any input is a verdict — no exception, no hang, bounded reads."""

from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.analysis.counting_source import CountingSource

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.triage import triage, triage_source

HOST = HostProfile.parse("x86_64")
SEED = Path(shutil.which("true") or "/bin/true").read_bytes()
HEADER_FIELDS = [(4, "B"), (5, "B"), (6, "B"), (16, "H"), (18, "H"), (20, "I"), (24, "Q"), (32, "Q"), (40, "Q"),
                 (52, "H"), (54, "H"), (56, "H"), (58, "H"), (60, "H"), (62, "H")]  # fmt: skip
EXTREMES = st.sampled_from([0, 1, 2, 0x7F, 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 0x40, 0x38, 0x1000])


def _check(data: bytes) -> None:
    src = CountingSource(data)
    start = time.perf_counter()
    report = triage_source(src, path="fuzz", host=HOST)
    assert report.error is None, report.error
    assert time.perf_counter() - start < 2.0
    # Reads are bounded by the table caps, never by sizes the header claims (e.g. 2^64 sections).
    assert src.requested < 64 * 2**20
    for finding in report.findings:
        assert finding.detail and finding.check


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(HEADER_FIELDS), EXTREMES | st.integers(0, 2**64 - 1)), max_size=6),
       st.one_of(st.none(), st.integers(16, len(SEED))))  # fmt: skip
def test_header_field_mutations(mutations: list[tuple[tuple[int, str], int]], cut: int | None) -> None:
    data = bytearray(SEED)
    for (offset, fmt), value in mutations:
        size = struct.calcsize(fmt)
        struct.pack_into("<" + fmt, data, offset, value & ((1 << (8 * size)) - 1))
    _check(bytes(data[:cut]) if cut else bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_after_magic(tail: bytes) -> None:
    _check(b"\x7fELF" + tail)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 4095), st.binary(min_size=1, max_size=64))
def test_random_overwrites_in_the_tables(offset: int, junk: bytes) -> None:
    data = bytearray(SEED)
    data[64 + offset : 64 + offset + len(junk)] = junk
    _check(bytes(data))


def test_non_elf_and_special_paths(tmp_path: Path) -> None:
    (tmp_path / "text").write_text("hello")
    assert triage(tmp_path / "text").is_elf is False
    assert triage(b"").is_elf is False
    link = tmp_path / "link"
    link.symlink_to(Path(shutil.which("true") or "/bin/true"))
    report = triage(link)
    assert report.error is not None and not report.is_elf, "symlinks are never followed"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    report = triage(fifo)  # must not block waiting for a writer
    assert report.error == "not a regular file"
    assert triage(tmp_path).error is not None
