"""`run_scan`: every path of a scan through triage into a report writer, with the summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from bindrift.scan.disk import disk_results
from bindrift.scan.images import image_reports, is_image
from bindrift.scan.options import ScanOptions
from bindrift.schema.severity import at_least
from bindrift.schema.triage import TriageReport
from bindrift.sensors.targets import ScanError
from bindrift.sinks.scan_report.summary import ReportWriter, ScanSummary

Item = TriageReport | ScanError
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
    for item in _reports(options, summary, progress):
        if isinstance(item, ScanError):
            summary.errors.append((item.path, item.message))
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


def _reports(options: ScanOptions, summary: ScanSummary, progress: ProgressHook | None) -> Iterator[Item]:
    disk: list[str] = []
    for path in options.paths:
        if is_image(path):
            yield from _disk_reports(disk, options, summary, progress)
            disk = []
            yield from image_reports(path, options.host, options.compute_hash, progress)
        else:
            disk.append(path)
    yield from _disk_reports(disk + options.plain_paths, options, summary, progress)


def _disk_reports(
    roots: list[str], options: ScanOptions, summary: ScanSummary, progress: ProgressHook | None
) -> Iterator[Item]:
    if not roots:
        return
    for result in disk_results(roots, options):
        if isinstance(result, ScanError):
            yield result
            continue
        summary.skipped_non_elf += result.non_elf
        if progress:
            progress(len(result.reports) + result.non_elf)
        yield from result.reports
