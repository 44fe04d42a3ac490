"""What the findings stage needs from a store (implemented by `bindrift.sinks.store.SqlStore`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bindrift.findings.correlation import Correlator
from bindrift.findings.suppression import SuppressionRule
from bindrift.schema.dead_letter import DeadLetter
from bindrift.schema.finding import Finding


class FindingStore(Protocol):
    """Durable findings, incidents and suppression rules."""

    def store_findings(
        self, findings: Sequence[Finding], message_ids: Sequence[str], correlator: Correlator,
        outbox: Sequence[str] = (), hydrate: bool = True,
    ) -> list[Finding]:  # fmt: skip
        """Store a batch in one transaction. Each finding is inserted, or merged into the row with its id: count
        added, span widened, state (with its history) kept, everything else from the latest occurrence. The
        incidents of the batch follow `correlator`; the findings (as stored) are queued for each export sink
        in `outbox` in the same transaction. A non-empty `message_ids[i]` is recorded with `findings[i]`, and
        one recorded before (or earlier in the batch) leaves the store unchanged. Returns, in input order, the
        findings as stored when `hydrate`, else nothing (the cheaper path of a worker)."""
        ...

    def get_finding(self, finding_id: str) -> Finding | None: ...

    def suppression_rules(self) -> list[SuppressionRule]: ...

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Set aside a detection that could not be stored (the same message again updates it)."""
        ...
