"""What the findings stage needs from a store (implemented by `bindrift.sinks.store.SqlStore`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bindrift.findings.correlation import IncidentStore
from bindrift.findings.suppression import SuppressionRule
from bindrift.schema.finding import Finding


class FindingStore(IncidentStore, Protocol):
    """Durable findings, incidents and suppression rules."""

    def upsert_finding(self, finding: Finding, outbox: Sequence[str] = (), message_id: str = "") -> Finding:
        """Insert, or merge a repeat into the row with the same id: count added, last seen advanced, first
        seen and state (with its history) kept, everything else from the new occurrence; queue the stored
        finding for the export sinks in `outbox` in the same transaction. A non-empty bus `message_id` is
        recorded in that transaction too, and one recorded before leaves the store unchanged."""
        ...

    def get_finding(self, finding_id: str) -> Finding | None: ...

    def suppression_rules(self) -> list[SuppressionRule]: ...
