"""Detections in, stored findings out: category escalation, severity, ATT&CK, suppression, incidents."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta

from bindrift.findings.correlation import DEFAULT_WINDOW, Correlator
from bindrift.findings.identity import finding_id
from bindrift.findings.mitre import techniques
from bindrift.findings.severity import SeverityPolicy
from bindrift.findings.store_protocol import FindingStore
from bindrift.findings.suppression import PACKAGE_MANAGER_RULE, SuppressionRule, first_match, trusted_installer
from bindrift.schema.bounds import bound_detection
from bindrift.schema.finding import MALICIOUS, Category, Detection, Finding, Indicator, StateChange

MAX_BATCH = 1024  # detections stored in one transaction (its statements, locks and memory are bounded by it)
VIRUSTOTAL = "https://www.virustotal.com/gui/file/{}"
TITLES: dict[Category, str] = {
    "Suspicious binary": "Suspicious binary written",
    "Added Binary Executed": "A binary that is not in the image was executed",
    "Modified Binary Executed": "An image binary modified at run time was executed",
    "Added Malicious Binary Executed": "A known-malicious binary that is not in the image was executed",
    "Modified Malicious Binary Executed": "A known-malicious modification of an image binary was executed",
    "Added Library Loaded": "A library that is not in the image was loaded",
    "Fileless execution": "A program ran from memory, not from a file",
    "Added Script Executed": "A script that is not in the image was run through its interpreter",
    "Coverage degraded": "Events were lost: detection coverage is degraded",
    "Prevention degraded": "An execution was allowed unchecked: no prevention decision within the deadline",
}
# A scan sees files at rest, never their write.
SCAN_TITLES: dict[Category, str] = {"Suspicious binary": "Suspicious binary found"}


class FindingsPipeline:
    """Turns detections into findings and stores them, a batch at a time (one transaction per batch)."""

    def __init__(
        self,
        store: FindingStore,
        policy: SeverityPolicy | None = None,
        window: timedelta = DEFAULT_WINDOW,
        outbox: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.policy = policy or SeverityPolicy()
        self.correlator = Correlator(window)
        self.outbox = tuple(outbox)

    def process(self, detection: Detection, message_id: str = "") -> Finding:
        """Build, suppress or not, store and correlate the finding for `detection`; returns it as stored.
        `message_id` names the bus message that carried it: a message stored before is not counted again."""
        return self.process_batch([detection], [message_id])[0]

    def process_batch(self, detections: Sequence[Detection], message_ids: Sequence[str] = ()) -> list[Finding]:
        """`process` for many detections, one transaction per `MAX_BATCH`; returns the findings as stored, in
        input order."""
        stored: list[Finding] = []
        for chunk, ids in _chunks(detections, message_ids):
            stored += self.store.store_findings(self._findings(chunk), ids, self.correlator, self.outbox)
        return stored

    def store_batch(self, detections: Sequence[Detection], message_ids: Sequence[str] = ()) -> None:
        """`process_batch` without reading the stored findings back: the path of a worker and of ingest."""
        for chunk, ids in _chunks(detections, message_ids):
            self.store.store_findings(self._findings(chunk), ids, self.correlator, self.outbox, hydrate=False)

    def _findings(self, detections: Sequence[Detection]) -> list[Finding]:
        rules = self.store.suppression_rules()
        return [self._finding(bound_detection(detection), rules) for detection in detections]

    def _finding(self, detection: Detection, rules: list[SuppressionRule]) -> Finding:
        category: Category = detection.category
        if detection.intel and category in MALICIOUS:
            category = MALICIOUS[category]
        titles = SCAN_TITLES if detection.source == "scan" else TITLES
        finding = Finding(
            id=finding_id(detection), category=category, severity=self.policy.severity(category, detection),
            title=titles.get(category, TITLES[category]), summary=_summary(category, detection),
            first_seen=detection.observed_at,
            last_seen=detection.observed_at, resource=detection.resource, file=detection.file,
            source=detection.source, process=detection.process, writer=detection.writer,
            indicator=Indicator(detection.file.sha256, VIRUSTOTAL.format(detection.file.sha256), list(detection.intel))
            if detection.file.sha256 else None,
            techniques=techniques(category, detection), evidence=list(detection.evidence),
        )  # fmt: skip
        _suppress(finding, detection, rules)
        return finding  # its incident, and the response steps that name it, are set when the batch is stored


def _chunks(
    detections: Sequence[Detection], message_ids: Sequence[str]
) -> Iterator[tuple[Sequence[Detection], Sequence[str]]]:
    """The detections and their message ids, `MAX_BATCH` at a time."""
    if message_ids and len(message_ids) != len(detections):
        raise ValueError("one message id per detection, or none")
    ids = message_ids or [""] * len(detections)
    for start in range(0, len(detections), MAX_BATCH):
        yield detections[start : start + MAX_BATCH], ids[start : start + MAX_BATCH]


def _suppress(finding: Finding, detection: Detection, rules: list[SuppressionRule]) -> None:
    rule = first_match(rules, detection, detection.observed_at)
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
