"""Detections → findings on the real store: escalation, severity, suppression, incidents, response steps."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from tests.detections import FOREIGN, PACKED, POD, SHA_B, T0, detection

from bindrift.findings.pipeline import FindingsPipeline
from bindrift.findings.severity import SeverityPolicy
from bindrift.findings.suppression import SuppressionRule
from bindrift.schema.finding import FileInfo, IntelMatch, ProcessInfo, ProcessRef, Resource
from bindrift.sinks.store.sql_store import SqlStore


@pytest.fixture
def pipeline(store: SqlStore) -> FindingsPipeline:
    return FindingsPipeline(store)


def test_added_binary_finding_is_complete(pipeline: FindingsPipeline) -> None:
    finding = pipeline.process(detection())
    assert (finding.category, finding.severity, finding.state, finding.count) == (
        "Added Binary Executed", "low", "active", 1)  # fmt: skip
    assert finding.resource == POD and finding.file.path == "/tmp/x"
    assert finding.indicator is not None
    assert finding.indicator.virustotal_url == f"https://www.virustotal.com/gui/file/{'a' * 64}"
    assert [t.id for t in finding.techniques] == ["T1105", "T1106"]
    assert finding.techniques[0].url == "https://attack.mitre.org/techniques/T1105/"
    assert "written by /bin/busybox (pid 4200)" in finding.summary
    commands = [step.command for step in finding.response]
    assert "mkdir -p ./bindrift-evidence/" + finding.id + " && kubectl --context prod-eu -n shop cp web-0:/tmp/x " \
           f"./bindrift-evidence/{finding.id}/x -c app" in commands  # fmt: skip
    assert "kubectl --context prod-eu -n shop delete pod web-0" in commands


def test_repeats_raise_count_and_keep_one_finding(pipeline: FindingsPipeline, store: SqlStore) -> None:
    first = pipeline.process(detection())
    again = pipeline.process(detection(minutes=30))
    assert again.id == first.id and again.count == 2
    assert again.first_seen == T0 and again.last_seen == T0 + timedelta(minutes=30)
    assert store.count_findings() == 1


def test_hash_list_match_escalates_and_keeps_the_id(pipeline: FindingsPipeline) -> None:
    plain = pipeline.process(detection())
    match = IntelMatch(source="/etc/bindrift/iocs.txt", kind="sha256", name="a" * 64, detail="line 3")
    bad = pipeline.process(detection(minutes=1, intel=[match]))
    assert bad.id == plain.id, "escalation must not duplicate the finding"
    assert (bad.category, bad.severity) == ("Added Malicious Binary Executed", "critical")
    assert bad.indicator is not None and bad.indicator.matches == [match]
    assert "/etc/bindrift/iocs.txt" in bad.summary
    modified = pipeline.process(detection(category="Modified Binary Executed", intel=[match]))
    assert modified.category == "Modified Malicious Binary Executed" and modified.id != plain.id


def test_suspicious_binary_severity_and_techniques(pipeline: FindingsPipeline) -> None:
    writer = ProcessInfo(pid=77, comm="wget", exe="/bin/busybox", args=["wget", "http://x/d"], downloaded_by="wget")
    foreign = pipeline.process(detection(category="Suspicious binary", writer=writer,
                                         file=FileInfo(path="/tmp/d", sha256=SHA_B, triage=[FOREIGN])))  # fmt: skip
    assert foreign.severity == "high"
    assert [t.id for t in foreign.techniques] == ["T1105"]
    assert "downloaded by wget" in foreign.summary
    packed = pipeline.process(detection(category="Suspicious binary", file=FileInfo(path="/tmp/p", sha256="c" * 64,
                                                                                      triage=[PACKED])))  # fmt: skip
    assert packed.severity == "medium" and [t.id for t in packed.techniques] == ["T1027.002"]


def test_severity_override(store: SqlStore) -> None:
    finding = FindingsPipeline(store, SeverityPolicy({"Added Binary Executed": "high"})).process(detection())
    assert finding.severity == "high"


def _rule(**scopes: str) -> SuppressionRule:
    return SuppressionRule(id="r1", reason="CI pods drop test binaries", created_by="alice", created_at=T0, **scopes)


@pytest.mark.parametrize(("scopes", "suppressed"), [
    ({"namespace": "shop"}, True), ({"namespace": "shop-dev"}, False),
    ({"cluster": "prod-eu"}, True), ({"cluster": "prod-us"}, False),
    ({"pod": "web-*"}, True), ({"pod": "api-*"}, False),
    ({"image": "registry.example/shop/web"}, True), ({"image": "registry.example/shop/api"}, False),
    ({"image": "registry.example/shop/web:1.4"}, True), ({"image": "sha256:" + "d" * 64}, True),
    ({"image": "sha256:" + "e" * 64}, False),
    ({"container": "app"}, True), ({"container": "c0ffee"}, True), ({"container": "sidecar"}, False),
    ({"path": "/tmp/*"}, True), ({"path": "/usr/*"}, False),
    ({"writer": "cp"}, True), ({"writer": "/bin/busy*"}, True), ({"writer": "curl"}, False),
    ({"sha256": "a" * 64}, True), ({"sha256": "f" * 64}, False),
    ({"namespace": "shop", "path": "/usr/*"}, False),
])  # fmt: skip
def test_suppression_scopes(store: SqlStore, pipeline: FindingsPipeline, scopes: dict[str, str],
                            suppressed: bool) -> None:  # fmt: skip
    store.add_suppression(_rule(**scopes))
    finding = pipeline.process(detection())
    assert (finding.state == "muted") is suppressed
    assert store.count_findings() == 1, "suppressed findings are stored, never dropped"
    if suppressed:
        assert finding.suppressed_by == "r1"
        assert finding.state_history[0].reason == "CI pods drop test binaries"


def test_expired_rule_does_not_suppress(store: SqlStore, pipeline: FindingsPipeline) -> None:
    store.add_suppression(msgspec.structs.replace(_rule(namespace="shop"), expires_at=T0 - timedelta(seconds=1)))
    assert pipeline.process(detection()).state == "active"


@pytest.mark.parametrize(("writer", "trusted"), [
    (ProcessInfo(pid=9, comm="dpkg", exe="/usr/bin/dpkg"), "dpkg (/usr/bin/dpkg)"),
    (ProcessInfo(pid=9, comm="sh", exe="/bin/sh", lineage=[ProcessRef(pid=8, comm="apt-get", exe="/usr/bin/apt-get")]),
     "apt-get (/usr/bin/apt-get)"),
    (ProcessInfo(pid=9, comm="python3", exe="/usr/bin/python3.11", args=["python3", "-m", "pip", "install", "x"]),
     "pip (/usr/bin/python3.11 -m pip)"),
    (ProcessInfo(pid=9, comm="dnf", exe="/usr/bin/python3.12", args=["/usr/bin/python3", "-s", "/usr/bin/dnf", "in"]),
     "dnf (/usr/bin/python3.12 /usr/bin/dnf)"),
    (ProcessInfo(pid=9, comm="pip", exe="/usr/local/bin/python3.11", args=["python", "/usr/local/bin/pip", "install"]),
     "pip (/usr/local/bin/python3.11 /usr/local/bin/pip)"),
    (ProcessInfo(pid=9, comm="apk", exe="/sbin/apk"), "apk (/sbin/apk)"),
    (ProcessInfo(pid=9, comm="curl", exe="/usr/bin/curl"), None),
    # Names are chosen by whoever starts the process: a renamed downloader, a renamed shell as an ancestor, a
    # fake interpreter or script path, and an agent event that somehow lost the executable are not trusted.
    (ProcessInfo(pid=9, comm="dpkg", exe="/tmp/dpkg", args=["dpkg", "-i"]), None),
    (ProcessInfo(pid=9, comm="wget", exe="/usr/bin/wget", lineage=[ProcessRef(pid=8, comm="apt", exe="/dev/shm/apt")]),
     None),
    (ProcessInfo(pid=9, comm="python3", exe="/tmp/python3", args=["python3", "-m", "pip"]), None),
    (ProcessInfo(pid=9, comm="pip", exe="/usr/bin/python3", args=["python3", "/tmp/pip", "install"]), None),
    (ProcessInfo(pid=9, comm="dpkg", exe=""), None),
])  # fmt: skip
def test_package_manager_trust(pipeline: FindingsPipeline, writer: ProcessInfo, trusted: str | None) -> None:
    finding = pipeline.process(detection(writer=writer))
    if trusted is None:
        assert finding.state == "active" and not finding.suppressed_by
    else:
        assert finding.state == "muted" and finding.suppressed_by == "builtin:package-manager"
        assert finding.state_history[0].reason == f"written by the package manager {trusted} during an install"


def test_ingested_events_naming_only_a_process_name_say_so(pipeline: FindingsPipeline) -> None:
    finding = pipeline.process(detection(source="ingest:tracee", writer=ProcessInfo(pid=9, comm="dpkg")))
    assert finding.state == "muted"
    assert "dpkg (named so by its event only)" in finding.state_history[0].reason
    named = pipeline.process(detection(source="ingest:falco", file=detection().file.__class__(path="/tmp/y"),
                                       writer=ProcessInfo(pid=9, comm="dpkg", exe="/tmp/dpkg")))  # fmt: skip
    assert named.state == "active", "an executable that is not the package's is never trusted by its name"


def test_known_bad_is_never_trusted(pipeline: FindingsPipeline) -> None:
    match = IntelMatch(source="feed.csv", kind="sha256", name="a" * 64)
    finding = pipeline.process(detection(writer=ProcessInfo(pid=9, comm="dpkg"), intel=[match]))
    assert finding.state == "active" and finding.category == "Added Malicious Binary Executed"


def test_incidents_group_a_container_within_the_window(pipeline: FindingsPipeline, store: SqlStore) -> None:
    a = pipeline.process(detection())
    b = pipeline.process(detection(minutes=60, file=FileInfo(path="/tmp/y", sha256=SHA_B)))
    assert a.incident_id and b.incident_id == a.incident_id
    assert b.related == [a.id]
    stored_a = store.get_finding(a.id)
    assert stored_a is not None and stored_a.related == [b.id], "related both ways"
    other = Resource(node="node-1", namespace="shop", pod="web-1", container_id="f" * 64, container_name="app")
    c = pipeline.process(detection(minutes=61, resource=other))
    assert c.incident_id != a.incident_id and c.related == []
    late = pipeline.process(detection(minutes=60 + 25 * 60, file=FileInfo(path="/tmp/z", sha256="9" * 64)))
    assert late.incident_id != a.incident_id, "outside the 24 h window: a new incident"
    incident = store.get_incident(a.incident_id)
    assert incident is not None and incident.finding_ids == [a.id, b.id]


def test_response_commands_quote_hostile_names(pipeline: FindingsPipeline) -> None:
    hostile = Resource(namespace="ns; reboot", pod="$(rm -rf /)", container_id="1" * 64, container_name="c`id`")
    finding = pipeline.process(detection(resource=hostile, file=FileInfo(path="/tmp/a b;$(x)", sha256="2" * 64)))
    delete = next(s.command for s in finding.response if "delete pod" in s.command)
    assert delete == "kubectl -n 'ns; reboot' delete pod '$(rm -rf /)'"
    copy = next(s.command for s in finding.response if " cp " in s.command)
    assert "'$(rm -rf /):/tmp/a b;$(x)'" in copy and "-c 'c`id`'" in copy
