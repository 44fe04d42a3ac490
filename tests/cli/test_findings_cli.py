"""`bindrift findings|intel|suppress` against a real store filled by the findings pipeline."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from tests.detections import detection
from tests.refusing_store import REFUSAL, refuse_path
from typer.testing import CliRunner

from bindrift.cli.main import app
from bindrift.findings.batcher import DetectionBatcher
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import Detection, FileInfo, Finding
from bindrift.sinks.store.sql_store import SqlStore

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = SqlStore(url)
    pipeline = FindingsPipeline(store)
    pipeline.process(detection())
    pipeline.process(detection(minutes=5, file=FileInfo(path="/tmp/\x1b[31m[bold]evil", sha256="b" * 64)))
    store.close()
    yield url


def _findings(output: str) -> list[Finding]:
    return [msgspec.json.decode(line, type=Finding) for line in output.splitlines() if line.strip()]


def test_list_json_filters_and_show(db: str) -> None:
    result = runner.invoke(app, ["findings", "list", "--db", db, "--format", "json"])
    assert result.exit_code == 0, result.output
    listed = _findings(result.stdout)
    assert [f.file.path for f in listed] == ["/tmp/\x1b[31m[bold]evil", "/tmp/x"]
    only = _findings(runner.invoke(app, ["findings", "list", "--db", db, "--format", "json", "--text", "EVIL"]).stdout)
    assert [f.file.path for f in only] == ["/tmp/\x1b[31m[bold]evil"], "free text, any case"
    none = runner.invoke(app, ["findings", "list", "--db", db, "--format", "json", "--namespace", "other"])
    assert _findings(none.stdout) == []
    shown = runner.invoke(app, ["findings", "show", listed[1].id, "--db", db, "--format", "json"])
    assert _findings(shown.stdout)[0].id == listed[1].id
    assert runner.invoke(app, ["findings", "show", "nope", "--db", db]).exit_code == 2


def test_table_views_render_hostile_paths_inert(db: str) -> None:
    listed = runner.invoke(app, ["findings", "list", "--db", db], env={"COLUMNS": "300"})
    assert listed.exit_code == 0 and "\x1b" not in listed.stdout
    assert "[bold]evil" in listed.stdout and "2 of 2 finding(s)" in listed.stdout
    hostile = _findings(runner.invoke(app, ["findings", "list", "--db", db, "--format", "json"]).stdout)[0]
    shown = runner.invoke(app, ["findings", "show", hostile.id, "--db", db], env={"COLUMNS": "300"})
    assert shown.exit_code == 0 and "\x1b" not in shown.stdout
    assert "kubectl --context prod-eu -n shop delete pod web-0" in shown.stdout and "ATT&CK T1105" in shown.stdout


def test_mute_resolve_reopen_record_who_and_why(db: str) -> None:
    target = _findings(runner.invoke(app, ["findings", "list", "--db", db, "--format", "json"]).stdout)[1].id
    assert (
        runner.invoke(app, ["findings", "mute", target, "--reason", "CI job", "--by", "alice", "--db", db]).exit_code
        == 0
    )
    assert (
        runner.invoke(app, ["findings", "resolve", target, "--reason", "fixed", "--by", "bob", "--db", db]).exit_code
        == 0
    )
    shown = _findings(runner.invoke(app, ["findings", "show", target, "--db", db, "--format", "json"]).stdout)[0]
    assert shown.state == "resolved"
    assert [(c.state, c.by, c.reason) for c in shown.state_history] == [("muted", "alice", "CI job"),
                                                                       ("resolved", "bob", "fixed")]  # fmt: skip
    muted = runner.invoke(app, ["findings", "list", "--db", db, "--format", "json", "--state", "resolved"])
    assert [f.id for f in _findings(muted.stdout)] == [target]


def test_export_formats(db: str) -> None:
    ocsf = [json.loads(line) for line in runner.invoke(app, ["findings", "export", "--db", db, "--format", "ocsf"])
            .stdout.splitlines()]  # fmt: skip
    assert len(ocsf) == 2 and all(event["class_uid"] == 2004 for event in ocsf)
    scc = [json.loads(line) for line in runner.invoke(app, ["findings", "export", "--db", db, "--format", "scc"])
           .stdout.splitlines()]  # fmt: skip
    assert {event["sourceProperties"]["Pod_Name"] for event in scc} == {"web-0"}


def test_intel_add_and_list(db: str, tmp_path: Path) -> None:
    true_sha = hashlib.sha256(Path(shutil.which("true") or "/usr/bin/true").read_bytes()).hexdigest()
    good = tmp_path / "iocs.txt"
    good.write_text(true_sha + "\n")
    bad = tmp_path / "feed.csv"
    bad.write_text("md5\nx\n")
    assert runner.invoke(app, ["intel", "add", str(good), "--db", db]).exit_code == 0
    refused = runner.invoke(app, ["intel", "add", str(bad), "--db", db])
    assert refused.exit_code == 2 and "no sha256 column" in refused.output
    listed = runner.invoke(app, ["intel", "list", "--db", db])
    assert f"sha256  ok    {good}" in listed.stdout and str(bad) not in listed.stdout


def test_suppress_add_list_remove(db: str) -> None:
    added = runner.invoke(app, ["suppress", "add", "--namespace", "ci", "--path", "/tmp/*", "--reason", "CI pods",
                                "--expires", "7d", "--by", "alice", "--db", db])  # fmt: skip
    assert added.exit_code == 0
    rule_id = added.stdout.strip()
    listed = runner.invoke(app, ["suppress", "list", "--db", db]).stdout
    assert rule_id in listed and "namespace=ci path=/tmp/*" in listed and "CI pods (by alice" in listed
    assert runner.invoke(app, ["suppress", "add", "--reason", "no scope", "--db", db]).exit_code == 2
    assert runner.invoke(app, ["suppress", "remove", rule_id, "--db", db]).exit_code == 0
    assert runner.invoke(app, ["suppress", "remove", rule_id, "--db", db]).exit_code == 2


def test_ids_by_unique_prefix_as_git_and_ambiguous_ones_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prefix.db'}"
    store = SqlStore(url)
    pipeline = FindingsPipeline(store)
    ids = sorted(pipeline.process(detection(minutes=i, file=FileInfo(path=f"/tmp/{i}", sha256=f"{i:064x}"))).id
                 for i in range(17))  # fmt: skip  # 17 ids over 16 hex digits: two share a first digit
    incident = store.list_findings()[0].incident_id
    store.close()
    shared = next(a[0] for a, b in itertools.pairwise(ids) if a[0] == b[0])
    ambiguous = runner.invoke(app, ["findings", "show", shared, "--db", url])
    assert ambiguous.exit_code == 2 and f"finding id prefix '{shared}' is ambiguous" in ambiguous.output
    unique = {i: next(i[:n] for n in range(1, 33) if sum(j.startswith(i[:n]) for j in ids) == 1) for i in ids}
    for full, prefix in list(unique.items())[:3]:
        shown = runner.invoke(app, ["findings", "show", prefix, "--db", url, "--format", "json"])
        assert shown.exit_code == 0 and _findings(shown.stdout)[0].id == full
    target, prefix = next(iter(unique.items()))
    muted = runner.invoke(app, ["findings", "mute", prefix, "--reason", "by prefix", "--by", "alice", "--db", url])
    assert muted.exit_code == 0 and muted.stdout.strip() == f"{target}: muted"
    assert runner.invoke(app, ["findings", "resolve", shared, "--reason", "x", "--db", url]).exit_code == 2
    assert "no finding zz" in runner.invoke(app, ["findings", "show", "zz", "--db", url]).output
    by_incident = runner.invoke(app, ["findings", "list", "--incident", incident[:8], "--db", url, "--format", "json"])
    assert len(_findings(by_incident.stdout)) == 17


def test_hidden_characters_shown_lineage_on_lines_and_ids_never_wrapped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    store = SqlStore(url)
    finding = FindingsPipeline(store).process(detection(file=FileInfo(path="/tmp/invoice\u202egnp.exe\u200b",
                                                                      sha256="c" * 64)))  # fmt: skip
    store.close()
    listed = runner.invoke(app, ["findings", "list", "--db", url], env={"COLUMNS": "80"})
    assert listed.exit_code == 0 and finding.id[:12] in listed.stdout, listed.stdout
    assert "\u202e" not in listed.stdout and "\u200b" not in listed.stdout and "/tmp/invoice⟨U+202E⟩" in listed.stdout
    assert listed.stdout.splitlines()[2].startswith(f"{finding.id[:12]}  2026-11-01 12:00  low"), "one line, unwrapped"
    shown = runner.invoke(app, ["findings", "show", finding.id, "--db", url], env={"COLUMNS": "300"}).stdout
    assert "/tmp/invoice⟨U+202E⟩gnp.exe⟨U+200B⟩" in shown and "\u202e" not in shown and "\u200b" not in shown
    lines = shown.splitlines()
    writer = next(i for i, line in enumerate(lines) if line.startswith("writer: "))
    assert lines[writer + 1] == "  ← pid 1 /bin/busybox " and "\\n" not in shown


def test_dead_letters_listed_with_their_reason_and_detection(db: str) -> None:
    """A detection the store refused (here: a trigger in the database), set aside by the real batcher,
    is listed with its reason; hostile text in it is shown inert; exit 1 while there are any."""
    empty = runner.invoke(app, ["findings", "dead-letters", "--db", db])
    assert empty.exit_code == 0 and "0 of 0 dead letter(s)" in empty.stdout
    store = SqlStore(db)
    try:
        poison = detection(file=FileInfo(path="/tmp/refused", sha256="d" * 64), resource=msgspec.structs.replace(
            detection().resource, node="node-\u202e1\x1b[2J"))  # fmt: skip
        refuse_path(store.engine, "/tmp/refused")
        batcher = DetectionBatcher(FindingsPipeline(store), lambda _finding: None, size=4, linger_s=60)
        batcher.add(poison)
        batcher.add(detection(minutes=9, file=FileInfo(path="/tmp/ok", sha256="c" * 64)))
        batcher.close()
    finally:
        store.close()
    listed = runner.invoke(app, ["findings", "dead-letters", "--db", db], env={"COLUMNS": "300"})
    assert listed.exit_code == 1, listed.output
    assert "1 of 1 dead letter(s)" in listed.stdout and REFUSAL in listed.stdout
    assert "\x1b" not in listed.stdout and "\u202e" not in listed.stdout and "node-⟨U+202E⟩1⟨U+001B⟩" in listed.stdout
    as_json = runner.invoke(app, ["findings", "dead-letters", "--db", db, "--format", "json"])
    (letter,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert letter["source"] == "local" and letter["deliveries"] == 1
    assert msgspec.json.decode(base64.b64decode(letter["body"]), type=Detection) == poison
    kept = runner.invoke(app, ["findings", "list", "--db", db, "--format", "json", "--text", "/tmp/ok"])
    assert [f.file.path for f in _findings(kept.stdout)] == ["/tmp/ok"], "the batch's good detection was stored"
