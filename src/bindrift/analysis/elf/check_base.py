"""What every ELF check shares: the per-file context and the finding constructor."""

from __future__ import annotations

from dataclasses import dataclass

from bindrift.analysis.elf.constants import ET_DYN, ET_EXEC
from bindrift.analysis.elf.reader import ElfImage, Phdr
from bindrift.schema.severity import Severity
from bindrift.schema.triage import CheckResult

MAX_LISTED = 3


@dataclass(slots=True)
class CheckContext:
    """Facts the checks share, computed once per file."""

    elf: ElfImage
    interpreters: list[str]
    executable_bit: bool | None
    # The PT_LOAD program headers, in table order.
    loads: list[Phdr]
    # The program-header checks that fired (`ElfImage.segment_hits`, compiled): check id → the PT_LOAD
    # indices (into `loads`), program header numbers and counts their messages name.
    hits: dict[str, tuple[int, ...]]

    @property
    def runnable_type(self) -> bool:
        return self.elf.type in (ET_EXEC, ET_DYN)


def finding(check: str, ref: str, severity: Severity, title: str, detail: str, **evidence: int | str) -> CheckResult:
    """A `header-anomaly` result with the raw field values as evidence."""
    return CheckResult(
        category="header-anomaly", check=check, ref=ref, severity=severity, title=title, detail=detail,
        evidence=evidence,
    )  # fmt: skip


def hexv(value: int) -> str:
    """`value` as the hex literal readelf would print."""
    return f"0x{value:x}"
