"""The audit trail on a real store: actions that could not be carried out are recorded too, survive a
repeat of the finding, and `findings show` renders them as inert text."""

from __future__ import annotations

import pytest
from tests.detections import detection
from typer.testing import CliRunner

from bindrift.cli.main import app
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.response.responder import Responder, UnknownFindingError
from bindrift.schema.finding import FileInfo
from bindrift.sinks.store.sql_store import SqlStore


def test_failed_actions_are_recorded_kept_and_shown(store: SqlStore) -> None:
    pipeline = FindingsPipeline(store)
    hostile = FileInfo(path="/tmp/\x1b[31m$(reboot)", sha256="e" * 64, size=10)
    finding = pipeline.process(detection(file=hostile))
    responder = Responder(store, locate=lambda _cid: None)
    quarantine = responder.act("quarantine", finding.id, "alice")
    assert (quarantine.action, quarantine.ok, quarantine.by) == ("quarantine", False, "alice")
    assert quarantine.detail == f"container {finding.resource.container_id[:12]} is not running"
    pod = responder.act("delete-pod", finding.id, "bob")
    assert (pod.ok, pod.detail) == (False, "not running in a Kubernetes cluster (no service account)")
    with pytest.raises(UnknownFindingError):
        responder.act("kill", "0" * 32, "alice")
    with pytest.raises(ValueError, match="unknown action 'explode'"):
        responder.act("explode", finding.id, "alice")

    repeat = pipeline.process(detection(minutes=1, file=hostile))
    assert repeat.id == finding.id and repeat.count == 2
    stored = store.get_finding(finding.id)
    assert stored is not None and stored.actions == [quarantine, pod], "a repeat keeps the audit trail"
    assert store.audit_log(finding.id) == [(finding.id, quarantine), (finding.id, pod)]

    shown = CliRunner().invoke(app, ["findings", "show", finding.id, "--db", store.url], env={"COLUMNS": "300"})
    assert shown.exit_code == 0 and "\x1b" not in shown.stdout
    assert f"action quarantine FAILED: container {finding.resource.container_id[:12]} is not running (by alice" in (
        shown.stdout
    )
    assert "action delete-pod FAILED: not running in a Kubernetes cluster" in shown.stdout
