"""Detections in, stored findings out: category escalation, severity, ATT&CK, suppression, incidents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from bindrift.findings.correlation import DEFAULT_WINDOW, correlate
from bindrift.findings.identity import finding_id, scope_key
from bindrift.findings.mitre import techniques
from bindrift.findings.response import response_steps
from bindrift.findings.severity import SeverityPolicy
from bindrift.findings.store_protocol import FindingStore
from bindrift.findings.suppression import PACKAGE_MANAGER_RULE, first_match, trusted_installer
from bindrift.schema.finding import MALICIOUS, Category, Detection, Finding, Indicator, StateChange

VIRUSTOTAL = "https://www.virustotal.com/gui/file/{}"
TITLES: dict[Category, str] = {
    "Suspicious binary": "Suspicious binary written",
    "Added Binary Executed": "A binary that is not in the image was executed",
    "Modified Binary Executed": "An image binary modified at run time was executed",
    "Added Malicious Binary Executed": "A known-malicious binary that is not in the image was executed",
    "Modified Malicious Binary Executed": "A known-malicious modification of an image binary was executed",
    "Added Library Loaded": "A library that is not in the image was loaded",
    "Fileless execution": "A program ran from memory, not from a file",
    "Coverage degraded": "Events were lost: detection coverage is degraded",
    "Prevention degraded": "An execution was allowed unchecked: no prevention decision within the deadline",
}


class FindingsPipeline:
    """Turns detections into findings and stores them."""

    def __init__(
        self,
        store: FindingStore,
        policy: SeverityPolicy | None = None,
        window: timedelta = DEFAULT_WINDOW,
        outbox: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.policy = policy or SeverityPolicy()
        self.window = window
        self.outbox = tuple(outbox)

    def process(self, detection: Detection, message_id: str = "") -> Finding:
        """Build, suppress or not, store and correlate the finding for `detection`; returns it as stored.
        `message_id` names the bus message that carried it: a message stored before is not counted again."""
        category: Category = detection.category
        if detection.intel and category in MALICIOUS:
            category = MALICIOUS[category]
        finding = Finding(
            id=finding_id(detection), category=category, severity=self.policy.severity(category, detection),
            title=TITLES[category], summary=_summary(category, detection), first_seen=detection.observed_at,
            last_seen=detection.observed_at, resource=detection.resource, file=detection.file,
            source=detection.source, process=detection.process, writer=detection.writer,
            indicator=Indicator(detection.file.sha256, VIRUSTOTAL.format(detection.file.sha256), list(detection.intel))
            if detection.file.sha256 else None,
            techniques=techniques(category, detection), evidence=list(detection.evidence),
        )  # fmt: skip
        self._suppress(finding, detection)
        # Workers sharing the bus may correlate findings of one container at once: each would drop the
        # other's finding from the incident it read.
        with self.store.scope_lock(scope_key(finding.resource)):
            correlate(self.store, finding, self.window)
            finding.response = response_steps(finding)
            return self.store.upsert_finding(finding, self.outbox, message_id)

    def _suppress(self, finding: Finding, detection: Detection) -> None:
        rule = first_match(self.store.suppression_rules(), detection, detection.observed_at)
        if rule is not None:
            finding.suppressed_by, reason = rule.id, rule.reason
        else:
            installer = trusted_installer(detection)
            if installer is None:
                return
            finding.suppressed_by = PACKAGE_MANAGER_RULE
            reason = f"written by the package manager {installer} during an install"
        finding.state = "muted"
        finding.state_history = [StateChange("muted", "bindrift", reason, detection.observed_at)]


def _summary(category: Category, detection: Detection) -> str:
    path = detection.file.path
    where = detection.resource.container_name or detection.resource.container_id[:12] or detection.resource.node
    text = f"{path} in {where or 'this host'}"
    if detection.writer is not None:
        writer = detection.writer.exe or detection.writer.comm
        text += f", written by {writer} (pid {detection.writer.pid})"
        if detection.writer.downloaded_by:
            text += f", downloaded by {detection.writer.downloaded_by}"
    if detection.intel:
        text += "; matches " + ", ".join(f"{m.name} ({m.source})" for m in detection.intel)
    checks = [c.check for c in detection.file.triage if c.severity not in ("info",)]
    if category == "Suspicious binary" and checks:
        text += "; " + ", ".join(checks)
    return text
