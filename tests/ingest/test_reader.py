"""The line reader: lines split across reads (a live pipe delivers what it has), over-long lines rejected and
skipped up to their newline, blank lines ignored, a last line without its newline still read."""

from __future__ import annotations

import io
import json

from tests.ingest.test_falco import DROP

from bindrift.sensors.ingest.common import MAX_LINE
from bindrift.sensors.ingest.falco import FalcoAdapter
from bindrift.sensors.ingest.reader import CHUNK, read_events


class Trickle(io.RawIOBase):
    """A pipe giving at most `step` bytes a read, like a slow writer."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.at = data, step, 0

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        piece = self.data[self.at : self.at + min(self.step, size)]
        self.at += len(piece)
        return piece


GOOD = json.dumps(DROP).encode()


def _read(data: bytes, step: int) -> tuple[list[str], FalcoAdapter]:
    adapter = FalcoAdapter()
    return [e.path for e in read_events(Trickle(data, step), adapter)], adapter  # type: ignore[arg-type]


def test_lines_across_reads_overlong_and_blank_lines() -> None:
    huge = b'{"rule":"' + b"x" * (MAX_LINE + CHUNK) + b'"}'
    data = b"\n".join([GOOD, b"", b"   ", huge, GOOD, huge, huge[:-10], GOOD]) + b"\n" + GOOD  # no final newline
    for step in (1 << 20, CHUNK, 4096, 333):
        paths, adapter = _read(data, step)
        assert paths == ["/tmp/kinsing"] * 4, step
        assert (adapter.stats.lines, adapter.stats.kept, adapter.stats.rejected) == (7, 4, 3), step


def test_a_line_of_exactly_the_limit_is_read() -> None:
    line = GOOD[:-1] + b" " * (MAX_LINE - len(GOOD)) + b"}"
    assert len(line) == MAX_LINE
    for step in (CHUNK, 1000):
        paths, adapter = _read(line + b"\n" + GOOD + b"\n", step)
        assert (paths, adapter.stats.rejected) == (["/tmp/kinsing"] * 2, 0)
