"""The offline scan: sensors (files, images) → analysis (triage) → sinks (report writers).

Files on disk are triaged in batches, in worker processes when `jobs` > 1 (results keep input order);
image members are read in-stream and triaged in this process.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import TYPE_CHECKING

import msgspec

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.safe_open import open_nofollow
from bindrift.analysis.triage import triage, triage_source
from bindrift.schema.severity import Severity, at_least
from bindrift.schema.triage import TriageReport
from bindrift.sensors.files import iter_files
from bindrift.sensors.image_layout import is_image_archive, is_oci_layout
from bindrift.sensors.images import iter_image_members
from bindrift.sensors.targets import DiskFile, ImageMember, ScanError
from bindrift.sinks.scan_report.summary import ReportWriter, ScanSummary

if TYPE_CHECKING:
    from concurrent.futures import Future

BATCH = 64
TAR_MAGIC_OFFSET = 257
GZIP_MAGIC = b"\x1f\x8b"
# Worker processes start only when the walk has more than this many batches queued.
PARALLEL_AFTER_BATCHES = 4


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """What to scan and how."""

    paths: list[str]
    # Files and directories only (e.g. read from --files-from): no image detection.
    plain_paths: list[str]
    min_severity: Severity
    compute_hash: bool
    host: HostProfile
    jobs: int


@dataclass(slots=True)
class _BatchResult:
    reports: list[TriageReport]
    non_elf: int


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
        if _is_image(path):
            yield from _triage_disk(disk, options, summary, progress)
            disk = []
            yield from _image_reports(path, options, progress)
        else:
            disk.append(path)
    yield from _triage_disk(disk + options.plain_paths, options, summary, progress)


def _is_image(path: str) -> bool:
    """An image archive or OCI layout named on the command line (a symlink the user named is followed)."""
    real = os.path.realpath(path)
    if os.path.isdir(real):
        return is_oci_layout(real)
    try:
        fd = open_nofollow(real)
    except OSError:
        return False
    try:
        gzip_magic = os.pread(fd, 2, 0)
        tar_magic = os.pread(fd, 5, TAR_MAGIC_OFFSET)
    finally:
        os.close(fd)
    return (tar_magic == b"ustar" or gzip_magic == GZIP_MAGIC) and is_image_archive(real)


def _image_reports(path: str, options: ScanOptions, progress: ProgressHook | None) -> Iterator[Item]:
    for member in iter_image_members(path, want_hash=options.compute_hash):
        if isinstance(member, ScanError):
            yield member
            continue
        if progress:
            progress(1)
        yield _member_report(member, options.host)


def _member_report(member: ImageMember, host: HostProfile) -> TriageReport:
    if not member.is_elf or member.source is None:
        return TriageReport(path=member.path, size=member.size, is_elf=False, image=member.image, layer=member.layer)
    report = triage_source(
        member.source, path=member.path, host=host, sha256=member.sha256, executable=member.executable
    )
    report.image, report.layer = member.image, member.layer
    return report


def _triage_disk(
    roots: list[str], options: ScanOptions, summary: ScanSummary, progress: ProgressHook | None
) -> Iterator[Item]:
    if not roots:
        return
    batches = _batches(iter_files(roots))
    first = list(islice(batches, PARALLEL_AFTER_BATCHES + 1))
    batches = chain(first, batches)
    results: Iterable[_BatchResult | ScanError]
    if options.jobs > 1 and len(first) > PARALLEL_AFTER_BATCHES:
        results = _parallel(batches, options)
    else:
        results = (
            b if isinstance(b, ScanError) else _triage_batch(b, options.host, options.compute_hash) for b in batches
        )
    for result in results:
        if isinstance(result, ScanError):
            yield result
            continue
        summary.skipped_non_elf += result.non_elf
        if progress:
            progress(len(result.reports) + result.non_elf)
        yield from result.reports


def _batches(found: Iterator[DiskFile | ScanError]) -> Iterator[list[str] | ScanError]:
    batch: list[str] = []
    for item in found:
        if isinstance(item, ScanError):
            yield item
            continue
        batch.append(item.path)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _triage_batch(paths: list[str], host: HostProfile, compute_hash: bool) -> _BatchResult:
    """Triage files found by the walk: opened with no symlink in any path component."""
    reports: list[TriageReport] = []
    non_elf = 0
    for path in paths:
        try:
            fd = open_nofollow(path)
        except OSError as exc:
            reports.append(TriageReport(path=path, size=0, is_elf=False, error=exc.strerror or str(exc)))
            continue
        try:
            report = triage(fd, host=host, compute_hash=compute_hash, label=path)
        finally:
            os.close(fd)
        if report.is_elf or report.error:
            reports.append(report)
        else:
            non_elf += 1
    return _BatchResult(reports, non_elf)


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(list[TriageReport])


def _worker(paths: list[str], host: HostProfile, compute_hash: bool) -> tuple[bytes, int]:
    result = _triage_batch(paths, host, compute_hash)
    return _ENCODER.encode(result.reports), result.non_elf


def _parallel(batches: Iterator[list[str] | ScanError], options: ScanOptions) -> Iterator[_BatchResult | ScanError]:
    """Batches triaged by `jobs` forked workers, at most 4 per worker in flight, yielded in input order."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    window: deque[Future[tuple[bytes, int]] | ScanError] = deque()
    with ProcessPoolExecutor(max_workers=options.jobs, mp_context=get_context("fork")) as pool:

        def submit(count: int) -> None:
            for batch in islice(batches, count):
                if isinstance(batch, ScanError):
                    window.append(batch)
                else:
                    window.append(pool.submit(_worker, batch, options.host, options.compute_hash))

        submit(4 * options.jobs)
        while window:
            head = window.popleft()
            if isinstance(head, ScanError):
                yield head
            else:
                encoded, non_elf = head.result()
                yield _BatchResult(_DECODER.decode(encoded), non_elf)
            submit(1)
