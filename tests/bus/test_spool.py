"""The disk spool: order, commit, the byte cap (oldest dropped and counted), reopening, corrupt records."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from bindrift.bus.spool import HEADER, MAX_RECORD, Spool


def bodies(n: int, start: int = 0) -> list[bytes]:
    return [f"record-{i:05}".encode() * 10 for i in range(start, start + n)]


def drain(spool: Spool, batch: int = 7) -> list[bytes]:
    out: list[bytes] = []
    while True:
        got, position = spool.read(batch)
        if not got:
            return out
        out.extend(got)
        spool.commit(position)


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=64 * 1024, segment_bytes=1024)
    for body in bodies(100):
        assert spool.append(body)
    assert spool.pending == 100 and len(list(tmp_path.glob("*.seg"))) > 5
    first, position = spool.read(10)
    assert first == bodies(10)
    again, _ = spool.read(10)
    assert again == first, "nothing is forgotten before it is committed"
    spool.commit(position)
    assert spool.pending == 90
    assert drain(spool) == bodies(90, 10)
    assert spool.pending == 0 and spool.dropped == 0 and spool.rejected == 0
    assert len(list(tmp_path.glob("*.seg"))) == 1, "published segments are deleted"
    spool.close()


def test_full_spool_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=8 * 1024, segment_bytes=1024)
    record = HEADER.size + len(bodies(1)[0])
    for body in bodies(1000):
        spool.append(body)
        assert spool.size <= 8 * 1024
        assert sum(p.stat().st_size for p in tmp_path.glob("*.seg")) <= 8 * 1024
    kept = drain(spool)
    assert spool.dropped == 1000 - len(kept)
    assert len(kept) >= (8 * 1024 - 1024) // record, "all but about one segment of the cap is used"
    assert kept == bodies(len(kept), 1000 - len(kept)), "the newest survive, in order"
    spool.close()


def test_a_dropped_segment_being_read_is_counted_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=4 * 1024, segment_bytes=1024)
    for body in bodies(20):
        spool.append(body)
    _, position = spool.read(5)
    spool.commit(position)  # 5 of the oldest segment published
    for body in bodies(200, 20):
        spool.append(body)
    kept = drain(spool)
    assert 5 + spool.dropped + len(kept) == 220
    assert kept[-1] == bodies(1, 219)[0]
    spool.close()


def test_reopened_spool_resumes_after_the_last_commit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=64 * 1024, segment_bytes=1024)
    for body in bodies(50):
        spool.append(body)
    _, position = spool.read(20)
    spool.commit(position)
    spool.close()
    reopened = Spool(tmp_path, max_bytes=64 * 1024, segment_bytes=1024)
    assert reopened.pending == 30
    reopened.append(b"after restart")
    assert drain(reopened) == [*bodies(30, 20), b"after restart"]
    reopened.close()


def test_torn_and_corrupt_records_are_skipped_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=128 * 1024, segment_bytes=64 * 1024)
    for body in bodies(10):
        spool.append(body)
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    record = HEADER.size + len(bodies(1)[0])
    data[3 * record + HEADER.size] ^= 0xFF  # the fourth record's body no longer matches its CRC
    segment.write_bytes(bytes(data) + struct.pack("<II", 500, 0) + b"torn")
    reopened = Spool(tmp_path, max_bytes=128 * 1024, segment_bytes=64 * 1024)
    assert reopened.pending == 3, "only the records before the damage count as spooled"
    assert reopened.rejected == 1, "the damaged tail is counted"
    reopened.append(b"new")
    assert drain(reopened) == [*bodies(3), b"new"]
    assert reopened.rejected == 1 and reopened.dropped == 0
    reopened.close()


def test_oversized_record_is_refused_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=4 << 20, segment_bytes=1 << 20)
    assert not spool.append(b"x" * (MAX_RECORD + 1))
    assert spool.rejected == 1 and spool.pending == 0
    assert spool.append(b"ok") and drain(spool) == [b"ok"]
    spool.close()


def test_one_process_at_a_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=4 << 20, segment_bytes=1 << 20)
    with pytest.raises(ValueError, match="in use by another process"):
        Spool(tmp_path, max_bytes=4 << 20, segment_bytes=1 << 20)
    spool.close()
    Spool(tmp_path, max_bytes=4 << 20, segment_bytes=1 << 20).close()
