"""Ring-buffer records decode into events or, malformed, into None — never an exception."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from bindrift.sensors.ebpf.events import ARGV_AT, EXEC, EXEC_TAIL, HEADER, ExecEvent, argv_of, decode


def _exec_record(argv: bytes, argv_len: int, exe: bytes = b"true\0bin\0") -> bytes:
    header = HEADER.pack(EXEC, 0, 7, 1, 100, 0, 1, 1, 50, 0, 200, 1, 1000, 1001, 7, 11, 12, 0, b"true")
    tail = EXEC_TAIL.pack(42, (8 << 20) | 1, argv_len, len(exe), 0)
    return (header + tail + exe.ljust(512, b"\0") + b"".ljust(512, b"\0") + argv)[: ARGV_AT + len(argv)]


def test_an_exec_record_at_its_size() -> None:
    event = decode(_exec_record(b"/bin/true\0a b\0\0", 15))
    assert isinstance(event, ExecEvent)
    assert event.argv == ["/bin/true", "a b", ""] and event.exe == "/bin/true" and event.cwd == "/"
    assert (event.uid, event.gid, event.exe_inode) == (1000, 1001, 42) and event.exe_dev == 0x801


def test_an_argv_length_past_the_record_is_malformed() -> None:
    assert decode(_exec_record(b"/bin/true\0", 4000)) is None
    assert decode(struct.pack("<I", EXEC)) is None


def test_trailing_empty_arguments_are_kept() -> None:
    assert argv_of(b"echo\0\0\0") == ["echo", "", ""] and argv_of(b"") == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=6000))
def test_any_bytes_decode_without_an_exception(raw: bytes) -> None:
    decode(raw)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5), st.binary(min_size=HEADER.size, max_size=ARGV_AT + 200))
def test_any_kind_with_any_body_decodes_without_an_exception(kind: int, body: bytes) -> None:
    decode(struct.pack("<I", kind) + body[4:])
