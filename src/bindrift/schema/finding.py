"""Findings: what a detector saw (`Detection`), what bindrift tells people and SIEMs (`Finding`), and the
`Incident` grouping related findings on one container. Field meanings are documented in docs/findings.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from bindrift.schema.severity import Severity
from bindrift.schema.triage import CheckResult

Category = Literal[
    "Suspicious binary",
    "Added Binary Executed",
    "Modified Binary Executed",
    "Added Malicious Binary Executed",
    "Modified Malicious Binary Executed",
    "Added Library Loaded",
    "Added Script Executed",
    "Fileless execution",
    "Coverage degraded",
    "Prevention degraded",
]
# The escalated category for a known-bad hash or rule match, per base category.
MALICIOUS: dict[str, Category] = {
    "Added Binary Executed": "Added Malicious Binary Executed",
    "Modified Binary Executed": "Modified Malicious Binary Executed",
}
State = Literal["active", "muted", "resolved"]


class Resource(msgspec.Struct, frozen=True):
    """Where it happened. Empty strings where the runtime does not say (e.g. a plain host)."""

    node: str = ""
    cluster: str = ""
    namespace: str = ""
    pod: str = ""
    container_id: str = ""
    container_name: str = ""
    image: str = ""
    image_digest: str = ""
    runtime: str = ""


class ProcessRef(msgspec.Struct, frozen=True):
    """One ancestor in a process lineage."""

    pid: int
    comm: str = ""
    exe: str = ""
    args: list[str] = msgspec.field(default_factory=list)


class ProcessInfo(msgspec.Struct, frozen=True):
    """A process: the one that executed the binary, or the one that wrote it."""

    pid: int
    ppid: int = 0
    comm: str = ""
    exe: str = ""
    args: list[str] = msgspec.field(default_factory=list)
    user: str = ""
    uid: int = -1
    cwd: str = ""
    start_time: datetime | None = None
    lineage: list[ProcessRef] = msgspec.field(default_factory=list)
    # Set when the writer is a known ingress tool (curl, wget, tftp, scp, nc, a fetching one-liner).
    downloaded_by: str = ""
    gid: int = -1
    # Where this process context came from: "ebpf" (captured in the kernel at exec, fork and exit) or
    # "procfs" (read from /proc after the proc connector said the exec happened); "" when not known.
    context_source: str = ""


class ElfSummary(msgspec.Struct, frozen=True):
    """The identity part of a triage report."""

    arch: str
    bits: int
    endian: str
    type: str
    osabi: str = ""
    interpreter: str | None = None
    linking: str = ""
    runs: str = ""


class FileInfo(msgspec.Struct, frozen=True):
    """The binary a finding is about."""

    path: str
    sha256: str = ""
    size: int = 0
    elf: ElfSummary | None = None
    triage: list[CheckResult] = msgspec.field(default_factory=list)


class IntelMatch(msgspec.Struct, frozen=True):
    """A threat-intelligence hit: which source (list file, STIX bundle, YARA rule file) and which entry."""

    source: str
    kind: Literal["sha256", "stix", "yara"]
    name: str
    detail: str = ""


class Indicator(msgspec.Struct, frozen=True):
    """The file's hash as an indicator, with its VirusTotal link and any intelligence matches."""

    sha256: str
    virustotal_url: str
    matches: list[IntelMatch] = msgspec.field(default_factory=list)


class Technique(msgspec.Struct, frozen=True):
    """A MITRE ATT&CK technique."""

    id: str
    name: str
    tactic: str
    url: str


class Evidence(msgspec.Struct, frozen=True):
    """One fact behind the verdict, with its raw values."""

    kind: str
    summary: str
    values: dict[str, str | int | bool | None] = msgspec.field(default_factory=dict)


class ResponseStep(msgspec.Struct, frozen=True):
    """What to do next, with the real names filled in; `command` is shell-quoted."""

    title: str
    command: str = ""
    note: str = ""


class StateChange(msgspec.Struct, frozen=True):
    """Who changed a finding's state, when and why."""

    state: State
    by: str
    reason: str
    at: datetime


class ResponseAction(msgspec.Struct, frozen=True):
    """One response action taken on a finding (also kept in the audit log): evidence capture, kill, pause,
    stop, quarantine, restore, pod deletion, or an exec prevented. `ok` False with `detail` when it failed."""

    action: str
    by: str
    at: datetime
    ok: bool = True
    detail: str = ""
    values: dict[str, str | int | bool | None] = msgspec.field(default_factory=dict)


class Detection(msgspec.Struct, frozen=True):
    """What a detector (the runtime agent, an input adapter, the scanner) hands to the findings stage."""

    category: Category
    observed_at: datetime
    resource: Resource
    file: FileInfo
    source: str
    process: ProcessInfo | None = None
    writer: ProcessInfo | None = None
    evidence: list[Evidence] = msgspec.field(default_factory=list)
    intel: list[IntelMatch] = msgspec.field(default_factory=list)


class Sighting(msgspec.Struct):
    """One path a finding's content was seen at (a finding merges every copy of the same content): when,
    how often, who wrote it and what ran it there."""

    path: str
    first_seen: datetime
    last_seen: datetime
    count: int = 1
    writer: ProcessInfo | None = None
    process: ProcessInfo | None = None


class Finding(msgspec.Struct):
    """A finding as stored, exported and shown. One per (container or node, sha256, category family)."""

    id: str
    category: Category
    severity: Severity
    title: str
    summary: str
    first_seen: datetime
    last_seen: datetime
    resource: Resource
    file: FileInfo
    source: str
    count: int = 1
    state: State = "active"
    state_history: list[StateChange] = msgspec.field(default_factory=list)
    process: ProcessInfo | None = None
    writer: ProcessInfo | None = None
    indicator: Indicator | None = None
    techniques: list[Technique] = msgspec.field(default_factory=list)
    evidence: list[Evidence] = msgspec.field(default_factory=list)
    related: list[str] = msgspec.field(default_factory=list)
    incident_id: str = ""
    response: list[ResponseStep] = msgspec.field(default_factory=list)
    suppressed_by: str = ""
    actions: list[ResponseAction] = msgspec.field(default_factory=list)
    sightings: list[Sighting] = msgspec.field(default_factory=list)  # every path seen, oldest first


class Incident(msgspec.Struct):
    """Findings on the same container (and pod) within a time window."""

    id: str
    resource: Resource
    first_seen: datetime
    last_seen: datetime
    finding_ids: list[str] = msgspec.field(default_factory=list)
    severity: Severity = "info"
