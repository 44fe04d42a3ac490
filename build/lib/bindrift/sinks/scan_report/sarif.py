"""SARIF 2.1.0 output for code-scanning dashboards: one rule per check id, one result per finding."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import msgspec

from bindrift import __version__
from bindrift.schema.severity import Severity
from bindrift.schema.triage import CheckResult, TriageReport
from bindrift.sinks.scan_report.summary import ScanSummary

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/bindrift/bindrift"
LEVELS: dict[Severity, str] = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY: dict[Severity, str] = {
    "critical": "9.5",
    "high": "8.0",
    "medium": "5.5",
    "low": "3.0",
    "info": "0.0",
}


class SarifWriter:
    """Accumulates results and writes one SARIF log at the end."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._rules: dict[str, dict[str, Any]] = {}
        self._results: list[dict[str, Any]] = []

    def write(self, report: TriageReport) -> None:
        for finding in report.findings:
            rule_id = f"{finding.category}/{finding.check}"
            self._rules.setdefault(rule_id, _rule(rule_id, finding))
            self._results.append(_result(rule_id, report, finding))

    def close(self, summary: ScanSummary) -> None:
        rules = sorted(self._rules.values(), key=lambda r: str(r["id"]))
        index = {rule["id"]: i for i, rule in enumerate(rules)}
        for result in self._results:
            result["ruleIndex"] = index[result["ruleId"]]
        log = {
            "version": "2.1.0",
            "$schema": SCHEMA,
            "runs": [{
                "tool": {"driver": {"name": "bindrift", "version": __version__, "semanticVersion": __version__,
                                    "informationUri": INFORMATION_URI, "rules": rules}},
                "results": self._results,
                "invocations": [{
                    "executionSuccessful": not summary.errors,
                    "toolExecutionNotifications": [
                        {"level": "error", "message": {"text": f"{path}: {message}"}}
                        for path, message in summary.errors
                    ],
                }],
                "properties": {"elfFiles": summary.elf_files, "skippedNonElf": summary.skipped_non_elf},
            }],
        }  # fmt: skip
        self._out.write(msgspec.json.encode(log) + b"\n")
        self._out.flush()


def _rule(rule_id: str, finding: CheckResult) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": finding.check,
        "shortDescription": {"text": finding.title},
        "fullDescription": {"text": f"{finding.title} ({finding.category}, check {finding.ref or finding.check})."},
        "help": {"text": f"bindrift check {finding.check}: see docs/checks.md in the bindrift repository."},
        "defaultConfiguration": {"level": LEVELS[finding.severity]},
        "properties": {
            "tags": ["security", finding.category],
            "security-severity": SECURITY_SEVERITY[finding.severity],
        },
    }


def _uri(report: TriageReport) -> str:
    if report.image:
        return f"oci:{quote(report.image)}!{quote(report.path)}"
    return Path(os.path.abspath(report.path)).as_uri()


def _result(rule_id: str, report: TriageReport, finding: CheckResult) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "security-severity": SECURITY_SEVERITY[finding.severity],
        "severity": finding.severity,
        "arch": report.arch,
        "evidence": finding.evidence,
    }
    if report.image:
        properties.update(image=report.image, layer=report.layer)
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "level": LEVELS[finding.severity],
        "message": {"text": f"{report.path}: {finding.detail}"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(report)}}}],
        "properties": properties,
    }
    if report.sha256:
        result["partialFingerprints"] = {"sha256/v1": report.sha256}
    return result
