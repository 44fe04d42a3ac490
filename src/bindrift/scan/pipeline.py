"""`run_scan`: every path of a scan through triage into a report writer, with the summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

from bindrift.scan.disk import EncodedBatch, disk_results
from bindrift.scan.images import image_reports, is_image
from bindrift.scan.options import ScanOptions
from bindrift.schema.severity import at_least
from bindrift.schema.triage import TriageReport
from bindrift.sensors.targets import ScanError
from bindrift.sinks.scan_report.summary import ReportWriter, ScanSummary

Item = TriageReport | ScanError | EncodedBatch
ProgressHook = Callable[[int], None]


def run_scan(
    options: ScanOptions,
    writer: ReportWriter,
    progress: ProgressHook | None = None,
    on_report: Callable[[TriageReport], None] | None = None,
) -> ScanSummary:
    """Scan everything in `options`, feeding `writer` (and `on_report` with each ELF's full report, before
    the severity filter); returns the summary, also handed to the writer."""
    summary = ScanSummary()
    write_lines = getattr(writer, "write_lines", None) if on_report is None else None
    for item in _reports(options, summary, progress, write_lines is not None):
        if isinstance(item, ScanError):
            summary.errors.append((item.path, item.message))
            continue
        if isinstance(item, EncodedBatch):
            cast("Callable[[bytes], None]", write_lines)(item.lines)
            summary.elf_files += item.elf_files
            summary.skipped_non_elf += item.non_elf
            summary.errors += item.errors
            for severity, count in item.by_severity.items():
                summary.by_severity[severity] += count
            continue
        if item.error is not None:
            summary.errors.append((item.path, item.error))
        if not item.is_elf:
            if item.error is None:
                summary.skipped_non_elf += 1
            continue
        if on_report is not None:
            on_report(item)
        item.findings = [f for f in item.findings if at_least(f.severity, options.min_severity)]
        summary.elf_files += 1
        for finding in item.findings:
            summary.by_severity[finding.severity] += 1
        writer.write(item)
    writer.close(summary)
    return summary


def _reports(
    options: ScanOptions, summary: ScanSummary, progress: ProgressHook | None, encoded: bool
) -> Iterator[Item]:
    disk: list[str] = []
    for path in options.paths:
        if is_image(path):
            yield from _disk_reports(disk, options, summary, progress, encoded)
            disk = []
            yield from image_reports(path, options.host, options.compute_hash, progress)
        else:
            disk.append(path)
    yield from _disk_reports(disk + options.plain_paths, options, summary, progress, encoded)


def _disk_reports(
    roots: list[str], options: ScanOptions, summary: ScanSummary, progress: ProgressHook | None, encoded: bool
) -> Iterator[Item]:
    """Disk reports; `encoded`: batches that workers wrote as JSON Lines themselves pass through whole."""
    if not roots:
        return
    for result in disk_results(roots, options, encoded):
        if isinstance(result, ScanError | EncodedBatch):
            if progress and isinstance(result, EncodedBatch):
                progress(result.elf_files + result.non_elf)
            yield result
            continue
        summary.skipped_non_elf += result.non_elf
        if progress:
            progress(len(result.reports) + result.non_elf)
        yield from result.reports
