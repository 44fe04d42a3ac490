"""The FastAPI application: findings and incidents API, health, metrics and the Incident Explorer UI.

Reads need a `read` or `admin` token, state changes an `admin` token (bearer header only). Cross-site
requests cannot change anything: the token is never in a cookie or a URL, a state change must be a JSON
body, and a request whose `Origin` is another site is refused. Every page is served with a strict
Content-Security-Policy, and the UI writes workload strings only as text, never as markup.
"""

from __future__ import annotations

import time
from importlib.resources import files
from typing import Annotated, Any, Literal

import msgspec
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from bindrift import __version__
from bindrift.response.evidence import EvidenceError, EvidenceStore
from bindrift.schema.finding import Finding, Incident
from bindrift.sinks.api.auth import Principal, TokenSet
from bindrift.sinks.api.filters import finding_filter
from bindrift.sinks.api.metrics import ApiMetrics
from bindrift.sinks.api.timeline import Bucket, timeline
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

STATIC = files("bindrift.sinks.api") / "static"
MAX_INCIDENT_FINDINGS = 500
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip
SCHEMA_REF = "#/components/schemas/{name}"
FINDING_SCHEMA = {"content": {"application/json": {"schema": {"$ref": SCHEMA_REF.format(name="Finding")}}}}
DESCRIPTION = "Findings of suspicious binaries and container drift: explore, triage, export."


class StateRequest(BaseModel):
    """A state change: mute, resolve or reopen (active), and why."""

    state: Literal["active", "muted", "resolved"]
    reason: str = Field(min_length=1, max_length=2000)


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


def create_app(store: SqlStore, tokens: TokenSet, captures: EvidenceStore | None = None) -> FastAPI:
    """The API and UI over `store`, accepting `tokens`; captured binaries are handed out from `captures`."""
    app = FastAPI(title="bindrift", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/api/v1/openapi.json", description=DESCRIPTION)  # fmt: skip
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

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics: stored findings by severity and state, API requests and latency."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/api/v1/me", tags=["auth"])
    def me(who: Reader) -> dict[str, str]:
        """The name and role of the presented token."""
        return {"name": who.name, "role": who.role}

    @app.get("/api/v1/findings", tags=["findings"], response_class=Response,
             responses={200: {"content": {"application/json": {"schema": _page_schema("Finding")}}}})  # fmt: skip
    def list_findings(_who: Reader, where: Filter) -> Response:
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
    def list_incidents(_who: Reader, where: Filter) -> Response:
        """Incidents with at least one finding matching the filters, most recent first."""
        items, total = store.list_incidents(where)
        return _json({"total": total, "limit": where.limit, "offset": where.offset, "items": items})

    @app.get("/api/v1/incidents/{incident_id}", tags=["incidents"], response_class=Response)
    def get_incident(_who: Reader, incident_id: str) -> Response:
        """An incident with its findings (whole, with state history), oldest first."""
        incident = store.get_incident(incident_id)
        if incident is None:
            raise HTTPException(404, "no such incident")
        members = store.get_findings(incident.finding_ids[:MAX_INCIDENT_FINDINGS])
        findings = sorted(members, key=lambda f: (f.first_seen, f.id))
        return _json({"incident": incident, "findings": findings})

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


def _finding(store: SqlStore, finding_id: str) -> Finding:
    found = store.get_finding(finding_id)
    if found is None:
        raise HTTPException(404, "no such finding")
    return found


def _page_schema(name: str) -> dict[str, object]:
    return {"type": "object", "required": ["total", "limit", "offset", "items"], "properties": {
        "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
        "items": {"type": "array", "items": {"$ref": SCHEMA_REF.format(name=name)}}}}  # fmt: skip


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec, with the msgspec schemas of Finding and Incident as components."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    _, components = msgspec.json.schema_components([Finding, Incident], ref_template=SCHEMA_REF)
    spec.setdefault("components", {}).setdefault("schemas", {}).update(components)
    spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    spec["security"] = [{"bearer": []}]
    app.openapi_schema = spec
    return spec
