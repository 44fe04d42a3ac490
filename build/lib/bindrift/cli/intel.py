"""`bindrift intel add|list`: register threat-intelligence sources."""

from __future__ import annotations

import os
from typing import Annotated, Literal, cast

import typer

from bindrift.cli.common import DbOption, open_store

app = typer.Typer(help="Threat intelligence: SHA-256 lists, STIX 2.1 bundles, YARA-X rule folders.",
                  no_args_is_help=True)  # fmt: skip
KINDS = ("auto", "sha256", "csv", "stix", "yara")


@app.command()
def add(
    path: str,
    kind: Annotated[str, typer.Option(help="auto, sha256 (text), csv, stix or yara.")] = "auto",
    db: DbOption = None,
) -> None:
    """Register a source; it is read now to check it, and re-read whenever it changes."""
    from bindrift.analysis.intel.intel_set import IntelSet, Kind, detect_kind

    if kind not in KINDS:
        raise typer.BadParameter(f"kind must be one of {', '.join(KINDS)}", param_hint="--kind")
    absolute = os.path.abspath(path)
    resolved = detect_kind(absolute) if kind == "auto" else kind
    intel = IntelSet([(absolute, cast(Kind, resolved))])
    if intel.errors:
        for error in intel.errors:
            typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2)
    store = open_store(db)
    try:
        store.add_intel_source(absolute, resolved)
    finally:
        store.close()
    typer.echo(f"added {resolved} source {absolute}")


@app.command("list")
def list_sources(db: DbOption = None) -> None:
    """The registered sources, with the state of each."""
    from bindrift.analysis.intel.intel_set import IntelSet, Kind

    store = open_store(db)
    try:
        sources = store.intel_sources()
    finally:
        store.close()
    for path, kind in sources:
        errors = IntelSet([(path, cast(Kind, kind))]).errors
        status: Literal["ok", "error"] = "error" if errors else "ok"
        typer.echo(f"{kind:7} {status:5} {path}" + (f"  ({errors[0]})" if errors else ""))
