"""Findings over time by severity: counts per hour or per day, empty buckets included."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from bindrift.schema.severity import SEVERITIES

Bucket = Literal["auto", "hour", "day"]
MAX_BUCKETS = 2_000
STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def _floor(when: datetime, size: str) -> datetime:
    when = when.replace(minute=0, second=0, microsecond=0)
    return when.replace(hour=0) if size == "day" else when


def timeline(points: Sequence[tuple[datetime, str]], bucket: Bucket = "auto") -> dict[str, object]:
    """`points` are (time, severity), oldest first. Returns the bucket size and one entry per bucket from the
    first point to the last, each with a count per severity."""
    if not points:
        return {"bucket": "hour" if bucket == "auto" else bucket, "buckets": []}
    first, last = points[0][0], points[-1][0]
    size = bucket if bucket != "auto" else ("hour" if last - first <= timedelta(days=3) else "day")
    if (last - first) / STEPS[size] > MAX_BUCKETS:
        size = "day"
    step = STEPS[size]
    start = _floor(first, size)
    count = min(int((_floor(last, size) - start) / step) + 1, MAX_BUCKETS)
    buckets: list[dict[str, int]] = [dict.fromkeys(SEVERITIES, 0) for _ in range(count)]
    for when, severity in points:
        index = min(int((_floor(when, size) - start) / step), count - 1)
        buckets[index][severity] = buckets[index].get(severity, 0) + 1
    return {
        "bucket": size,
        "buckets": [{"start": (start + i * step).isoformat(), "counts": counts} for i, counts in enumerate(buckets)],
    }
