"""The FastAPI application: findings and incidents API, health, metrics and the Incident Explorer UI.

Reads need a `read` or `admin` token, state changes an `admin` token (bearer header only); only `/healthz`
and the UI's static files are open, and `/metrics` and the OpenAPI document when configured so. Cross-site
requests cannot change anything: the token is never in a cookie or a URL, a state change must be a JSON
body, and a request whose `Origin` is another site is refused. Every page is served with a strict
Content-Security-Policy, and the UI writes workload strings only as text, never as markup.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from importlib.resources import files
from typing import Annotated, Any, Literal

import msgspec
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from bindrift import __version__
from bindrift.response.evidence import EvidenceError, EvidenceStore
from bindrift.schema.finding import Finding, Incident
from bindrift.sinks.api.auth import Principal, TokenSet
from bindrift.sinks.api.filters import finding_filter, findings_filter, incidents_filter
from bindrift.sinks.api.incident_view import IncidentTriageView, view
from bindrift.sinks.api.metrics import ApiMetrics
from bindrift.sinks.api.timeline import Bucket, timeline
from bindrift.sinks.store.incident_triage import (
    IncidentState,
    get_triage,
    lead_findings,
    set_findings_state,
    set_triage,
)
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

STATIC = files("bindrift.sinks.api") / "static"
MAX_INCIDENT_FINDINGS = 500
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip
SCHEMA_REF = "#/components/schemas/{name}"
FINDING_SCHEMA = {"content": {"application/json": {"schema": {"$ref": SCHEMA_REF.format(name="Finding")}}}}
OPEN_CHOICES = ("metrics", "openapi")
OPENAPI_PATH = "/api/v1/openapi.json"
DESCRIPTION = (
    "Findings of suspicious binaries and container drift: explore, triage, export.\n\n"
    "Every operation needs a bearer token (`Authorization: Bearer …`) unless it says `security: []`: "
    "a missing or unknown token is answered 401, a read token on an admin operation 403, and a state change "
    "whose `Origin` is another site 403. Open: `/healthz`; `/metrics` and this document only when the server "
    "is started with `--open-route metrics` / `--open-route openapi`."
)
ERROR_SCHEMA = {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}
ERROR_CONTENT = {"application/json": {"schema": ERROR_SCHEMA}}


class StateRequest(BaseModel):
    """A state change: mute, resolve or reopen (active), and why."""

    state: Literal["active", "muted", "resolved"]
    reason: str = Field(min_length=1, max_length=2000)


class TriageRequest(BaseModel):
    """An incident's owner (empty: nobody) and state."""

    owner: str = Field(default="", max_length=255)
    state: IncidentState = "new"


