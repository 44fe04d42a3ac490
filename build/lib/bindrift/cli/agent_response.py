"""The agent's response wiring: the evidence store, policies, prevention process and responder built from
the options of `bindrift watch`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bindrift.cli.prevent_process import PreventionProcess
from bindrift.config import data_dir
from bindrift.context.containers import running_containers
from bindrift.response.evidence import DEFAULT_MAX_BYTES, EvidenceStore
from bindrift.response.policy import load_policies
from bindrift.response.prevent import DEFAULT_DEADLINE_S
from bindrift.response.responder import Responder
from bindrift.schema.finding import Resource
from bindrift.schema.severity import Severity
from bindrift.sinks.store.sql_store import SqlStore


def default_evidence_dir(store: SqlStore) -> Path:
    """`evidence/` beside an SQLite database file, else `$XDG_DATA_HOME/bindrift/evidence` (~/.local/share)."""
    database = store.engine.url.database if store.engine.dialect.name == "sqlite" else None
    if database and database != ":memory:":
        return Path(database).resolve().parent / "evidence"
    return data_dir() / "evidence"


def container_root(container_id: str) -> str | None:
    """A running container's root as the node sees it."""
    container = running_containers().get(container_id)
    return f"/proc/{container.init_pid}/root" if container else None


@dataclass(slots=True)
class AgentResponse:
    """What `bindrift watch` hands the agent for the response stage."""

    responder: Responder
    evidence: EvidenceStore | None
    prevention: PreventionProcess | None


def build_response(store: SqlStore, node: Resource, *, policy_file: str = "", evidence_dir: str = "",
                   evidence_max_bytes: int = DEFAULT_MAX_BYTES, evidence_retention_days: int = 30,
                   deadline: float = DEFAULT_DEADLINE_S,
                   severity: Mapping[str, Severity] | None = None) -> AgentResponse:  # fmt: skip
    """Evidence capture (unless `evidence_dir` is `off`), the policies of `policy_file`, and prevention when
    any policy is `prevent` or `block` (in a process of its own). ValueError for a bad policy file."""
    policies = load_policies(policy_file) if policy_file else []
    evidence = None
    if evidence_dir != "off":
        evidence = EvidenceStore(evidence_dir or default_evidence_dir(store), store, max_bytes=evidence_max_bytes,
                                 retention=timedelta(days=evidence_retention_days))  # fmt: skip
        evidence.purge()  # retention, applied at every start of the agent
    prevention = None
    if any(p.mode in ("prevent", "block") for p in policies):
        prevention = PreventionProcess(policies, intel=store.intel_sources(), severity=severity or {},
                                       deadline=deadline, node=node)  # fmt: skip
    responder = Responder(store, evidence=evidence, policies=policies, locate=container_root, runtime_env=os.environ)
    return AgentResponse(responder, evidence, prevention)
