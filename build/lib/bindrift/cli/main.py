"""`bindrift` entry point: the typer application and its sub-commands."""

from __future__ import annotations

import typer

from bindrift import __version__
from bindrift.cli import evidence, findings, intel, respond, suppress
from bindrift.cli.demo import demo
from bindrift.cli.ingest import ingest
from bindrift.cli.scan import scan
from bindrift.cli.serve import serve
from bindrift.cli.watch import watch
from bindrift.cli.worker import worker

app = typer.Typer(
    name="bindrift",
    help="Runtime threat detection for Linux containers: suspicious binaries and container drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command(no_args_is_help=True)(scan)
app.command()(watch)
app.command()(serve)
app.command()(demo)
app.command()(worker)
app.command()(ingest)
app.add_typer(findings.app, name="findings")
app.add_typer(intel.app, name="intel")
app.add_typer(suppress.app, name="suppress")
app.add_typer(evidence.app, name="evidence")
app.add_typer(respond.app, name="respond")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bindrift {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Runtime threat detection for Linux containers: suspicious binaries and container drift."""


def main() -> None:
    """Console-script entry point."""
    app()