class _Headers(BaseHTTPMiddleware):
    """Security headers on every response; cross-origin state changes refused; request metrics."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = time.perf_counter()
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD", "OPTIONS") and origin and not _same_origin(origin, request):
            response: Response = Response('{"detail":"cross-origin request refused"}', 403,
                                          media_type="application/json")  # fmt: skip
        else:
            response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        route = request.scope.get("route")
        self.metrics.observe(getattr(route, "path", "unmatched"), request.method, response.status_code,
                             time.perf_counter() - started)  # fmt: skip
        return response


def _same_origin(origin: str, request: Request) -> bool:
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def _json(value: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status, media_type="application/json")


def _principal(request: Request) -> Principal:
    tokens: TokenSet = request.app.state.tokens
    found = tokens.authenticate(request.headers.get("authorization"))
    if found is None:
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    return found


def _admin(who: Annotated[Principal, Depends(_principal)]) -> Principal:
    if who.role != "admin":
        raise HTTPException(403, "this needs an admin token")
    return who


Reader = Annotated[Principal, Depends(_principal)]
Admin = Annotated[Principal, Depends(_admin)]
Filter = Annotated[FindingFilter, Depends(finding_filter)]
FindingsFilter = Annotated[FindingFilter, Depends(findings_filter)]
IncidentsFilter = Annotated[FindingFilter, Depends(incidents_filter)]


def create_app(
    store: SqlStore, tokens: TokenSet, captures: EvidenceStore | None = None, open_routes: Collection[str] = ()
) -> FastAPI:
    """The API and UI over `store`, accepting `tokens`; captured binaries are handed out from `captures`.
    `open_routes` names what is served without a token besides `/healthz`: `metrics`, `openapi`."""
    unknown = set(open_routes) - set(OPEN_CHOICES)
    if unknown:
        raise ValueError(f"cannot open {', '.join(sorted(unknown))}; choose from {', '.join(OPEN_CHOICES)}")
    app = FastAPI(title="bindrift", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  description=DESCRIPTION)  # fmt: skip
    app.state.open_routes = frozenset(open_routes)
    guarded = {name: [] if name in open_routes else [Depends(_principal)] for name in OPEN_CHOICES}
    metrics = ApiMetrics(store)
    app.state.tokens = tokens
    app.add_middleware(_Headers, metrics=metrics)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness and readiness: the store answers."""
        try:
            store.count_findings(FindingFilter(limit=1))
        except Exception as exc:
            raise HTTPException(503, "the store does not answer") from exc
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"], response_class=Response, dependencies=guarded["metrics"],
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})  # fmt: skip
    def prometheus() -> Response:
        """Prometheus metrics: stored findings by severity and state, API requests and latency. Needs a token
        unless the server opened it (`--open-route metrics`)."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get(OPENAPI_PATH, include_in_schema=False, dependencies=guarded["openapi"])
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/v1/me", tags=["auth"])
    def me(who: Reader) -> dict[str, str]:
        """The name and role of the presented token."""
        return {"name": who.name, "role": who.role}

    @app.get("/api/v1/findings", tags=["findings"], response_class=Response,
             responses={200: {"content": {"application/json": {"schema": _page_schema("Finding")}}}})  # fmt: skip
    def list_findings(_who: Reader, where: FindingsFilter) -> Response:
        """Findings matching the filters, sorted and paginated; `total` counts all matches."""
        return _json({"total": store.count_findings(where), "limit": where.limit, "offset": where.offset,
                      "items": store.list_findings(where)})  # fmt: skip

    @app.get("/api/v1/findings/{finding_id}", tags=["findings"], response_class=Response,
             responses={200: FINDING_SCHEMA, 404: {"description": "no such finding"}})  # fmt: skip
    def get_finding(_who: Reader, finding_id: str) -> Response:
        """One finding with its state history."""
        return _json(_finding(store, finding_id))

    @app.post("/api/v1/findings/{finding_id}/state", tags=["findings"], response_class=Response,
              responses={200: FINDING_SCHEMA, 404: {"description": "no such finding"}})  # fmt: skip
    def set_state(who: Admin, finding_id: str, change: StateRequest) -> Response:
        """Mute, resolve or reopen a finding; recorded with who (the token's name), when and why."""
        updated = store.set_state(finding_id, change.state, who.name, change.reason)
        if updated is None:
            raise HTTPException(404, "no such finding")
        return _json(updated)

    @app.get("/api/v1/findings/{finding_id}/evidence", tags=["findings"], response_class=Response)
    def evidence(_who: Reader, finding_id: str) -> Response:
        """The evidence bundle of a finding as a JSON download: file, hashes, processes, verdict facts."""
        finding = _finding(store, finding_id)
        bundle = {
            "finding_id": finding.id, "category": finding.category, "severity": finding.severity,
            "resource": finding.resource, "file": finding.file, "indicator": finding.indicator,
            "process": finding.process, "writer": finding.writer, "evidence": finding.evidence,
            "techniques": finding.techniques, "first_seen": finding.first_seen, "last_seen": finding.last_seen,
            "actions": finding.actions, "captured": store.list_evidence(finding_id=finding.id),
        }  # fmt: skip
        response = _json(bundle)
        response.headers["Content-Disposition"] = f'attachment; filename="bindrift-evidence-{finding.id}.json"'
        return response

    @app.get("/api/v1/findings/{finding_id}/captured", tags=["evidence"], response_class=Response)
    def captured(_who: Reader, finding_id: str) -> Response:
        """The copies of the finding's binary captured at detection time (content-addressed, verified)."""
        _finding(store, finding_id)
        return _json(store.list_evidence(finding_id=finding_id))

    @app.get("/api/v1/evidence/{evidence_id}", tags=["evidence"], response_class=Response,
             responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "no such copy"},
                        409: {"description": "the stored copy no longer matches its SHA-256"}})  # fmt: skip
    def evidence_file(_who: Admin, evidence_id: str) -> Response:
        """Admin: a captured binary, checked against its recorded SHA-256 first; named by its hash, never by the
        attacker's file name, and sent as an opaque download."""
        if captures is None or store.get_evidence(evidence_id) is None:
            raise HTTPException(404, "no such evidence")
        try:
            record, path = captures.verified_path(evidence_id)
        except EvidenceError as exc:
            raise HTTPException(409, str(exc)) from exc
        return FileResponse(str(path), media_type="application/octet-stream", filename=f"{record.sha256}.bin",
                            headers={"X-Bindrift-SHA256": record.sha256})  # fmt: skip

    @app.get("/api/v1/incidents", tags=["incidents"], response_class=Response,
             responses={200: {"content": {"application/json": {"schema": _page_schema("Incident")}}}})  # fmt: skip
    def list_incidents(_who: Reader, where: IncidentsFilter) -> Response:
        """Incidents with at least one finding matching the filters, sorted over all of them (most recent first
        by default), then paginated; `triage` gives each one's title, summary, owner and state by incident
        id."""
        items, total = store.list_incidents(where)
        return _json({"total": total, "limit": where.limit, "offset": where.offset, "items": items,
                      "triage": _triage_views(store, items)})  # fmt: skip

    @app.get("/api/v1/incidents/{incident_id}", tags=["incidents"], response_class=Response)
    def get_incident(_who: Reader, incident_id: str) -> Response:
        """An incident with its findings (whole, with state history), oldest first."""
        incident = store.get_incident(incident_id)
        if incident is None:
            raise HTTPException(404, "no such incident")
        members = store.get_findings(incident.finding_ids[:MAX_INCIDENT_FINDINGS])
        findings = sorted(members, key=lambda f: (f.first_seen, f.id))
        return _json({"incident": incident, "findings": findings,
                      "triage": _triage_views(store, [incident])[incident.id]})  # fmt: skip

    @app.post("/api/v1/incidents/{incident_id}/triage", tags=["incidents"], response_class=Response,
              responses={200: {"content": {"application/json": {"schema": _view_schema()}}},
                         404: {"description": "no such incident", "content": ERROR_CONTENT}})  # fmt: skip
    def triage_incident(who: Admin, incident_id: str, change: TriageRequest) -> Response:
        """Admin: set the incident's owner and state (`new`, `investigating`, `closed`), recorded with who and
        when."""
        incident = _incident(store, incident_id)
        set_triage(store, incident.id, change.owner, change.state, who.name)
        return _json(_triage_views(store, [incident])[incident.id])

    @app.post("/api/v1/incidents/{incident_id}/state", tags=["incidents"], response_class=Response,
              responses={200: {"content": {"application/json": {"schema": _bulk_schema()}}},
                         404: {"description": "no such incident", "content": ERROR_CONTENT}})  # fmt: skip
    def set_incident_state(who: Admin, incident_id: str, change: StateRequest) -> Response:
        """Admin: mute, resolve or reopen all the incident's findings at once with one reason; each change is
        recorded on its finding with who (the token's name), when and why. `changed` lists the findings that
        were not in that state yet."""
        incident = _incident(store, incident_id)
        changed = set_findings_state(store, incident.finding_ids, change.state, who.name, change.reason)
        return _json({"incident_id": incident.id, "state": change.state, "changed": changed})

    @app.get("/api/v1/stats", tags=["findings"])
    def stats(
        _who: Reader, where: Filter, bucket: Annotated[Bucket, Query(description="Timeline bucket size")] = "auto"
    ) -> dict[str, object]:
        """Counts by severity, category and state, and findings over time by severity (first seen)."""
        return {
            "total": store.count_findings(where), "by_severity": store.counts_by("severity", where),
            "by_category": store.counts_by("category", where), "by_state": store.counts_by("state", where),
            "timeline": timeline(store.first_seen_by_severity(where), bucket),
        }  # fmt: skip

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _incident(store: SqlStore, incident_id: str) -> Incident:
    found = store.get_incident(incident_id)
    if found is None:
        raise HTTPException(404, "no such incident")
    return found


