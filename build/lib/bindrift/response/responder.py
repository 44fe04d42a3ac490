"""The response stage's front door for the agent, the CLI and the API: actions on a finding by id, each
carried out and recorded (audit log and the finding's `actions`), and what the agent does with each new
finding (keep its evidence, apply `block` policies, record a prevented exec)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bindrift.response import actions
from bindrift.response.evidence import Blob, EvidenceStore
from bindrift.response.policy import strictest
from bindrift.response.store_protocol import ResponseStore
from bindrift.schema.finding import Finding, ResponseAction
from bindrift.schema.response import ResponsePolicy

# container id → its root as the node sees it (`/proc/<init pid>/root`), None when it is not running.
RootLocator = Callable[[str], str | None]
VERBS = ("kill", "pause", "stop", "quarantine", "restore", "delete-pod")


class UnknownFindingError(LookupError):
    """No finding with that id."""


class Responder:
    """Acts on findings and records what it did."""

    def __init__(self, store: ResponseStore, *, evidence: EvidenceStore | None = None,
                 policies: list[ResponsePolicy] | None = None, locate: RootLocator | None = None,
                 runtime_env: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.store = store
        self.evidence = evidence
        self.policies = list(policies or [])
        self.locate = locate or (lambda _cid: None)
        self.runtime_env = runtime_env
        self.blocked: set[str] = set()

    # Actions by finding id (CLI and API) ------------------------------------------------------------

    def act(self, verb: str, finding_id: str, by: str) -> ResponseAction:
        """Carry out `verb` (one of VERBS) on the finding and record it. UnknownFindingError, or ValueError for
        an unknown verb."""
        finding = self.store.get_finding(finding_id)
        if finding is None:
            raise UnknownFindingError(finding_id)
        if verb not in VERBS:
            raise ValueError(f"unknown action {verb!r}; choose from {', '.join(VERBS)}")
        action = self._carry_out(verb, finding, by)
        self.store.record_action(finding.id, action)
        return action

    def _carry_out(self, verb: str, finding: Finding, by: str) -> ResponseAction:
        r = finding.resource
        if verb == "kill":
            return actions.kill_process(finding.process.pid if finding.process else 0, r, by)
        if verb in ("pause", "stop"):
            return actions.container_action(r, verb, by, self.runtime_env)
        if verb == "delete-pod":
            return actions.delete_pod(r, by)
        root = self.locate(r.container_id) if r.container_id else "/"
        if root is None:
            return actions.failed(verb, by, f"container {r.container_id[:12]} is not running")
        if verb == "quarantine":
            return actions.quarantine_file(root, finding.file.path, finding.file.sha256, by)
        last = next((a for a in reversed(finding.actions) if a.action == "quarantine" and a.ok), None)
        mode, inode = (last.values.get("mode"), last.values.get("inode")) if last else (None, None)
        if not isinstance(mode, int) or not isinstance(inode, int):
            return actions.failed("restore", by, "the finding's file was not quarantined")
        return actions.restore_file(root, finding.file.path, mode, inode, by)

    # What the agent does with each finding ---------------------------------------------------------

    def on_finding(self, finding: Finding, blob: Blob | None, prevented: ResponseAction | None = None) -> None:
        """Record the captured evidence (once per finding), a prevented exec, and stop the container when a
        `block` policy covers the finding."""
        if blob is not None and self.evidence is not None and not self.store.list_evidence(finding.id, limit=1):
            self.evidence.record(blob, finding)
        if prevented is not None:
            self.store.record_action(finding.id, prevented)
        cid = finding.resource.container_id
        if finding.state != "active" or not cid or cid in self.blocked:
            return
        policy = strictest(self.policies, finding.resource, finding.category, finding.severity)
        if policy is not None and policy.mode == "block":
            self.blocked.add(cid)
            self.store.record_action(finding.id, actions.container_action(
                finding.resource, "stop", f"policy:{policy.id}", self.runtime_env))  # fmt: skip
