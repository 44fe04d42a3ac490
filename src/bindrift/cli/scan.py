"""`bindrift scan PATH...`: triage every ELF in files, directories and container images."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

if TYPE_CHECKING:
    from bindrift.scan.command import Progress
    from bindrift.scan.options import ScanOptions
    from bindrift.sinks.scan_report.summary import ReportWriter


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
    from bindrift.cli.progress import progress_for
    from bindrift.scan.command import execute, interactive, writer_for
    from bindrift.scan.options import build_options, read_list

    try:
        listed = read_list(str(files_from)) if files_from is not None else []
        options = build_options(list(paths or []), listed, min_severity.value, no_hash, host_arch, jobs)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {files_from}: {exc.strerror}", param_hint="--files-from") from exc
    except ValueError as exc:
        hint, _, message = str(exc).partition(": ")
        raise typer.BadParameter(message, param_hint=hint) from exc
    out = _open_output(output)
    try:
        writer = writer_for(output_format.value, out)
        progress = progress_for(interactive(output_format.value))
        status = _execute_and_store(options, writer, progress, db) if store else execute(options, writer, progress)
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    raise typer.Exit(status)


def _execute_and_store(options: ScanOptions, writer: ReportWriter, progress: Progress, db: str | None) -> int:
    """The scan, with every suspicious binary also processed into a stored finding."""
    from bindrift.cli.common import open_store
    from bindrift.cli.scan_store import ScanFindings
    from bindrift.scan.command import execute

    findings_store = open_store(db)
    try:
        recorder = ScanFindings(findings_store)
        status = execute(options, writer, progress, recorder)
    finally:
        findings_store.close()
    where = findings_store.display_url
    print(f"bindrift: {recorder.stored} suspicious binary finding(s) stored in {where}", file=sys.stderr)
    return status


def _open_output(output: Path | None) -> BinaryIO:
    if output is None:
        return sys.stdout.buffer
    try:
        return output.open("wb")
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {output}: {exc.strerror}", param_hint="--output") from exc
