"""Helpers shared by the store-backed commands: opening the store, times, the current user."""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from bindrift.sinks.store.sql_store import SqlStore

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: BINDRIFT_DB, the config file, or SQLite).")
]


def open_store(db: str | None) -> SqlStore:
    """The store named by --db, BINDRIFT_DB, the config file, or the embedded SQLite default."""
    from bindrift.config import load_settings
    from bindrift.sinks.store.sql_store import SqlStore

    try:
        settings = load_settings()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    return SqlStore(db or os.environ.get("BINDRIFT_DB") or settings.database or None)


def parse_when(text: str, *, future: bool) -> datetime:
    """`7d`, `12h`, `30m` from now (ahead when `future`, else back), or an ISO 8601 time."""
    from bindrift.timespec import parse_when as parse

    try:
        return parse(text, future=future)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def current_user() -> str:
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or str(os.getuid())
