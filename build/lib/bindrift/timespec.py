"""Points in time written by people: a duration back from (or ahead of) now, or an ISO 8601 time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

DURATION = re.compile(r"^(\d{1,9})([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, future: bool) -> datetime:
    """`7d`, `12h`, `30m` from now (ahead when `future`, else back), or an ISO 8601 time (UTC if no zone).
    Raises ValueError for anything else."""
    match = DURATION.match(text.strip())
    now = datetime.now(UTC)
    if match:
        delta = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
        return now + delta if future else now - delta
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither a duration like 7d nor an ISO 8601 time") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)
