"""Helpers shared by the store-backed commands: opening the store, durations, inert text."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from bindrift.sinks.store.sql_store import SqlStore

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: BINDRIFT_DB, the config file, or SQLite).")
]
DURATION = re.compile(r"^(\d+)([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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
    match = DURATION.match(text.strip())
    now = datetime.now(UTC)
    if match:
        delta = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
        return now + delta if future else now - delta
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is neither a duration like 7d nor an ISO 8601 time") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def current_user() -> str:
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or str(os.getuid())
