"""Threat intelligence from every kind of source, reloaded without a restart, escalating findings."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import msgspec
import stix2
from tests.detections import detection

from bindrift.analysis.intel.intel_set import IntelSet
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.sinks.store.sql_store import SqlStore

TRUE_BYTES = Path(shutil.which("true") or "/usr/bin/true").read_bytes()
TRUE_SHA = hashlib.sha256(TRUE_BYTES).hexdigest()


def _touch_later(path: Path) -> None:
    """Make sure the next write is seen as a change even within the file system's time granularity."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_plain_text_list(tmp_path: Path) -> None:
    iocs = tmp_path / "iocs.txt"
    iocs.write_text(f"# feed of the week\nsha256:{TRUE_SHA.upper()}  # coinminer dropper\n\nnot-a-hash\n")
    (match,) = IntelSet([(str(iocs), "auto")]).lookup(TRUE_SHA)
    assert (match.source, match.kind, match.name, match.detail) == (str(iocs), "sha256", "coinminer dropper", "line 2")


def test_csv_list(tmp_path: Path) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text(f"first_seen,SHA256,Malware\n2026-10-01,{TRUE_SHA},Mirai.Gayfemboy\n2026-10-02,zz,bad\n")
    (match,) = IntelSet([(str(feed), "auto")]).lookup(TRUE_SHA)
    assert (match.name, match.detail) == ("Mirai.Gayfemboy", "row 2")


def test_stix_bundle(tmp_path: Path) -> None:
    indicator = stix2.Indicator(name="Dropbear backdoor build", pattern_type="stix",
                                pattern=f"[file:hashes.'SHA-256' = '{TRUE_SHA}'] OR [file:hashes.MD5 = "
                                        "'d41d8cd98f00b204e9800998ecf8427e']")  # fmt: skip
    bundle = tmp_path / "bundle.json"
    bundle.write_text(stix2.Bundle(objects=[indicator]).serialize())
    (match,) = IntelSet([(str(bundle), "auto")]).lookup(TRUE_SHA)
    assert (match.kind, match.name, match.detail) == ("stix", "Dropbear backdoor build", indicator.id)


def test_yara_rule_folder(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    (rules / "nested").mkdir(parents=True)
    (rules / "nested" / "gnu.yar").write_text(
        'rule gnu_coreutils : tooling { strings: $a = "GNU coreutils" condition: $a }'
    )
    (rules / "broken.yara").write_text("rule broken { condition: nope }")
    intel = IntelSet([(str(rules), "auto")])
    (match,) = intel.scan(TRUE_BYTES)
    assert (match.kind, match.name, match.source, match.detail) == (
        "yara", "gnu_coreutils", str(rules / "nested" / "gnu.yar"), "tooling")  # fmt: skip
    assert any("broken.yara" in error for error in intel.errors), "a broken file is reported, the rest still works"
    assert intel.scan(b"nothing here") == []


def test_sources_reload_without_restart(tmp_path: Path) -> None:
    iocs = tmp_path / "iocs.txt"
    iocs.write_text("0" * 64 + "\n")
    intel = IntelSet([(str(iocs), "sha256")])
    assert intel.lookup(TRUE_SHA) == []
    iocs.write_text("0" * 64 + f"\n{TRUE_SHA} # added later\n")
    _touch_later(iocs)
    assert intel.refresh(force=True)
    assert [m.name for m in intel.lookup(TRUE_SHA)] == ["added later"]
    assert not intel.refresh(force=True), "unchanged sources are not re-read"


def test_unreadable_and_malformed_sources_are_reported(tmp_path: Path) -> None:
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("md5,name\nabc,x\n")
    bad_stix = tmp_path / "bad.json"
    bad_stix.write_text('{"type": "bundle", "objects": [{"oops": 1}]}')
    intel = IntelSet([(str(bad_csv), "auto"), (str(bad_stix), "auto"), (str(tmp_path / "missing.txt"), "auto")])
    assert len(intel.errors) == 3 and intel.lookup(TRUE_SHA) == []


def test_match_escalates_the_finding(tmp_path: Path) -> None:
    iocs = tmp_path / "iocs.txt"
    iocs.write_text(f"{TRUE_SHA} # known bad\n")
    intel = IntelSet([(str(iocs), "auto")])
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        base = detection()
        found = detection(
            file=msgspec.structs.replace(base.file, sha256=TRUE_SHA), intel=intel.match(TRUE_SHA, TRUE_BYTES)
        )
        finding = FindingsPipeline(store).process(found)
    finally:
        store.close()
    assert finding.category == "Added Malicious Binary Executed" and finding.severity == "critical"
    assert finding.indicator is not None and finding.indicator.matches[0].source == str(iocs)
