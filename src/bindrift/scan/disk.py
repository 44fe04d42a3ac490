"""Files on disk in a scan: triaged in batches, by this process and `jobs - 1` forked ones when `jobs` > 1
and the walk is large (`fork_pool`; results keep input order). For JSON Lines, workers write their own
output: each returns its batch encoded and counted, and the parent only copies the bytes out in order."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import TYPE_CHECKING

import msgspec

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.safe_open import open_nofollow
from bindrift.analysis.triage import triage
from bindrift.scan.options import ScanOptions
from bindrift.schema.severity import SEVERITIES, Severity, at_least
from bindrift.schema.triage import TriageReport
from bindrift.sensors.files import iter_files, root_entry
from bindrift.sensors.targets import DiskDirectory, DiskFile, ScanError

if TYPE_CHECKING:
    from bindrift.analysis.provenance import PackageIndex

BATCH = 32
# Worker processes start only when the walk has more than this many batches queued.
PARALLEL_AFTER_BATCHES = 8


class BatchResult(msgspec.Struct):
    """The reports of one batch (ELF files and errors) and how many non-ELF files it skipped; `rest`: the roots
    of a list batch from its first directory on, left to the parent (`triage_roots`)."""

    reports: list[TriageReport]
    non_elf: int
    rest: list[str] = []


# How a batch is triaged: `triage_batch` (files found by a walk) or `triage_roots` (roots as given).
TriagePaths = Callable[[list[str], HostProfile, bool], BatchResult]


class EncodedBatch(msgspec.Struct):
    """A batch a worker wrote itself: its JSON Lines (findings filtered) and what the summary counts."""

    lines: bytes
    elf_files: int
    non_elf: int
    by_severity: dict[Severity, int]
    errors: list[tuple[str, str]]
    rest: list[str] = []


def disk_results(
    roots: list[str], options: ScanOptions, encoded: bool = False
) -> Iterator[BatchResult | EncodedBatch | ScanError]:
    """Batches of reports for the files under `roots`, in walk order; `encoded`: workers, if any, return
    `EncodedBatch`es of JSON Lines instead. A long list of roots (`--files-from`) is shared out as given,
    each batch walked by the process that triages it; a few roots are walked here and their files shared."""
    listed = len(roots) > BATCH
    batches: Iterator[list[str] | ScanError] = (
        (roots[i : i + BATCH] for i in range(0, len(roots), BATCH)) if listed else _batches(iter_files(roots))
    )
    first = list(islice(batches, PARALLEL_AFTER_BATCHES + 1))
    batches = chain(first, batches)
    work = triage_roots if listed else triage_batch
    if options.jobs > 1 and len(first) > PARALLEL_AFTER_BATCHES:
        if options.compute_hash:
            _host_packages()  # loaded once, before the workers fork
        return _walk_rest(_parallel(batches, options, encoded, work), options)
    return _walk_rest((b if isinstance(b, ScanError) else work(b, options.host, options.compute_hash) for b in batches),
                      options)  # fmt: skip


def _walk_rest(
    results: Iterator[BatchResult | EncodedBatch | ScanError], options: ScanOptions
) -> Iterator[BatchResult | EncodedBatch | ScanError]:
    """`results`, each followed by what its batch left from a directory on, walked and triaged here, in place."""
    for result in results:
        yield result
        if not isinstance(result, ScanError) and result.rest:
            for batch in _batches(iter_files(result.rest)):
                yield batch if isinstance(batch, ScanError) else triage_batch(batch, options.host, options.compute_hash)


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


def _host_packages() -> PackageIndex | None:
    """The host's package records; the module is imported only when a file needs them (hashing on, or a
    finding to cap), so a header scan of files with nothing to report never pays for it."""
    from bindrift.analysis.provenance import host_index

    return host_index()


def triage_batch(paths: list[str], host: HostProfile, compute_hash: bool) -> BatchResult:
    """Triage files found by a walk."""
    return _triage(map(DiskFile, paths), host, compute_hash)


def triage_roots(roots: list[str], host: HostProfile, compute_hash: bool) -> BatchResult:
    """Triage roots as given, in order, what cannot be read reported in place, up to the first directory: it
    and the roots after it are left in `rest`, for the parent to walk where they stand (a batch's result
    stays bounded however large the directory)."""
    found: list[DiskFile | ScanError] = []
    for at, root in enumerate(roots):
        entry = root_entry(root)
        if isinstance(entry, DiskDirectory):
            result = _triage(found, host, compute_hash)
            result.rest = roots[at:]
            return result
        found.append(entry)
    return _triage(found, host, compute_hash)


def _triage(found: Iterable[DiskFile | ScanError], host: HostProfile, compute_hash: bool) -> BatchResult:
    """Triage files, each opened with no symlink in any path component."""
    reports: list[TriageReport] = []
    non_elf = 0
    for item in found:
        if isinstance(item, ScanError):
            reports.append(TriageReport(path=item.path, size=0, is_elf=False, error=item.message))
            continue
        path = item.path
        try:
            fd = open_nofollow(path)
        except OSError as exc:
            reports.append(TriageReport(path=path, size=0, is_elf=False, error=exc.strerror or str(exc)))
            continue
        try:
            report = triage(fd, host=host, compute_hash=compute_hash, label=path, packages=_host_packages)
        finally:
            os.close(fd)
        if report.is_elf or report.error:
            reports.append(report)
        else:
            non_elf += 1
    return BatchResult(reports, non_elf)


def _json_batch(result: BatchResult, floor: Severity) -> EncodedBatch:
    """A batch's reports filtered, counted and encoded as the parent's `run_scan` would have done."""
    batch = EncodedBatch(b"", 0, result.non_elf, dict.fromkeys(SEVERITIES, 0), [], result.rest)
    encoder = msgspec.json.Encoder()
    lines = bytearray()
    for report in result.reports:
        if report.error is not None:
            batch.errors.append((report.path, report.error))
        if not report.is_elf:
            batch.non_elf += report.error is None
            continue
        report.findings = [f for f in report.findings if at_least(f.severity, floor)]
        batch.elf_files += 1
        for finding in report.findings:
            batch.by_severity[finding.severity] += 1
        encoder.encode_into(report, lines, len(lines))
        lines += b"\n"
    batch.lines = bytes(lines)
    return batch


class _Reports(msgspec.Struct, array_like=True):
    """A `BatchResult` as a worker sends it."""

    reports: list[TriageReport]
    non_elf: int
    rest: list[str]


def _parallel(
    batches: Iterator[list[str] | ScanError], options: ScanOptions, encoded: bool, triage_paths: TriagePaths
) -> Iterator[BatchResult | EncodedBatch | ScanError]:
    """Batches triaged by `jobs` processes (this one and `jobs - 1` forked: `fork_pool`), in input order."""
    from bindrift.scan.fork_pool import ordered_batches

    encoder = msgspec.msgpack.Encoder()
    if encoded:
        batches_decoder = msgspec.msgpack.Decoder(EncodedBatch)

        def json_work(batch: list[str]) -> EncodedBatch:
            return _json_batch(triage_paths(batch, options.host, options.compute_hash), options.min_severity)

        yield from ordered_batches(batches, options.jobs, json_work, encoder.encode, batches_decoder.decode)
        return
    reports_decoder = msgspec.msgpack.Decoder(_Reports)

    def work(batch: list[str]) -> BatchResult:
        return triage_paths(batch, options.host, options.compute_hash)

    def encode(result: BatchResult) -> bytes:
        return encoder.encode(_Reports(result.reports, result.non_elf, result.rest))

    def decode(data: bytes) -> BatchResult:
        sent = reports_decoder.decode(data)
        return BatchResult(sent.reports, sent.non_elf, sent.rest)

    yield from ordered_batches(batches, options.jobs, work, encode, decode)
