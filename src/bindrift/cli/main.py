"""`bindrift` entry point: the typer application and its sub-commands."""

from __future__ import annotations

import typer

from bindrift import __version__
from bindrift.cli.scan import scan

app = typer.Typer(
    name="bindrift",
    help="Runtime threat detection for Linux containers: suspicious binaries and container drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command(no_args_is_help=True)(scan)


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
