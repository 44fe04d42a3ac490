"""A whole scan as the command line asks for it: report writer chosen, progress shown, exit status."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import BinaryIO

from bindrift.scan.options import ScanOptions
from bindrift.schema.triage import TriageReport
from bindrift.sinks.scan_report.summary import ReportWriter, ScanSummary

Progress = AbstractContextManager[Callable[[int], None] | None]


def execute(
    options: ScanOptions,
    writer: ReportWriter,
    progress: Progress,
    on_report: Callable[[TriageReport], None] | None = None,
) -> int:
    """Scan into `writer`; the exit status (0 clean, 1 findings at or above the threshold, 2 errors)."""
    from bindrift.scan.pipeline import run_scan

    with progress as hook:
        summary = run_scan(options, writer, hook, on_report)
    return exit_status(summary)


def exit_status(summary: ScanSummary) -> int:
    """0 clean, 1 findings, 2 when anything could not be read."""
    if summary.errors:
        return 2
    return 1 if summary.findings else 0


def writer_for(output_format: str, out: BinaryIO) -> ReportWriter:
    """The report writer for the format."""
    if output_format == "json":
        from bindrift.sinks.scan_report.jsonl import JsonLinesWriter

        return JsonLinesWriter(out)
    if output_format == "sarif":
        from bindrift.sinks.scan_report.sarif import SarifWriter

        return SarifWriter(out)
    import io

    from bindrift.sinks.scan_report.table import TableWriter

    return TableWriter(io.TextIOWrapper(out, encoding="utf-8", errors="replace", write_through=True))


def interactive(output_format: str) -> bool:
    """Whether a live progress counter fits: a table, with stderr on a terminal."""
    return output_format == "table" and sys.stderr.isatty()
