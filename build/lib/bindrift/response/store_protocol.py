"""What the response stage needs from a store (implemented by `bindrift.sinks.store.SqlStore`)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bindrift.schema.finding import Finding, ResponseAction
from bindrift.schema.response import EvidenceRecord


class ResponseStore(Protocol):
    """Evidence metadata and the audit log of actions."""

    def get_finding(self, finding_id: str) -> Finding | None: ...

    def add_evidence(self, record: EvidenceRecord) -> None: ...

    def get_evidence(self, evidence_id: str) -> EvidenceRecord | None: ...

    def list_evidence(self, finding_id: str = "", limit: int = 100) -> list[EvidenceRecord]: ...

    def purge_evidence(self, older_than: datetime) -> tuple[list[EvidenceRecord], set[str]]: ...

    def record_action(self, finding_id: str, action: ResponseAction) -> None: ...
