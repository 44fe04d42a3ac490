"""Counts a scan keeps while writing its reports."""

from __future__ import annotations

from typing import Protocol

import msgspec

from bindrift.schema.severity import SEVERITIES, Severity
from bindrift.schema.triage import TriageReport


class ScanSummary(msgspec.Struct):
    """ELF files reported, non-ELF files skipped, errors, and findings by severity (after filtering)."""

    elf_files: int = 0
    skipped_non_elf: int = 0
    errors: list[tuple[str, str]] = msgspec.field(default_factory=list)
    by_severity: dict[Severity, int] = msgspec.field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))

    @property
    def findings(self) -> int:
        return sum(self.by_severity.values())

    def line(self) -> str:
        """One-line human summary."""
        counts = ", ".join(f"{n} {s}" for s, n in reversed(self.by_severity.items()) if n)
        return (
            f"{self.elf_files} ELF file(s), {self.findings} finding(s){' (' + counts + ')' if counts else ''}; "
            f"{self.skipped_non_elf} non-ELF file(s) skipped; {len(self.errors)} error(s)"
        )


class ReportWriter(Protocol):
    """Receives each ELF's report (findings already filtered) and the summary at the end."""

    def write(self, report: TriageReport) -> None: ...

    def close(self, summary: ScanSummary) -> None: ...
