"""The agent's response wiring: the exec classifier prevention asks (drift, then triage and intelligence of
the drifted file only), and the evidence store, policies, prevention and responder built from options."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bindrift.analysis.intel.intel_set import IntelSet
from bindrift.analysis.triage import triage
from bindrift.context.containers import ContainerContext, running_containers
from bindrift.detectors.drift import classify_exec
from bindrift.detectors.suspicious_binary import suspicious_binary
from bindrift.findings.severity import SeverityPolicy
from bindrift.response.evidence import DEFAULT_MAX_BYTES, EvidenceStore
from bindrift.response.policy import load_policies
from bindrift.response.prevent import DEFAULT_DEADLINE_S, Prevention
from bindrift.response.responder import Responder
from bindrift.schema.finding import Detection, FileInfo, ProcessInfo, Resource
from bindrift.sinks.store.sql_store import SqlStore


def default_evidence_dir(store: SqlStore) -> Path:
    """`evidence/` beside an SQLite database file, else `$XDG_DATA_HOME/bindrift/evidence` (~/.local/share)."""
    database = store.engine.url.database if store.engine.dialect.name == "sqlite" else None
    if database and database != ":memory:":
        return Path(database).resolve().parent / "evidence"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "bindrift" / "evidence"


def container_root(container_id: str) -> str | None:
    """A running container's root as the node sees it."""
    container = running_containers().get(container_id)
    return f"/proc/{container.init_pid}/root" if container else None


class ExecClassifier:
    """For prevention: the drift detection of an executed file, or None for an image binary (the upper
    layer is checked before anything is hashed)."""

    def __init__(self, intel: IntelSet, resource: Callable[[ContainerContext], Resource]) -> None:
        self.intel = intel
        self.resource = resource

    def __call__(self, fd: int, path: str, pid: int, container: ContainerContext) -> Detection | None:
        verdict = classify_exec(fd, path, container.upper, container.lowers, container.started)
        if verdict.category is None:
            return None
        now, resource = datetime.now(UTC), self.resource(container)
        intel = self.intel.lookup(verdict.sha256)
        suspicious = suspicious_binary(triage(fd, label=path), resource, now, "agent")
        file = suspicious.file if suspicious else FileInfo(path=path, sha256=verdict.sha256, size=os.fstat(fd).st_size)
        return Detection(category=verdict.category, observed_at=now, resource=resource, file=file, source="agent",
                         process=ProcessInfo(pid=pid), evidence=[*verdict.evidence, *(suspicious.evidence
                         if suspicious else [])], intel=intel)  # fmt: skip


@dataclass(slots=True)
class AgentResponse:
    """What `bindrift watch` hands the agent for the response stage."""

    responder: Responder
    evidence: EvidenceStore | None
    prevention: Prevention[ContainerContext] | None


def build_response(store: SqlStore, intel: IntelSet, resource: Callable[[ContainerContext], Resource], *,
                   policy_file: str = "", evidence_dir: str = "", evidence_max_bytes: int = DEFAULT_MAX_BYTES,
                   evidence_retention_days: int = 30, deadline: float = DEFAULT_DEADLINE_S,
                   severity: SeverityPolicy | None = None) -> AgentResponse:  # fmt: skip
    """Evidence capture (unless `evidence_dir` is `off`), the policies of `policy_file`, and prevention when
    any policy is `prevent` or `block`. ValueError for a bad policy file."""
    policies = load_policies(policy_file) if policy_file else []
    evidence = None
    if evidence_dir != "off":
        evidence = EvidenceStore(evidence_dir or default_evidence_dir(store), store, max_bytes=evidence_max_bytes,
                                 retention=timedelta(days=evidence_retention_days))  # fmt: skip
    prevention = None
    if any(p.mode in ("prevent", "block") for p in policies):
        prevention = Prevention(policies, ExecClassifier(intel, resource), severity=severity, deadline=deadline,
                                capture=evidence.capture if evidence else None)  # fmt: skip
    responder = Responder(store, evidence=evidence, policies=policies, locate=container_root, runtime_env=os.environ)
    return AgentResponse(responder, evidence, prevention)
