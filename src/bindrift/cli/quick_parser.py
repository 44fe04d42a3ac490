"""The argparse parser of the fast paths (scan_args, ingest_args): it never prints or exits, it raises
RefusedError, and the command line then goes to the typer application, which answers help and errors."""

from __future__ import annotations

import argparse


class RefusedError(Exception):
    """argparse met something the typer command must answer."""


class QuickParser(argparse.ArgumentParser):
    """No help option, no abbreviations, errors raised as RefusedError."""

    def __init__(self) -> None:
        super().__init__(add_help=False, allow_abbrev=False)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise RefusedError(message)