def _triage_views(store: SqlStore, incidents: list[Incident]) -> dict[str, IncidentTriageView]:
    ids = [incident.id for incident in incidents]
    leads, states = lead_findings(store, ids)
    triage = get_triage(store, ids)
    return {i.id: view(i, leads.get(i.id), triage[i.id], states.get(i.id, {})) for i in incidents}


def _finding(store: SqlStore, finding_id: str) -> Finding:
    found = store.get_finding(finding_id)
    if found is None:
        raise HTTPException(404, "no such finding")
    return found


def _page_schema(name: str) -> dict[str, object]:
    return {"type": "object", "required": ["total", "limit", "offset", "items"], "properties": {
        "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
        "items": {"type": "array", "items": {"$ref": SCHEMA_REF.format(name=name)}},
        "triage": {"type": "object", "additionalProperties": _view_schema()}}}  # fmt: skip


def _view_schema() -> dict[str, object]:
    return {"$ref": SCHEMA_REF.format(name="IncidentTriageView")}


def _bulk_schema() -> dict[str, object]:
    return {"type": "object", "required": ["incident_id", "state", "changed"], "properties": {
        "incident_id": {"type": "string"}, "state": {"type": "string", "enum": ["active", "muted", "resolved"]},
        "changed": {"type": "array", "items": {"type": "string"}}}}  # fmt: skip


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec, with the msgspec schemas of Finding and Incident as components, and per operation who may
    call it: `security: []` on open ones, 401 on those needing a token, 403 on admin ones and state changes."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    _, components = msgspec.json.schema_components([Finding, Incident, IncidentTriageView], ref_template=SCHEMA_REF)
    spec.setdefault("components", {}).setdefault("schemas", {}).update(components)
    spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    spec["security"] = [{"bearer": []}]
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        calls = _dependencies(route.dependant)
        for method in route.methods or ():
            operation = spec["paths"][route.path_format][method.lower()]
            responses = operation.setdefault("responses", {})
            if "{" in route.path_format:
                responses.setdefault("404", {"description": "no such record"})["content"] = ERROR_CONTENT
            if _principal not in calls:
                operation["security"] = []
                operation["description"] = operation.get("description", "") + "\n\nOpen: no token needed."
                continue
            responses["401"] = {"description": "no token, or one not accepted", "content": ERROR_CONTENT,
                                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}}  # fmt: skip
            if _admin in calls:
                responses["403"] = {"description": "a read token: this needs an admin token, or a cross-origin "
                                    "request", "content": ERROR_CONTENT}  # fmt: skip
            elif method != "GET":
                responses["403"] = {"description": "a cross-origin request", "content": ERROR_CONTENT}
    app.openapi_schema = spec
    return spec


def _dependencies(dependant: Dependant) -> set[Any]:
    """Every callable `dependant` depends on, however deep."""
    found: set[Any] = set()
    for sub in dependant.dependencies:
        found.add(sub.call)
        found |= _dependencies(sub)
    return found
