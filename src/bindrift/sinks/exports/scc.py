"""Findings as Security Command Center v1 `Finding` resources (int64 values as strings, as in its REST JSON).

Only what bindrift knows is written: an unknown size, hash or parent pid is left out rather than sent as
zero or empty. The shape is checked against the securitycenter v1 discovery document (tests/exports).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from bindrift.config import SccSettings
from bindrift.schema.finding import Finding, ProcessInfo, Resource

SEVERITY = {"info": "LOW", "low": "LOW", "medium": "MEDIUM", "high": "HIGH", "critical": "CRITICAL"}
STATE = {"active": "ACTIVE", "muted": "ACTIVE", "resolved": "INACTIVE"}
# bindrift's gaps in its own coverage are what SCC reports about its detectors as SCC_ERROR findings.
FINDING_CLASS = {"Coverage degraded": "SCC_ERROR", "Prevention degraded": "SCC_ERROR"}
# ATT&CK ids to SCC's technique enum. SCC has no sub-technique for software packing (T1027.002) or a
# malicious file (T1204.002): their parent techniques stand for them.
TECHNIQUE_ENUMS = {
    "T1105": "INGRESS_TOOL_TRANSFER", "T1106": "NATIVE_API", "T1027": "OBFUSCATED_FILES_OR_INFO",
    "T1027.002": "OBFUSCATED_FILES_OR_INFO", "T1554": "COMPROMISE_HOST_SOFTWARE_BINARY", "T1129": "SHARED_MODULES",
    "T1620": "REFLECTIVE_CODE_LOADING", "T1204": "USER_EXECUTION", "T1204.002": "USER_EXECUTION",
    "T1059": "COMMAND_AND_SCRIPTING_INTERPRETER", "T1059.004": "UNIX_SHELL", "T1036": "MASQUERADING",
    "T1562.001": "DISABLE_OR_MODIFY_TOOLS",
}  # fmt: skip
TACTIC_ENUMS = {"Command and Control": "COMMAND_AND_CONTROL", "Execution": "EXECUTION",
                "Defense Evasion": "DEFENSE_EVASION", "Persistence": "PERSISTENCE"}  # fmt: skip
EXECUTED = {"Added Binary Executed", "Modified Binary Executed", "Added Malicious Binary Executed",
            "Modified Malicious Binary Executed", "Added Script Executed"}  # fmt: skip
URI_SCHEMES = ("http://", "https://", "ftp://", "ftps://", "tftp://", "scp://", "sftp://")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _seg(value: str) -> str:
    """One path segment of a resource name: a workload string cannot add segments of its own."""
    return quote(value, safe="")


def resource_name(r: Resource, target: SccSettings) -> str:
    """The finding's resource: the GKE cluster's full name when project, location and cluster are known,
    else the node's (a Compute Engine instance when project and location are, else `//bindrift/…`)."""
    if target.project and target.location and r.cluster:
        return (f"//container.googleapis.com/projects/{_seg(target.project)}/locations/{_seg(target.location)}"
                f"/clusters/{_seg(r.cluster)}")  # fmt: skip
    return node_name(r, target)


def node_name(r: Resource, target: SccSettings) -> str:
    """The node's full name: `//compute.googleapis.com/projects/P/zones/L/instances/NODE` when project and
    location are configured, otherwise `//bindrift/clusters/CLUSTER/nodes/NODE` (or `//bindrift/nodes/NODE`)."""
    if target.project and target.location:
        return (f"//compute.googleapis.com/projects/{_seg(target.project)}/zones/{_seg(target.location)}"
                f"/instances/{_seg(r.node)}")  # fmt: skip
    if r.cluster:
        return f"//bindrift/clusters/{_seg(r.cluster)}/nodes/{_seg(r.node)}"
    return f"//bindrift/nodes/{_seg(r.node)}"


def _known(**values: object) -> dict[str, Any]:
    """The items whose value is known (not empty, not None)."""
    return {k: v for k, v in values.items() if v not in ("", None, [], {})}


def _file(finding: Finding) -> dict[str, Any]:
    f = finding.file
    return _known(path=f.path, sha256=f.sha256, size=str(f.size) if f.size > 0 else None)


def _process(finding: Finding, process: ProcessInfo, *, runs_file: bool) -> dict[str, Any]:
    """A process as SCC's `Process`: its binary is the finding's file only when this process runs it."""
    binary = _file(finding) if runs_file else _known(path=process.exe)
    library = finding.category == "Added Library Loaded" and process is finding.process
    return _known(
        name=process.comm or process.exe.rsplit("/", 1)[-1], binary=binary,
        libraries=[_file(finding)] if library else None, args=list(process.args),
        pid=str(process.pid) if process.pid > 0 else None,
        parentPid=str(process.ppid) if process.ppid > 0 else None,
        userId=str(process.uid) if process.uid >= 0 else None,
    )  # fmt: skip


