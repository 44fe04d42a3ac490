"""`bindrift scan --store`: suspicious binaries found by a scan become findings in the store, with
threat-intelligence escalation, suppression and the configured severities."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import cast

import msgspec

from bindrift.analysis.intel.intel_set import IntelSet, Kind
from bindrift.analysis.safe_open import open_nofollow
from bindrift.config import load_settings
from bindrift.detectors.suspicious_binary import suspicious_binary
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.findings.severity import SeverityPolicy
from bindrift.schema.finding import IntelMatch, Resource
from bindrift.schema.severity import Severity
from bindrift.schema.triage import TriageReport
from bindrift.sinks.store.sql_store import SqlStore

MAX_YARA_BYTES = 64 * 2**20


class ScanFindings:
    """Feeds scan reports to the findings pipeline; `stored` counts the findings written."""

    def __init__(self, store: SqlStore) -> None:
        settings = load_settings()
        self.pipeline = FindingsPipeline(store, SeverityPolicy(settings.severity))
        self.intel = IntelSet([(path, cast(Kind, kind)) for path, kind in store.intel_sources()])
        self.node = socket.gethostname()
        self.stored = 0

    def __call__(self, report: TriageReport) -> None:
        resource = Resource(node=self.node, image=report.image or "", image_digest=report.layer or "")
        intel = self._intel(report)
        if report.provenance == "packaged":
            if intel:
                report = uncapped(report)
            elif all(f.severity == "info" for f in report.findings):
                return  # the distribution's own file: its capped checks are no finding (tampering is never capped)
        detection = suspicious_binary(report, resource, datetime.now(UTC), "scan", intel=intel)
        if detection is not None:
            self.pipeline.process(detection)
            self.stored += 1

    def _intel(self, report: TriageReport) -> list[IntelMatch]:
        matches = self.intel.lookup(report.sha256) if report.sha256 else []
        if report.image is None and self.intel.has_rules:
            matches += self.intel.scan(_read(report.path))
        return matches


def uncapped(report: TriageReport) -> TriageReport:
    """`report` with the severities provenance capped restored: intelligence matched a packaged file."""
    findings = [
        msgspec.structs.replace(f, severity=cast(Severity, f.evidence["capped_from"]))
        if f.evidence.get("capped_by") == "provenance" else f
        for f in report.findings
    ]  # fmt: skip
    return msgspec.structs.replace(report, findings=findings)


def _read(path: str) -> bytes:
    try:
        fd = open_nofollow(path)
    except OSError:
        return b""
    try:
        return os.pread(fd, MAX_YARA_BYTES, 0)
    finally:
        os.close(fd)
