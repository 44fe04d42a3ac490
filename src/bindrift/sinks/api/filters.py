"""Query parameters of the list endpoints, turned into a store filter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, NoReturn, TypeVar

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError

from bindrift.schema.severity import parse_severity
from bindrift.sinks.store.sql_store import INCIDENT_SORTABLE, SORTABLE, FindingFilter
from bindrift.timespec import parse_when

MAX_PAGE = 500
T = TypeVar("T")


def finding_filter(
    category: Annotated[str, Query(max_length=64, description="Exact category")] = "",
    severity: Annotated[str, Query(max_length=16, description="Minimum severity: info … critical")] = "",
    exact_severity: Annotated[str, Query(pattern="^(|critical|high|medium|low|info)$", description="Exactly")] = "",
    state: Annotated[str, Query(pattern="^(|active|muted|resolved)$")] = "",
    cluster: Annotated[str, Query(max_length=255)] = "",
    namespace: Annotated[str, Query(max_length=255)] = "",
    pod: Annotated[str, Query(max_length=255)] = "",
    image: Annotated[str, Query(max_length=1024, description="Repository, repository:tag or reference")] = "",
    node: Annotated[str, Query(max_length=255)] = "",
    container_id: Annotated[str, Query(max_length=128)] = "",
    incident: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=64, description="Last seen after: 24h, 7d or an ISO time")] = "",
    until: Annotated[str, Query(max_length=64, description="Last seen before: 1h or an ISO time")] = "",
    q: Annotated[str, Query(max_length=512, description="Free text in path, arguments, names, summary")] = "",
    sort: Annotated[
        str,
        Query(
            max_length=32,
            description=(
                f"Field, '-' for descending. Findings: {', '.join(sorted(SORTABLE))}; incidents: "
                f"{', '.join(sorted(INCIDENT_SORTABLE))}"
            ),
        ),
    ] = "-last_seen",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> FindingFilter:
    """The filter named by the query string; 422 (in FastAPI's validation-error shape) for values that mean
    nothing."""
    min_severity = _parsed("severity", severity, parse_severity)
    since_at = _parsed("since", since, lambda text: parse_when(text, future=False))
    until_at = _parsed("until", until, lambda text: parse_when(text, future=False))
    return FindingFilter(
        category=category, min_severity=min_severity, severity=exact_severity, state=state, cluster=cluster,
        namespace=namespace, pod=pod, image=image, node=node, container_id=container_id, incident_id=incident,
        since=since_at, until=until_at, text=q, sort=sort, limit=limit, offset=offset,
    )  # fmt: skip


def findings_filter(where: Annotated[FindingFilter, Depends(finding_filter)]) -> FindingFilter:
    """The filter of a findings list: its sort names a finding field (422 otherwise)."""
    return _sorted_by(where, SORTABLE, "findings")


def incidents_filter(where: Annotated[FindingFilter, Depends(finding_filter)]) -> FindingFilter:
    """The filter of an incidents list: its sort names an incident field (422 otherwise)."""
    return _sorted_by(where, INCIDENT_SORTABLE, "incidents")


def _sorted_by(where: FindingFilter, sortable: set[str], what: str) -> FindingFilter:
    if where.sort.lstrip("-") not in sortable:
        _invalid("sort", where.sort, f"cannot sort {what} by {where.sort!r}; choose from {', '.join(sorted(sortable))}")
    return where


def _parsed(name: str, text: str, parse: Callable[[str], T]) -> T | None:
    if not text:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        _invalid(name, text, str(exc))


def _invalid(name: str, value: str, message: str) -> NoReturn:
    raise RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}])
