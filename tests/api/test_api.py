"""The REST API over a store filled by the real findings pipeline (scanner reports of real foreign and
manipulated binaries, and agent-shaped detections in a Kubernetes pod)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bindrift.analysis.triage import triage
from bindrift.cli.demo_binaries import write_samples
from bindrift.cli.scan_store import ScanFindings
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import Resource
from bindrift.sinks.api.app import create_app
from bindrift.sinks.api.auth import Principal, TokenSet
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore
from tests.detections import POD, SHA_B, T0, detection

ADMIN = "admin-secret-0123456789"
READ = "read-secret-0123456789ab"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
AS_READER = {"Authorization": f"Bearer {READ}"}


@pytest.fixture
def filled(store: SqlStore, tmp_path: Path, test_binaries: Path) -> SqlStore:
    """Scanner findings (an arm64 busybox and the demo's manipulated binaries) and three agent findings."""
    recorder = ScanFindings(store)
    recorder(triage(str(test_binaries / "busybox-static-arm64" / "bin" / "busybox")))
    for path in write_samples(tmp_path):
        recorder(triage(str(path)))
    pipeline = FindingsPipeline(store)
    pipeline.process(detection())
    pipeline.process(detection(minutes=5))  # a repeat: count 2
    pipeline.process(detection(minutes=90, category="Modified Binary Executed", file=detection().file.__class__(
        path="/usr/bin/ls", sha256=SHA_B, size=2000)))  # fmt: skip
    other = Resource(node="node-2", cluster="prod-us", namespace="ci", pod="runner-1", container_id="f" * 64,
                     container_name="build", image="registry.example/ci/runner:2", runtime="containerd")  # fmt: skip
    pipeline.process(detection(minutes=3 * 24 * 60, resource=other))
    return store


@pytest.fixture
def client(filled: SqlStore) -> Iterator[TestClient]:
    tokens = TokenSet({ADMIN: Principal("alice", "admin"), READ: Principal("bob", "read")})
    with TestClient(create_app(filled, tokens)) as test_client:
        yield test_client


def _items(client: TestClient, **params: str | int) -> dict[str, object]:
    response = client.get("/api/v1/findings", params=params, headers=AS_READER)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_reads_need_a_token_and_tokens_are_never_taken_from_the_url(client: TestClient) -> None:
    assert client.get("/api/v1/findings").status_code == 401
    assert client.get("/api/v1/findings", headers={"Authorization": "Bearer wrong-token-000000000"}).status_code == 401
    assert client.get("/api/v1/findings", params={"token": READ, "access_token": READ}).status_code == 401
    assert client.get("/api/v1/findings", headers={"Authorization": f"Basic {READ}"}).status_code == 401
    assert client.get("/api/v1/me", headers=AS_READER).json() == {"name": "bob", "role": "read"}
    assert client.get("/api/v1/me", headers=AS_ADMIN).json() == {"name": "alice", "role": "admin"}


def test_list_filters_sorting_and_pagination(client: TestClient) -> None:
    everything = _items(client, limit=500)
    assert everything["total"] == 9  # 6 scanner findings, 3 agent findings (the repeat merged)
    assert _items(client, category="Suspicious binary")["total"] == 6
    high = _items(client, severity="high", limit=500)
    # A scan finding takes its strongest triage check: the demo's RWX helper (rwx_segment medium) is medium.
    assert high["total"] == 4 and all(f["severity"] in ("high", "critical") for f in high["items"])  # type: ignore[union-attr]
    shop = _items(client, namespace="shop", pod="web-0")
    assert shop["total"] == 2
    assert {f["category"] for f in shop["items"]} == {"Added Binary Executed", "Modified Binary Executed"}  # type: ignore[union-attr,index]
    (repeat,) = [f for f in shop["items"] if f["category"] == "Added Binary Executed"]  # type: ignore[union-attr,index]
    assert repeat["count"] == 2 and repeat["resource"]["container_name"] == "app"
    assert repeat["process"]["args"] == ["/tmp/x", "--serve"] and repeat["writer"]["comm"] == "cp"
    assert repeat["indicator"]["virustotal_url"].endswith("/" + repeat["file"]["sha256"])
    assert _items(client, image="registry.example/ci/runner")["total"] == 1
    assert _items(client, cluster="prod-us", node="node-2")["total"] == 1
    assert _items(client, q="--SERVE")["total"] == 3  # free text in arguments, case-insensitive
    assert _items(client, q="dropbear")["total"] == 1
    window = _items(client, since=(T0 + timedelta(hours=1)).isoformat(), until=(T0 + timedelta(hours=2)).isoformat())
    assert [f["category"] for f in window["items"]] == ["Modified Binary Executed"]  # type: ignore[union-attr,index]
    by_count = _items(client, sort="-count", limit=1)
    assert by_count["items"][0]["count"] == 2 and by_count["limit"] == 1  # type: ignore[index]
    first, second = _items(client, limit=4, offset=0), _items(client, limit=4, offset=4)
    ids = [f["id"] for f in first["items"]] + [f["id"] for f in second["items"]]  # type: ignore[union-attr,index]
    assert len(set(ids)) == 8 and second["offset"] == 4
    assert client.get("/api/v1/findings", params={"severity": "bad"}, headers=AS_READER).status_code == 422
    assert client.get("/api/v1/findings", params={"sort": "path"}, headers=AS_READER).status_code == 422
    assert client.get("/api/v1/findings", params={"sort": "owner"}, headers=AS_READER).status_code == 422
    incidents = client.get("/api/v1/incidents", params={"sort": "-count", "limit": 1}, headers=AS_READER).json()
    assert incidents["total"] >= 2 and len(incidents["items"][0]["finding_ids"]) == max(
        len(i["finding_ids"])
        for i in client.get("/api/v1/incidents", params={"limit": 500}, headers=AS_READER).json()["items"]
    )
    refused = client.get("/api/v1/incidents", params={"sort": "category"}, headers=AS_READER)
    assert refused.status_code == 422 and "cannot sort incidents by 'category'" in refused.text
    assert client.get("/api/v1/findings", params={"limit": 100000}, headers=AS_READER).status_code == 422


def test_detail_incidents_and_evidence(client: TestClient) -> None:
    (added,) = _items(client, category="Added Binary Executed", namespace="shop")["items"]  # type: ignore[misc]
    detail = client.get(f"/api/v1/findings/{added['id']}", headers=AS_READER).json()
    assert detail["id"] == added["id"] and detail["techniques"] and detail["response"]
    assert any("kubectl" in step["command"] for step in detail["response"])
    assert client.get("/api/v1/findings/nope", headers=AS_READER).status_code == 404
    incidents = client.get("/api/v1/incidents", params={"namespace": "shop"}, headers=AS_READER).json()
    assert incidents["total"] == 1
    (incident,) = incidents["items"]
    assert incident["resource"]["pod"] == "web-0" and incident["severity"] == "medium"
    body = client.get(f"/api/v1/incidents/{incident['id']}", headers=AS_READER).json()
    assert [f["category"] for f in body["findings"]] == ["Added Binary Executed", "Modified Binary Executed"]
    assert body["findings"][0]["related"] == [body["findings"][1]["id"]]
    assert client.get("/api/v1/incidents", headers=AS_READER).json()["total"] == 3  # the pod, the CI pod, the node
    download = client.get(f"/api/v1/findings/{added['id']}/evidence", headers=AS_READER)
    assert download.headers["content-disposition"] == f'attachment; filename="bindrift-evidence-{added["id"]}.json"'
    bundle = download.json()
    assert bundle["file"]["sha256"] == added["file"]["sha256"] and bundle["writer"]["pid"] == 4200
    assert bundle["resource"]["namespace"] == POD.namespace


def test_state_changes_need_admin_and_record_who_when_why(client: TestClient) -> None:
    (finding,) = _items(client, q="dropbear")["items"]  # type: ignore[misc]
    url = f"/api/v1/findings/{finding['id']}/state"
    assert client.post(url, json={"state": "muted", "reason": "test"}, headers=AS_READER).status_code == 403
    assert client.post(url, json={"state": "muted", "reason": "test"}).status_code == 401
    assert client.post(url, json={"state": "gone", "reason": "x"}, headers=AS_ADMIN).status_code == 422
    assert client.post(url, json={"state": "muted", "reason": ""}, headers=AS_ADMIN).status_code == 422
    muted = client.post(url, json={"state": "muted", "reason": "lab sample"}, headers=AS_ADMIN)
    assert muted.status_code == 200 and muted.json()["state"] == "muted"
    reopened = client.post(url, json={"state": "active", "reason": "not a lab"}, headers=AS_ADMIN).json()
    history = [(c["state"], c["by"], c["reason"]) for c in reopened["state_history"]]
    assert history == [("muted", "alice", "lab sample"), ("active", "alice", "not a lab")]
    assert _items(client, state="muted")["total"] == 0 and _items(client, state="active")["total"] == 9
    assert client.post("/api/v1/findings/none/state", json={"state": "muted", "reason": "x"},
                       headers=AS_ADMIN).status_code == 404  # fmt: skip


def test_cross_site_requests_cannot_change_state(client: TestClient) -> None:
    (finding,) = _items(client, q="dropbear")["items"]  # type: ignore[misc]
    url = f"/api/v1/findings/{finding['id']}/state"
    body = {"state": "muted", "reason": "x"}
    evil = client.post(url, json=body, headers={**AS_ADMIN, "Origin": "http://evil.test"})
    assert evil.status_code == 403
    form = client.post(url, content="state=muted&reason=x", headers={**AS_ADMIN,
                       "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert form.status_code == 422
    same = client.post(url, json=body, headers={**AS_ADMIN, "Origin": "http://testserver"})
    assert same.status_code == 200
    assert client.get(f"/api/v1/findings/{finding['id']}", headers=AS_READER).json()["state"] == "muted"


def test_stats_and_timeline(client: TestClient) -> None:
    stats = client.get("/api/v1/stats", headers=AS_READER).json()
    assert stats["total"] == 9 and sum(stats["by_severity"].values()) == 9
    assert stats["by_category"]["Suspicious binary"] == 6 and stats["by_state"] == {"active": 9}
    timeline = client.get("/api/v1/stats", params={"namespace": "shop", "bucket": "hour"}, headers=AS_READER).json()
    buckets = timeline["timeline"]["buckets"]
    assert timeline["timeline"]["bucket"] == "hour" and len(buckets) == 2  # 12:00 and 13:30 → two hours
    assert buckets[0]["counts"]["low"] == 1 and buckets[1]["counts"]["medium"] == 1
    ci = client.get("/api/v1/stats", params={"cluster": "prod-us"}, headers=AS_READER).json()
    assert ci["total"] == 1 and ci["by_severity"] == {"low": 1}


def test_health_metrics_openapi_and_headers(client: TestClient) -> None:
    health = client.get("/healthz")
    assert health.json() == {"status": "ok"}
    assert "default-src 'none'" in health.headers["content-security-policy"]
    assert health.headers["x-content-type-options"] == "nosniff" and health.headers["x-frame-options"] == "DENY"
    client.get("/api/v1/findings", headers=AS_READER)
    metrics = client.get("/metrics", headers=AS_READER).text
    assert 'bindrift_stored_findings{severity="high"} 4.0' in metrics
    assert 'bindrift_stored_findings_by_state{state="active"} 9.0' in metrics
    assert 'bindrift_api_requests_total{method="GET",route="/api/v1/findings",status="200"} 1.0' in metrics
    spec = client.get("/api/v1/openapi.json", headers=AS_READER).json()
    assert {"Finding", "Incident", "Resource", "Evidence"} <= set(spec["components"]["schemas"])
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    paths = spec["paths"]
    assert {"/api/v1/findings", "/api/v1/findings/{finding_id}", "/api/v1/findings/{finding_id}/state",
            "/api/v1/incidents", "/api/v1/incidents/{incident_id}", "/api/v1/stats"} <= set(paths)  # fmt: skip
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    script_type = client.get("/static/app.js").headers["content-type"]
    assert script_type.startswith(("text/javascript", "application/javascript"))


def test_tokens_file_and_short_tokens(tmp_path: Path) -> None:
    from bindrift.sinks.api.auth import load_tokens, parse_tokens_file

    path = tmp_path / "tokens"
    path.write_text("# who may do what\nadmin carol c" + "x" * 20 + "\nread dave d" + "y" * 20 + "\n")
    path.chmod(0o600)
    tokens = load_tokens(path)
    assert tokens.authenticate("Bearer c" + "x" * 20) == Principal("carol", "admin")
    assert tokens.authenticate("bearer d" + "y" * 20) == Principal("dave", "read")
    assert tokens.authenticate("Bearer c" + "x" * 19) is None
    path.write_text("root eve secret-secret-secret\n")
    with pytest.raises(ValueError, match="tokens:1"):
        parse_tokens_file(path)
    with pytest.raises(ValueError, match="at least 16"):
        TokenSet({"short": Principal("x", "read")})


def test_captured_binary_handed_out_verified_to_admins_only(filled: SqlStore, tmp_path: Path,
                                                            test_binaries: Path) -> None:  # fmt: skip
    from bindrift.response.evidence import EvidenceStore

    (finding,) = filled.list_findings(FindingFilter(text="busybox-static-arm64"))
    original = test_binaries / "busybox-static-arm64" / "bin" / "busybox"
    captures = EvidenceStore(tmp_path / "evidence", filled)
    fd = os.open(original, os.O_RDONLY)
    try:
        blob = captures.capture(fd, finding.file.sha256)
    finally:
        os.close(fd)
    assert blob is not None
    record = captures.record(blob, finding)
    tokens = TokenSet({ADMIN: Principal("alice", "admin"), READ: Principal("bob", "read")})
    with TestClient(create_app(filled, tokens, captures)) as client:
        listed = client.get(f"/api/v1/findings/{finding.id}/captured", headers=AS_READER).json()
        assert [(r["id"], r["sha256"], r["size"]) for r in listed] == [(record.id, blob.sha256, blob.size)]
        bundle = client.get(f"/api/v1/findings/{finding.id}/evidence", headers=AS_READER).json()
        assert bundle["captured"][0]["id"] == record.id and bundle["actions"][0]["action"] == "capture"
        assert client.get(f"/api/v1/evidence/{record.id}", headers=AS_READER).status_code == 403
        got = client.get(f"/api/v1/evidence/{record.id}", headers=AS_ADMIN)
        assert got.status_code == 200 and got.content == original.read_bytes()
        assert hashlib.sha256(got.content).hexdigest() == finding.file.sha256 == got.headers["x-bindrift-sha256"]
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["content-disposition"] == f'attachment; filename="{blob.sha256}.bin"'
        assert client.get("/api/v1/evidence/ev-none", headers=AS_ADMIN).status_code == 404
        blob.stored.chmod(0o600)
        blob.stored.write_bytes(b"tampered")
        assert client.get(f"/api/v1/evidence/{record.id}", headers=AS_ADMIN).status_code == 409


def test_metrics_and_openapi_need_a_token_unless_opened(filled: SqlStore) -> None:
    tokens = TokenSet({ADMIN: Principal("alice", "admin"), READ: Principal("bob", "read")})
    with TestClient(create_app(filled, tokens)) as closed:
        for path in ("/metrics", "/api/v1/openapi.json"):
            refused = closed.get(path)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
            assert closed.get(path, headers=AS_READER).status_code == 200, path
        assert closed.get("/healthz").status_code == 200
        closed_spec = closed.get("/api/v1/openapi.json", headers=AS_READER).json()
    with TestClient(create_app(filled, tokens, open_routes=("metrics", "openapi"))) as opened:
        assert "bindrift_stored_findings" in opened.get("/metrics").text
        spec = opened.get("/api/v1/openapi.json").json()
    with pytest.raises(ValueError, match="cannot open docs"):
        create_app(filled, tokens, open_routes=("docs",))
    operations = {(path, method): op for path, item in spec["paths"].items() for method, op in item.items()}
    assert (
        operations[("/healthz", "get")]["security"] == [] and "401" not in operations[("/healthz", "get")]["responses"]
    )
    guarded = {key: op for key, op in operations.items() if op.get("security") != []}
    assert len(guarded) >= 12 and all("401" in op["responses"] for op in guarded.values())
    admin_only = {
        key for key, op in guarded.items() if "admin token" in op["responses"].get("403", {}).get("description", "")
    }
    assert admin_only == {("/api/v1/findings/{finding_id}/state", "post"), ("/api/v1/evidence/{evidence_id}", "get"),
                          ("/api/v1/incidents/{incident_id}/triage", "post"),
                          ("/api/v1/incidents/{incident_id}/state", "post")}  # fmt: skip
    assert operations[("/metrics", "get")]["security"] == [], "opened, and documented so"
    assert "401" in closed_spec["paths"]["/metrics"]["get"]["responses"], "closed by default, and documented so"


def test_incident_triage_title_owner_state_and_bulk_state(client: TestClient, filled: SqlStore) -> None:
    shop = client.get("/api/v1/incidents", params={"namespace": "shop"}, headers=AS_READER).json()
    (incident,) = shop["items"]
    triage = shop["triage"][incident["id"]]
    assert triage["title"] == "Modified Binary Executed: ls" and triage["scope"] == "container"
    assert triage["summary"] == ("Modified Binary Executed of /usr/bin/ls, written by /bin/busybox, run by /tmp/x, in "
                                 "pod shop/web-0 (app) on node node-1 and 1 more finding.")  # fmt: skip
    assert (triage["owner"], triage["state"], triage["findings_by_state"]) == ("", "new", {"active": 2})
    path = f"/api/v1/incidents/{incident['id']}"
    body = {"owner": "carol", "state": "investigating"}
    assert client.post(f"{path}/triage", json=body, headers=AS_READER).status_code == 403
    set_ = client.post(f"{path}/triage", json=body, headers=AS_ADMIN).json()
    assert (set_["owner"], set_["state"], set_["by"]) == ("carol", "investigating", "alice") and set_["at"]
    assert client.post(f"{path}/state", json={"state": "muted", "reason": "x"}, headers=AS_READER).status_code == 403
    assert client.post(f"{path}/state", json={"state": "muted"}, headers=AS_ADMIN).status_code == 422
    muted = client.post(f"{path}/state", json={"state": "muted", "reason": "known build step"}, headers=AS_ADMIN)
    assert sorted(muted.json()["changed"]) == sorted(incident["finding_ids"])
    again = client.post(f"{path}/state", json={"state": "muted", "reason": "twice"}, headers=AS_ADMIN).json()
    assert again["changed"] == [], "findings already muted are not changed again"
    shown = client.get(path, headers=AS_READER).json()
    assert shown["triage"]["findings_by_state"] == {"muted": 2} and shown["triage"]["owner"] == "carol"
    for finding in shown["findings"]:
        last = finding["state_history"][-1]
        assert (finding["state"], last["by"], last["reason"]) == ("muted", "alice", "known build step")
    assert client.post("/api/v1/incidents/nope/state", json={"state": "muted", "reason": "x"},
                       headers=AS_ADMIN).status_code == 404  # fmt: skip
    high = client.get("/api/v1/findings", params={"exact_severity": "high"}, headers=AS_READER).json()
    assert high["total"] >= 1 and {f["severity"] for f in high["items"]} == {"high"}
    from bindrift.sinks.store.incident_triage import purge_triage

    assert purge_triage(filled) == 0, "the incident is still stored"
    filled.purge(T0 + timedelta(days=365))
    assert purge_triage(filled) == 1 and client.get(path, headers=AS_READER).status_code == 404