def _processes(finding: Finding) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if finding.process is not None:
        runs = finding.category in EXECUTED or finding.process.exe == finding.file.path
        out.append(_process(finding, finding.process, runs_file=runs))
    writer = finding.writer
    if writer is not None and (finding.process is None or writer.pid != finding.process.pid):
        out.append(_process(finding, writer, runs_file=False))
    return out


def download_uris(finding: Finding) -> list[str]:
    """URIs in the arguments of a writer that bindrift saw downloading (curl, wget, tftp, …)."""
    writer = finding.writer
    if writer is None or not writer.downloaded_by:
        return []
    return sorted({arg for arg in writer.args if arg.lower().startswith(URI_SCHEMES)})


def _indicator(finding: Finding) -> dict[str, Any]:
    """The file's hash as a file signature (with the family of each intelligence match), YARA matches as
    rules, and the URIs, hosts and addresses it was downloaded from."""
    signatures: list[dict[str, Any]] = []
    sha256 = finding.file.sha256
    matches = finding.indicator.matches if finding.indicator is not None else []
    families = sorted({m.name for m in matches if m.kind != "yara"}) or ([""] if sha256 else [])
    for family in families:
        detection = [{"binary": sha256, "percentPagesMatched": 100.0}] if sha256 else []
        signatures.append({"signatureType": "SIGNATURE_TYPE_FILE",
                           "memoryHashSignature": _known(binaryFamily=family, detections=detection)})  # fmt: skip
    signatures += [{"signatureType": "SIGNATURE_TYPE_FILE", "yaraRuleSignature": {"yaraRule": m.name}}
                   for m in matches if m.kind == "yara"]  # fmt: skip
    uris = download_uris(finding)
    hosts = {urlsplit(u).hostname or "" for u in uris} - {""}
    return _known(signatures=signatures, uris=uris, ipAddresses=sorted(h for h in hosts if _IPV4.fullmatch(h)),
                  domains=sorted(h for h in hosts if not _IPV4.fullmatch(h)))  # fmt: skip


def _mitre(finding: Finding) -> dict[str, Any]:
    techniques = list(dict.fromkeys(TECHNIQUE_ENUMS[t.id] for t in finding.techniques if t.id in TECHNIQUE_ENUMS))
    tactics = list(dict.fromkeys(TACTIC_ENUMS[t.tactic] for t in finding.techniques if t.tactic in TACTIC_ENUMS))
    return _known(primaryTactic=tactics[0] if tactics else None, primaryTechniques=techniques,
                  additionalTactics=tactics[1:], version="18.0" if techniques else None)  # fmt: skip


def to_scc(finding: Finding, target: SccSettings | None = None) -> dict[str, Any]:
    """The finding as an SCC v1 Finding, `sourceProperties` named as Container Threat Detection names them."""
    target = target or SccSettings()
    r = finding.resource
    process = finding.process
    properties: dict[str, Any] = _known(
        Pod_Namespace=r.namespace, Pod_Name=r.pod, Container_Name=r.container_name, Container_Image_Uri=r.image,
        VM_Instance_Name=r.node, Process_Binary_Fullpath=finding.file.path,
        Process_Arguments=list(process.args) if process else None, Container_Id=r.container_id,
        Finding_Count=str(finding.count), Source=finding.source,
        VirusTotal_Url=finding.indicator.virustotal_url if finding.indicator else None,
        Writer_Process=(finding.writer.exe or finding.writer.comm) if finding.writer else None,
    )  # fmt: skip
    container = _known(name=r.container_name, uri=r.image, imageId=r.image_digest)
    body: dict[str, Any] = {
        "name": f"{target.parent}/findings/{finding.id}", "parent": target.parent,
        "resourceName": resource_name(r, target), "state": STATE[finding.state],
        "mute": "MUTED" if finding.state == "muted" else "UNMUTED", "category": finding.category,
        "findingClass": FINDING_CLASS.get(finding.category, "THREAT"), "severity": SEVERITY[finding.severity],
        "eventTime": _time(finding.last_seen), "createTime": _time(finding.first_seen),
        "description": finding.summary, "sourceProperties": properties,
    }  # fmt: skip
    if finding.file.path:
        body["files"] = [_file(finding)]
    if processes := _processes(finding):
        body["processes"] = processes
    if r.container_id:
        body["containers"] = [container]
    if r.pod or r.cluster:
        pods = [_known(ns=r.namespace, name=r.pod, containers=[container] if r.container_id else None)]
        body["kubernetes"] = _known(pods=pods if r.pod else None, nodes=[{"name": node_name(r, target)}])
    if indicator := _indicator(finding):
        body["indicator"] = indicator
    if mitre := _mitre(finding):
        body["mitreAttack"] = mitre
    if target.explorer_url:
        body["externalUri"] = f"{target.explorer_url.rstrip('/')}/#/finding/{quote(finding.id, safe='')}"
    if finding.response:
        body["nextSteps"] = "\n".join(f"{s.title}: {s.command}" if s.command else s.title for s in finding.response)
    return body
