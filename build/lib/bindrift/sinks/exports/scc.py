"""Google SCC-style finding JSON (Container Threat Detection shape; int64 values as strings)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bindrift.schema.finding import Finding

SEVERITY = {"info": "LOW", "low": "LOW", "medium": "MEDIUM", "high": "HIGH", "critical": "CRITICAL"}
STATE = {"active": "ACTIVE", "muted": "ACTIVE", "resolved": "INACTIVE"}
TECHNIQUE_ENUMS = {
    "T1105": "INGRESS_TOOL_TRANSFER", "T1106": "NATIVE_API", "T1027": "OBFUSCATED_FILES_OR_INFO",
    "T1027.002": "SOFTWARE_PACKING", "T1554": "COMPROMISE_HOST_SOFTWARE_BINARY", "T1129": "SHARED_MODULES",
    "T1620": "REFLECTIVE_CODE_LOADING", "T1204.002": "MALICIOUS_FILE",
}  # fmt: skip
TACTIC_ENUMS = {"Command and Control": "COMMAND_AND_CONTROL", "Execution": "EXECUTION",
                "Defense Evasion": "DEFENSE_EVASION", "Persistence": "PERSISTENCE"}  # fmt: skip


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_scc(finding: Finding, parent: str = "organizations/0/sources/bindrift") -> dict[str, Any]:
    """The finding in the shape of an SCC finding, `sourceProperties` named as GCP names them."""
    r = finding.resource
    process = finding.process
    properties: dict[str, Any] = {
        "Pod_Namespace": r.namespace, "Pod_Name": r.pod, "Container_Name": r.container_name,
        "Container_Image_Uri": r.image, "VM_Instance_Name": r.node,
        "Process_Binary_Fullpath": finding.file.path,
        "Process_Arguments": process.args if process else [],
        "Container_Id": r.container_id, "Finding_Count": str(finding.count),
    }  # fmt: skip
    if finding.writer is not None:
        properties["Writer_Process"] = finding.writer.exe or finding.writer.comm
    body: dict[str, Any] = {
        "name": f"{parent}/findings/{finding.id}", "parent": parent,
        "resourceName": f"//container.googleapis.com/clusters/{r.cluster}" if r.cluster else f"//nodes/{r.node}",
        "state": STATE[finding.state], "mute": "MUTED" if finding.state == "muted" else "UNMUTED",
        "category": finding.category, "findingClass": "THREAT", "severity": SEVERITY[finding.severity],
        "eventTime": _time(finding.last_seen), "createTime": _time(finding.first_seen),
        "description": finding.summary, "sourceProperties": properties,
        "processes": [{"name": process.comm, "binary": {"path": finding.file.path, "size": str(finding.file.size),
                                                         "sha256": finding.file.sha256},
                       "args": process.args, "pid": str(process.pid), "parentPid": str(process.ppid)}]
        if process else [],
        "containers": [{"name": r.container_name, "uri": r.image, "imageId": r.image_digest}] if r.container_id else [],
        "kubernetes": {"pods": [{"ns": r.namespace, "name": r.pod}], "nodes": [{"name": r.node}]} if r.pod else {},
        "nextSteps": "\n".join(f"{s.title}: {s.command}" if s.command else s.title for s in finding.response),
    }  # fmt: skip
    if finding.techniques:
        body["mitreAttack"] = {
            "primaryTactic": TACTIC_ENUMS.get(finding.techniques[0].tactic, "TACTIC_UNSPECIFIED"),
            "primaryTechniques": [TECHNIQUE_ENUMS.get(t.id, t.id) for t in finding.techniques], "version": "18.0",
        }  # fmt: skip
    if finding.indicator is not None:
        body["externalUri"] = finding.indicator.virustotal_url
        body["indicator"] = {"signatures": [{"memoryHashSignature": {"binaryFamily": m.name}}
                                            for m in finding.indicator.matches]}  # fmt: skip
    return body
