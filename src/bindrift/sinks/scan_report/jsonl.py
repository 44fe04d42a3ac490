"""JSON Lines: one object per ELF file, encoded with msgspec; the summary goes to stderr."""

from __future__ import annotations

import sys
from typing import BinaryIO

import msgspec

from bindrift.schema.triage import TriageReport
from bindrift.sinks.scan_report.summary import ScanSummary
from bindrift.visible_text import visible

FLUSH_AT = 256 * 1024


class JsonLinesWriter:
    """Buffered JSON Lines writer (reports are written as they come, in batches)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray()

    def write(self, report: TriageReport) -> None:
        self._encoder.encode_into(report, self._buffer, len(self._buffer))
        self._buffer += b"\n"
        if len(self._buffer) >= FLUSH_AT:
            self._flush()

    def write_lines(self, lines: bytes) -> None:
        """JSON Lines a worker process encoded itself, exactly as `write` would have."""
        self._buffer += lines
        if len(self._buffer) >= FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        self._out.write(self._buffer)
        self._buffer.clear()

    def close(self, summary: ScanSummary) -> None:
        self._flush()
        self._out.flush()
        for path, message in summary.errors:
            print(f"bindrift: {visible(path)}: {message}", file=sys.stderr)
        print(f"bindrift: {summary.line()}", file=sys.stderr)
