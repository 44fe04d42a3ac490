"""`bindrift scan PATH...`: triage every ELF in files, directories and container images."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

if TYPE_CHECKING:
    from bindrift.cli.scan_pipeline import ScanOptions
    from bindrift.sinks.scan_report.summary import ReportWriter, ScanSummary

Progress = AbstractContextManager[Callable[[int], None] | None]


class OutputFormat(StrEnum):
    """Report formats."""

    table = "table"
    json = "json"
    sarif = "sarif"


class MinSeverity(StrEnum):
    """Severity thresholds."""

    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


def scan(
    paths: Annotated[list[str] | None, typer.Argument(help="Files, directories, image tarballs, OCI layouts.")] = None,
    output_format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Report format.")] = OutputFormat.table,
    min_severity: Annotated[
        MinSeverity, typer.Option(help="Show and count findings at or above this severity.")
    ] = MinSeverity.low,
    no_hash: Annotated[bool, typer.Option("--no-hash", help="Skip SHA-256 (header checks only).")] = False,
    host_arch: Annotated[
        str | None, typer.Option(help="Judge compatibility for ARCH[,COMPAT…] instead of this machine.")
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", min=0, help="Worker processes for files on disk (0 = one per CPU for large scans)."
        ),
    ] = 0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to FILE.")] = None,
    store: Annotated[
        bool, typer.Option("--store", help="Also record suspicious binaries as findings in the store (see --db).")
    ] = False,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL for --store (default: BINDRIFT_DB or SQLite).")
    ] = None,
    files_from: Annotated[
        Path | None,
        typer.Option(help="Read more files and directories from FILE (NUL- or newline-separated; - for stdin)."),
    ] = None,
) -> None:
    """Triage every ELF file: architecture, header anomalies, packing, packer tampering.

    Exit status: 0 when nothing at or above --min-severity was found, 1 when something was, 2 on usage or
    I/O errors.
    """
    from bindrift.analysis.arch import HostProfile
    from bindrift.cli.scan_pipeline import ScanOptions, run_scan
    from bindrift.schema.severity import parse_severity

    listed = _read_list(files_from) if files_from is not None else []
    if not paths and not listed:
        raise typer.BadParameter("no paths to scan", param_hint="PATH")
    try:
        host = HostProfile.parse(host_arch) if host_arch else HostProfile.detect()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--host-arch") from exc
    options = ScanOptions(
        paths=list(paths or []), plain_paths=listed, min_severity=parse_severity(min_severity.value),
        compute_hash=not no_hash, host=host,
        jobs=jobs or len(os.sched_getaffinity(0)),
    )  # fmt: skip
    out = _open_output(output)
    try:
        writer, progress = _writer(output_format, out)
        if not store:
            with progress as hook:
                summary = run_scan(options, writer, hook)
        else:
            summary = _scan_and_store(options, writer, progress, db)
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    if summary.errors:
        raise typer.Exit(2)
    raise typer.Exit(1 if summary.findings else 0)


def _scan_and_store(options: ScanOptions, writer: ReportWriter, progress: Progress, db: str | None) -> ScanSummary:
    """The scan, with every suspicious binary also processed into a stored finding."""
    from bindrift.cli.common import open_store
    from bindrift.cli.scan_pipeline import run_scan
    from bindrift.cli.scan_store import ScanFindings

    findings_store = open_store(db)
    try:
        recorder = ScanFindings(findings_store)
        with progress as hook:
            summary = run_scan(options, writer, hook, recorder)
    finally:
        findings_store.close()
    where = findings_store.display_url
    print(f"bindrift: {recorder.stored} suspicious binary finding(s) stored in {where}", file=sys.stderr)
    return summary


def _read_list(source: Path) -> list[str]:
    data = sys.stdin.buffer.read() if str(source) == "-" else source.read_bytes()
    separator = b"\0" if b"\0" in data else b"\n"
    return [item.decode("utf-8", "surrogateescape") for item in data.split(separator) if item.strip()]


def _open_output(output: Path | None) -> BinaryIO:
    if output is None:
        return sys.stdout.buffer
    try:
        return output.open("wb")
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {output}: {exc.strerror}", param_hint="--output") from exc


def _writer(output_format: OutputFormat, out: BinaryIO) -> tuple[ReportWriter, Progress]:
    """The report writer for the format, and a progress context (a live counter for tables on a TTY)."""
    from bindrift.cli.progress import progress_for

    if output_format is OutputFormat.json:
        from bindrift.sinks.scan_report.jsonl import JsonLinesWriter

        return JsonLinesWriter(out), progress_for(False)
    if output_format is OutputFormat.sarif:
        from bindrift.sinks.scan_report.sarif import SarifWriter

        return SarifWriter(out), progress_for(False)
    import io

    from bindrift.sinks.scan_report.table import TableWriter

    text = io.TextIOWrapper(out, encoding="utf-8", errors="replace", write_through=True)
    return TableWriter(text), progress_for(sys.stderr.isatty())
