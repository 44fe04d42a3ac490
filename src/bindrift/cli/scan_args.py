"""`bindrift scan` arguments parsed by QuickParser (the same options as cli/scan.py's typer command), for a
start-up without the framework. Returns None whenever typer should answer instead (help, errors, --store)."""

from __future__ import annotations

import sys

from bindrift.cli.quick_parser import QuickParser, RefusedError

FORMATS = ("table", "json", "sarif")
SEVERITIES = ("info", "low", "medium", "high", "critical")


def _parser() -> QuickParser:
    parser = QuickParser("paths", many=True)
    parser.option("--format", "-f", dest="output_format", choices=FORMATS, default="table")
    parser.option("--min-severity", choices=SEVERITIES, default="low")
    parser.flag("--no-hash")
    parser.option("--host-arch")
    parser.option("--jobs", "-j", convert=int, default=0)
    parser.option("--output", "-o")
    parser.option("--files-from")
    return parser


def quick_scan(argv: list[str]) -> int | None:
    """Run the scan and return its exit status, or None to hand the command line to typer."""
    if any(arg in ("--help", "--store", "--db") or arg.startswith(("--db=", "--store=")) for arg in argv):
        return None
    try:
        args = _parser().parse(argv)
    except RefusedError:
        return None
    if args.jobs < 0 or args.files_from == "-":  # stdin can be read only once: typer reads it
        return None
    from bindrift.cli.progress import progress_for
    from bindrift.scan.command import execute, interactive, writer_for
    from bindrift.scan.options import build_options, read_list

    try:
        listed = read_list(args.files_from) if args.files_from is not None else []
        options = build_options(args.paths, listed, args.min_severity, args.no_hash, args.host_arch, args.jobs)
        out = open(args.output, "wb") if args.output is not None else sys.stdout.buffer  # noqa: SIM115
    except (OSError, ValueError):
        return None
    try:
        return execute(options, writer_for(args.output_format, out), progress_for(interactive(args.output_format)))
    finally:
        if out is not sys.stdout.buffer:
            out.close()
