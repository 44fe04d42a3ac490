"""OCSF 1.8.0 Detection Finding (class 2004) for a bindrift finding."""

from __future__ import annotations

import posixpath
from typing import Any

from bindrift import __version__
from bindrift.findings.mitre import TACTIC_IDS
from bindrift.schema.finding import Finding, ProcessInfo
from bindrift.schema.severity import Severity

OCSF_VERSION = "1.8.0"
ATTACK_VERSION = "18.0"
SEVERITY_ID: dict[Severity, int] = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
STATUS_ID = {"active": 1, "muted": 3, "resolved": 4}
ANALYTICS = {
    "Suspicious binary": "BD-SUSPICIOUS-001", "Added Binary Executed": "BD-DRIFT-001",
    "Modified Binary Executed": "BD-DRIFT-002", "Added Malicious Binary Executed": "BD-DRIFT-003",
    "Modified Malicious Binary Executed": "BD-DRIFT-004", "Added Library Loaded": "BD-DRIFT-005",
    "Fileless execution": "BD-FILELESS-001", "Coverage degraded": "BD-COVERAGE-001",
    "Prevention degraded": "BD-PREVENTION-001",
}  # fmt: skip


def _ms(finding_time: Any) -> int:
    return int(finding_time.timestamp() * 1000)


def _file(path: str, sha256: str, size: int) -> dict[str, Any]:
    file: dict[str, Any] = {"name": posixpath.basename(path) or path, "path": path, "type_id": 1}
    if size:
        file["size"] = size
    if sha256:
        file["hashes"] = [{"algorithm_id": 3, "algorithm": "SHA-256", "value": sha256}]
    return file


def _process(process: ProcessInfo) -> dict[str, Any]:
    obj: dict[str, Any] = {"pid": process.pid, "name": process.comm or posixpath.basename(process.exe)}
    if process.args:
        obj["cmd_line"] = " ".join(process.args)
    if process.exe:
        obj["file"] = _file(process.exe, "", 0)
    if process.user or process.uid >= 0:
        obj["user"] = {"name": process.user, "uid": str(process.uid)}
    if process.lineage:
        obj["lineage"] = [p.exe or p.comm for p in process.lineage]
    if process.cwd:
        obj["working_directory"] = process.cwd
    return obj


def to_ocsf(finding: Finding, activity_id: int = 1) -> dict[str, Any]:
    """The Detection Finding event; `activity_id` 1 creates, 2 updates (re-grade), 3 closes."""
    r = finding.resource
    evidence: dict[str, Any] = {"file": _file(finding.file.path, finding.file.sha256, finding.file.size),
                                "verdict_id": 4}  # fmt: skip
    if finding.process is not None:
        evidence["process"] = _process(finding.process) | {"file": evidence["file"]}
    if finding.writer is not None:
        evidence["actor"] = {"process": _process(finding.writer)}
    if r.container_id or r.container_name:
        image = r.image.split("@", 1)[0]
        name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        evidence["container"] = {
            "uid": r.container_id, "name": r.container_name, "runtime": r.runtime,
            "image": {"uid": r.image_digest or r.image, "name": name, "tag": tag},
        } | ({"orchestrator": "Kubernetes"} if r.pod else {})  # fmt: skip
    event: dict[str, Any] = {
        "activity_id": activity_id, "category_uid": 2, "class_uid": 2004, "type_uid": 200400 + activity_id,
        "severity_id": SEVERITY_ID[finding.severity], "status_id": STATUS_ID[finding.state], "confidence_id": 3,
        "is_alert": finding.state == "active", "time": _ms(finding.last_seen),
        "start_time": _ms(finding.first_seen), "end_time": _ms(finding.last_seen), "count": finding.count,
        "message": finding.summary,
        "metadata": {"version": OCSF_VERSION, "profiles": ["container", "host"],
                     "product": {"name": "bindrift", "vendor_name": "bindrift", "version": __version__}},
        "finding_info": {
            "uid": finding.id, "title": finding.category, "desc": finding.summary, "types": [finding.category],
            "first_seen_time": _ms(finding.first_seen), "last_seen_time": _ms(finding.last_seen),
            "analytic": {"uid": ANALYTICS[finding.category], "name": finding.category, "type_id": 1},
            "attacks": [{"version": ATTACK_VERSION, "tactic": {"uid": TACTIC_IDS.get(t.tactic, ""), "name": t.tactic},
                         "technique": {"uid": t.id.split(".")[0], "name": t.name.split(":")[0]}}
                        | ({"sub_technique": {"uid": t.id, "name": t.name}} if "." in t.id else {})
                        for t in finding.techniques],
            "related_events": [{"uid": uid} for uid in finding.related],
        },
        "evidences": [evidence],
        "device": {"hostname": r.node, "type_id": 6},
    }  # fmt: skip
    if r.pod:
        event["resources"] = [{"type": "Kubernetes Pod", "name": r.pod, "namespace": r.namespace,
                               "group": {"name": r.cluster}, "role_id": 1}]  # fmt: skip
    if finding.indicator is not None:
        event["enrichments"] = [{"name": "virustotal", "value": finding.indicator.sha256, "data": {},
                                 "provider": "VirusTotal", "src_url": finding.indicator.virustotal_url}]  # fmt: skip
        if finding.indicator.matches:
            event["malware"] = [{"name": m.name, "classification_ids": [0], "provider": m.source}
                                for m in finding.indicator.matches]  # fmt: skip
    if finding.response:
        event["remediation"] = {"desc": "; ".join(s.title for s in finding.response)}
    return event
