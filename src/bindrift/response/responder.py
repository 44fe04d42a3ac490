"""The response stage's front door for the agent, the CLI and the API: actions on a finding by id, each
carried out and recorded (audit log and the finding's `actions`), and what the agent does with each new
finding (keep its evidence, apply `block` policies, record a prevented exec)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import msgspec

from bindrift.response import actions
from bindrift.response.evidence import Blob, EvidenceStore
from bindrift.response.policy import strictest
from bindrift.response.store_protocol import ResponseStore
from bindrift.response.verify import Checks, RefusedError, check_provenance
from bindrift.schema.finding import Detection, Evidence, FileInfo, Finding, Resource, ResponseAction
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
        self.reported: dict[str, int] = {}  # captures not made, by reason, already reported as Coverage degraded

    # Actions by finding id (CLI and API) ------------------------------------------------------------

    def act(self, verb: str, finding_id: str, by: str, *, force: bool = False) -> ResponseAction:
        """Carry out `verb` (one of VERBS) on the finding once its target is re-identified (`verify`), and
        record it, refused or not. `force` acts on what cannot be verified (an `event-only` finding, one
        without container scope) and is recorded with the action. UnknownFindingError, or ValueError for an
        unknown verb."""
        finding = self.store.get_finding(finding_id)
        if finding is None:
            raise UnknownFindingError(finding_id)
        if verb not in VERBS:
            raise ValueError(f"unknown action {verb!r}; choose from {', '.join(VERBS)}")
        checks = Checks(force)
        try:
            check_provenance(finding, checks)
            action = self._carry_out(verb, finding, by, checks)
        except RefusedError as exc:
            action = actions.failed(verb, by, f"refused: {exc}", refused=True)
        if checks.verified or checks.unverified:
            action = msgspec.structs.replace(action, values={**action.values, **checks.values()})
        if checks.unverified and not action.values.get("refused"):
            action = msgspec.structs.replace(action, detail=f"{action.detail} (forced: {'; '.join(checks.unverified)})")
        self.store.record_action(finding.id, action)
        if verb in ("quarantine", "restore") and not action.values.get("refused"):
            action = self._other_paths(verb, finding, by, force, action)
        return action

    def _other_paths(self, verb: str, finding: Finding, by: str, force: bool, first: ResponseAction) -> ResponseAction:
        """Quarantine (or restore) every other path the finding's content was seen at, each re-identified on
        its own and recorded as its own action; `first` (the finding's last path) says how many followed."""
        root = self.locate(finding.resource.container_id) if finding.resource.container_id else "/"
        others = list(dict.fromkeys(s.path for s in finding.sightings if s.path != finding.file.path))
        if root is None or not others:
            return first
        done = 0
        for path in others:
            at = msgspec.structs.replace(finding, file=msgspec.structs.replace(finding.file, path=path))
            checks = Checks(force)
            try:
                action = self._path_action(verb, root, at, by, checks)
            except RefusedError as exc:
                action = actions.failed(verb, by, f"refused: {exc}", refused=True, path=path)
            if checks.verified or checks.unverified:
                action = msgspec.structs.replace(action, values={**action.values, **checks.values()})
            self.store.record_action(finding.id, action)
            done += action.ok
        return msgspec.structs.replace(
            first,
            detail=f"{first.detail}; {done} of {len(others)} other path(s) too",
            values={**first.values, "other_paths": len(others), "other_paths_done": done},
        )

    def _path_action(self, verb: str, root: str, finding: Finding, by: str, checks: Checks) -> ResponseAction:
        """Quarantine the finding's file at its `file.path`, or restore it as its last quarantine there left it."""
        if verb == "quarantine":
            return actions.quarantine_file(root, finding, by, checks)
        path = finding.file.path
        last = next((a for a in reversed(finding.actions)
                     if a.action == "quarantine" and a.ok and a.values.get("path") == path), None)  # fmt: skip
        mode, inode = (last.values.get("mode"), last.values.get("inode")) if last else (None, None)
        if not isinstance(mode, int) or not isinstance(inode, int):
            return actions.failed("restore", by, f"{path} was not quarantined", path=path)
        return actions.restore_file(root, finding, mode, inode, by, checks)

    def _carry_out(self, verb: str, finding: Finding, by: str, checks: Checks) -> ResponseAction:
        r = finding.resource
        if verb == "kill":
            return actions.kill_process(finding, by, checks)
        if verb in ("pause", "stop"):
            return actions.container_action(r, verb, by, self.runtime_env)
        if verb == "delete-pod":
            return actions.delete_pod(r, by)
        root = self.locate(r.container_id) if r.container_id else "/"
        if root is None:
            return actions.failed(verb, by, f"container {r.container_id[:12]} is not running")
        return self._path_action(verb, root, finding, by, checks)

    # What the agent does periodically and with each finding ---------------------------------------------------------

    def on_finding(self, finding: Finding, blob: Blob | None, prevented: ResponseAction | None = None) -> None:
        """Record the captured evidence (once per finding), a prevented exec, and stop the container when a
        `block` policy covers the finding."""
        if self.evidence is not None and not self.store.list_evidence(finding.id, limit=1):
            if blob is not None:
                self.evidence.record(blob, finding)
            elif any(a.action == "capture" for a in finding.actions):
                self.evidence.take_skipped(finding.file.sha256)  # a repeat: its refusal is on the finding already
            else:
                self.evidence.record_skipped(finding)
        if prevented is not None:
            self.store.record_action(finding.id, prevented)
        cid = finding.resource.container_id
        if finding.state != "active" or not cid or cid in self.blocked:
            return
        if any(e.kind == "event-only" for e in finding.evidence):
            return  # a policy never acts on what nothing on this node verified
        policy = strictest(self.policies, finding.resource, finding.category, finding.severity)
        if policy is not None and policy.mode == "block":
            self.blocked.add(cid)
            self.store.record_action(finding.id, actions.container_action(
                finding.resource, "stop", f"policy:{policy.id}", self.runtime_env))  # fmt: skip

    def housekeeping(self, node: Resource) -> Detection | None:
        """Evidence retention when due, and a *Coverage degraded* detection on `node` when captures were not
        made since the last call (how many, by reason)."""
        if self.evidence is None:
            return None
        self.evidence.maintain()
        counts = self.evidence.not_captured
        new = {
            reason: n - self.reported.get(reason, 0) for reason, n in counts.items() if n > self.reported.get(reason, 0)
        }
        if not new:
            return None
        self.reported = dict(counts)
        summary = ", ".join(f"{n} {reason}" for reason, n in sorted(new.items()))
        return Detection(
            category="Coverage degraded", observed_at=datetime.now(UTC), resource=node,
            file=FileInfo(path="evidence-store"), source="agent",
            evidence=[Evidence("evidence-not-captured", f"{sum(new.values())} binaries not captured as evidence "
                               f"({summary}); {sum(counts.values())} since the agent started",
                               {**dict(sorted(new.items())), "since_start": sum(counts.values())})],
        )  # fmt: skip
