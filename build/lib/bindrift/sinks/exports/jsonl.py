"""Findings as JSON Lines (the bindrift model, one finding per line)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

import msgspec

from bindrift.schema.finding import Finding


def write_jsonl(findings: Iterable[Finding], out: BinaryIO) -> int:
    """Write each finding on its own line; returns how many were written."""
    encoder = msgspec.json.Encoder()
    count = 0
    for finding in findings:
        out.write(encoder.encode(finding) + b"\n")
        count += 1
    out.flush()
    return count
