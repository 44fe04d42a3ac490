"""`bindrift ingest` of a file or stdin, its arguments parsed by QuickParser (the same options as cli/ingest.py's
typer command), for a start-up without the framework: the adapters are benchmarked as a whole process, and
building the typer application costs as much as reading 30,000 lines. Returns None whenever typer should
answer instead (help, errors, --listen, --bus and the options that only go with them)."""

from __future__ import annotations

import os
import sys

from bindrift.cli.quick_parser import QuickParser, RefusedError

SOURCES = ("falco", "tetragon", "tracee", "auditd")
EXIT_BAD_INPUT = 2  # as typer's BadParameter


def _parser() -> QuickParser:
    parser = QuickParser("input_file", many=False, default="-")
    parser.option("--from", dest="source", choices=SOURCES, required=True)
    parser.option("--db")
    parser.option("--node-name", default="")
    parser.option("--cluster", default="")
    parser.flag("--check")
    parser.flag("--no-check", dest="check", value=False)
    parser.option("--metrics-file", default="")
    return parser


def quick_ingest(argv: list[str]) -> int | None:
    """Run the command and return its exit status, or None to hand the command line to typer."""
    if "--help" in argv or os.environ.get("BINDRIFT_BUS"):  # typer reads --bus from the environment too
        return None
    try:
        args = _parser().parse(argv)
    except RefusedError:
        return None
    if args.input_file != "-" and not os.access(args.input_file, os.R_OK):
        return None  # typer names the problem; stdin is not read before this point
    from bindrift.ingest.command import IngestOptions, run_ingest

    store = None
    if not args.check:
        from bindrift.config import load_settings
        from bindrift.sinks.store.sql_store import SqlStore

        try:
            database = args.db or os.environ.get("BINDRIFT_DB") or load_settings().database or None
        except ValueError:
            return None  # a bad configuration file: typer reports it
        store = SqlStore(database)
    options = IngestOptions(source=args.source, input_file=args.input_file, store=store, node=args.node_name,
                            cluster=args.cluster, check=args.check, metrics_file=args.metrics_file)  # fmt: skip
    try:
        return run_ingest(options)
    except (OSError, ValueError) as exc:  # the input may be consumed by now: answered here, as typer would
        print(f"bindrift ingest: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
