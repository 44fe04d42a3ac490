"""The `bindrift` console script: `bindrift scan` and `bindrift ingest` without the framework, everything else
through typer.

A whole-process scan is benchmarked against readelf, and building the typer application with all its
sub-commands costs more than scanning a thousand files (≈ 110 ms of a 150 ms start-up, measured with
cProfile): plain `scan` command lines are parsed by `scan_args`; `--help`, `--store` and anything it
does not accept go to the typer application, which gives the usual help and error messages. The same holds
for `ingest` of a file or stdin (`ingest_args`): its adapters are benchmarked as a whole process too.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:2] == ["scan"]:
        from bindrift.cli.scan_args import quick_scan

        status = quick_scan(sys.argv[2:])
        if status is not None:
            sys.exit(status)
    elif sys.argv[1:2] == ["ingest"]:
        from bindrift.cli.ingest_args import quick_ingest

        status = quick_ingest(sys.argv[2:])
        if status is not None:
            sys.exit(status)
    from bindrift.cli.main import main as full

    full()
