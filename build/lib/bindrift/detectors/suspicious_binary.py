"""*Suspicious binary*: an ELF whose triage shows an incompatible architecture, a tampered packer, a
manipulated header (medium or above) or packing. Used by the scanner and, on close-write, by the agent."""

from __future__ import annotations

from datetime import datetime

from bindrift.schema.finding import Detection, ElfSummary, Evidence, FileInfo, IntelMatch, ProcessInfo, Resource
from bindrift.schema.severity import at_least
from bindrift.schema.triage import CheckResult, TriageReport


def qualifying_checks(report: TriageReport) -> list[CheckResult]:
    """The triage findings that make a file a suspicious binary."""
    return [check for check in report.findings if _qualifies(check)]


def _qualifies(check: CheckResult) -> bool:
    if check.category == "incompatible-architecture":
        return check.check != "compat_only"
    if check.category == "header-anomaly":
        return at_least(check.severity, "medium")
    return check.category in ("tampered-packer", "packed")


def suspicious_binary(
    report: TriageReport,
    resource: Resource,
    observed_at: datetime,
    source: str,
    *,
    writer: ProcessInfo | None = None,
    intel: list[IntelMatch] | None = None,
) -> Detection | None:
    """The detection for `report`, or None when nothing about the file is suspicious."""
    checks = qualifying_checks(report)
    if not report.is_elf or not checks:
        return None
    elf = ElfSummary(
        arch=report.arch or "", bits=report.bits or 0, endian=report.endian or "", type=report.type or "",
        osabi=report.osabi or "", interpreter=report.interpreter, linking=report.linking or "", runs=report.runs or "",
    )  # fmt: skip
    evidence = [
        Evidence(kind=f"triage:{c.category}", summary=f"{c.title}: {c.detail}",
                 values={"check": c.check, "severity": c.severity, **{k: v for k, v in c.evidence.items()}})
        for c in checks
    ]  # fmt: skip
    return Detection(
        category="Suspicious binary", observed_at=observed_at, resource=resource, source=source, writer=writer,
        file=FileInfo(path=report.path, sha256=report.sha256 or "", size=report.size, elf=elf, triage=checks),
        evidence=evidence, intel=intel or [],
    )  # fmt: skip
