"""Response re-identifies its target before acting, on a real store, real files and real processes: a file
swapped for a symlink, replaced, or on another mount is refused; a process whose start time or executable
differs is not killed; event-only and host findings need --force, which is recorded with the action."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.detections import detection

from bindrift.findings.pipeline import FindingsPipeline
from bindrift.response.responder import Responder
from bindrift.schema.finding import Evidence, FileInfo, Finding, ProcessInfo, Resource, ResponseAction
from bindrift.schema.response import ResponsePolicy
from bindrift.sensors.runtime.process_table import start_time
from bindrift.sinks.store.sql_store import SqlStore

CID = "c0ffee" * 10 + "abcd"


def _file_finding(store: SqlStore, root: Path, path: str, *, capture_inode: bool = True) -> Finding:
    """A finding on `root`/`path` as it is now (and its inode, as an evidence capture records it)."""
    data = (root / path.lstrip("/")).read_bytes()
    finding = FindingsPipeline(store).process(detection(file=FileInfo(
        path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))))  # fmt: skip
    if capture_inode:
        inode = (root / path.lstrip("/")).stat().st_ino
        store.record_action(finding.id, ResponseAction("capture", "bindrift", finding.first_seen,
                                                       values={"inode": inode, "path": path}))  # fmt: skip
    return finding


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A container root: /tmp/bb (an executable) inside, and a host file outside it."""
    rootfs = tmp_path / "root"
    (rootfs / "tmp").mkdir(parents=True)
    (rootfs / "tmp" / "bb").write_bytes(b"\x7fELF dropped binary")
    (rootfs / "tmp" / "bb").chmod(0o755)
    (tmp_path / "victim").write_bytes(b"a host file")
    (tmp_path / "victim").chmod(0o755)
    return rootfs


def test_a_file_swapped_for_a_symlink_is_refused_and_the_real_one_quarantined(root: Path, store: SqlStore) -> None:
    finding = _file_finding(store, root, "/tmp/bb")
    responder = Responder(store, locate=lambda _cid: str(root))
    (root / "tmp" / "bb").rename(root / "tmp" / "bb.real")
    (root / "tmp" / "bb").symlink_to(root.parent / "victim")  # absolute, out of the root
    refused = responder.act("quarantine", finding.id, "alice")
    assert not refused.ok
    assert refused.detail.startswith("refused: cannot open /tmp/bb as a regular file without following a symlink")
    assert refused.values == {"refused": True}
    assert (root.parent / "victim").stat().st_mode & 0o777 == 0o755, "the host file was not touched"
    (root / "tmp" / "bb").unlink()
    (root / "tmp").rename(root / "tmp.real")
    (root / "tmp").symlink_to("tmp.real")  # a directory on the way, relative and inside: still refused
    assert responder.act("quarantine", finding.id, "alice").detail.endswith("Too many levels of symbolic links")
    (root / "tmp").unlink()
    (root / "tmp.real").rename(root / "tmp")
    (root / "tmp" / "bb.real").rename(root / "tmp" / "bb")
    done = responder.act("quarantine", finding.id, "alice")
    assert done.ok and done.detail == "/tmp/bb made unexecutable (mode 755 → 000)"
    assert done.values["verified"] == "inode,sha256" and "forced" not in done.values
    assert (root / "tmp" / "bb").stat().st_mode & 0o777 == 0
    restored = responder.act("restore", finding.id, "alice")
    assert restored.ok and (root / "tmp" / "bb").stat().st_mode & 0o777 == 0o755
    stored = store.get_finding(finding.id)
    assert stored is not None and [a.ok for a in stored.actions[1:]] == [False, False, True, True]


def test_a_replaced_file_is_refused_even_with_the_same_content(root: Path, store: SqlStore) -> None:
    finding = _file_finding(store, root, "/tmp/bb")
    responder = Responder(store, locate=lambda _cid: str(root))
    shutil.copy2(root / "tmp" / "bb", root / "tmp" / "copy")
    (root / "tmp" / "copy").replace(root / "tmp" / "bb")  # same bytes, another inode
    refused = responder.act("quarantine", finding.id, "bob", force=True)
    assert not refused.ok and "/tmp/bb was replaced since the finding" in refused.detail
    (root / "tmp" / "bb").write_bytes(b"\x7fELF dropped binarY")
    other = _file_finding(store, root, "/tmp/bb", capture_inode=False)
    (root / "tmp" / "bb").write_bytes(b"\x7fELF dropped binarZ")  # same size and inode, other content
    changed = responder.act("quarantine", other.id, "bob")
    assert not changed.ok
    assert changed.detail == f"refused: /tmp/bb no longer has the finding's SHA-256 {other.file.sha256}"
    assert (root / "tmp" / "bb").stat().st_mode & 0o777 == 0o755


def test_a_fifo_or_device_in_its_place_is_not_opened(root: Path, store: SqlStore) -> None:
    finding = _file_finding(store, root, "/tmp/bb")
    responder = Responder(store, locate=lambda _cid: str(root))
    (root / "tmp" / "bb").unlink()
    os.mkfifo(root / "tmp" / "bb")  # opened for reading, a FIFO would block
    fifo = responder.act("quarantine", finding.id, "bob")
    assert not fifo.ok and fifo.detail.endswith("crossing a mount: not a regular file")
    (root / "tmp" / "bb").unlink()
    os.mknod(root / "tmp" / "bb", 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a device node (here /dev/null's)
    device = responder.act("quarantine", finding.id, "bob")
    assert not device.ok and device.detail.endswith("crossing a mount: not a regular file")
    assert stat.S_IMODE((root / "tmp" / "bb").lstat().st_mode) == 0o600


def test_a_file_on_another_mount_is_refused(tmp_path: Path, tmpfs: Path, store: SqlStore) -> None:
    (tmpfs / "bb").write_bytes(b"\x7fELF on a volume")
    (tmpfs / "bb").chmod(0o755)
    finding = _file_finding(store, tmp_path, f"/{tmpfs.name}/bb")
    refused = Responder(store, locate=lambda _cid: str(tmp_path)).act("quarantine", finding.id, "carol")
    assert not refused.ok and refused.detail.endswith("crossing a mount: Invalid cross-device link")
    assert (tmpfs / "bb").stat().st_mode & 0o777 == 0o755


def test_a_path_with_a_nul_is_refused(root: Path, store: SqlStore) -> None:
    finding = FindingsPipeline(store).process(detection(file=FileInfo(path="/tmp/bb\0/../x", sha256="1" * 64)))
    refused = Responder(store, locate=lambda _cid: str(root)).act("quarantine", finding.id, "carol")
    assert (
        not refused.ok
        and refused.detail == "refused: '/tmp/bb\\x00/../x' holds a NUL character: not a path that can be opened"
    )
    assert (root / "tmp" / "bb").stat().st_mode & 0o777 == 0o755


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait(timeout=10)


def _process_finding(store: SqlStore, process: ProcessInfo, sha: str) -> Finding:
    return FindingsPipeline(store).process(detection(resource=Resource(node="n1"), process=process,
                                                     file=FileInfo(path="/x", sha256=sha * 64)))  # fmt: skip


def test_kill_checks_the_start_time_and_executable(sleeper: subprocess.Popen[bytes], store: SqlStore) -> None:
    with open(f"/proc/{sleeper.pid}/stat", "rb") as fh:
        started = start_time(fh.read())
    assert started is not None
    exe = os.readlink(f"/proc/{sleeper.pid}/exe")
    responder = Responder(store)
    host = _process_finding(store, ProcessInfo(pid=sleeper.pid, exe=exe, start_time=started), "1")
    refused = responder.act("kill", host.id, "dave")
    assert not refused.ok and refused.detail == (
        "refused: the finding has no container scope: its target would be on the host: re-run with --force to act "
        "anyway (recorded with the action)"
    )
    earlier = _process_finding(
        store, ProcessInfo(pid=sleeper.pid, exe=exe, start_time=started - timedelta(seconds=1)), "2"
    )
    reused = responder.act("kill", earlier.id, "dave", force=True)
    assert not reused.ok and reused.detail.startswith(f"refused: pid {sleeper.pid} is another process now")
    other = _process_finding(store, ProcessInfo(pid=sleeper.pid, exe="/tmp/dropped", start_time=started), "3")
    wrong = responder.act("kill", other.id, "dave", force=True)
    assert (
        not wrong.ok
        and wrong.detail == f"refused: pid {sleeper.pid} now runs {exe!r}, not the finding's '/tmp/dropped'"
    )
    assert sleeper.poll() is None, "nothing was killed"
    done = responder.act("kill", host.id, "dave", force=True)
    assert done.ok and done.detail.startswith(f"process {sleeper.pid} killed (SIGKILL) (forced: the finding has no")
    assert done.values == {"pid": sleeper.pid, "verified": "start time,executable",
                           "forced": "the finding has no container scope: its target would be on the host"}  # fmt: skip
    assert sleeper.wait(timeout=10) == -9
    assert store.audit_log(host.id)[-1] == (host.id, done), "the forced action is in the audit log"


def test_event_only_findings_need_force_for_every_verb(store: SqlStore) -> None:
    finding = FindingsPipeline(store).process(detection(evidence=[Evidence("event-only", "the event alone")]))
    responder = Responder(store, locate=lambda _cid: None, runtime_env={"PATH": "/nonexistent"})
    for verb in ("kill", "pause", "stop", "quarantine", "restore", "delete-pod"):
        action = responder.act(verb, finding.id, "erin")
        assert not action.ok and action.detail.startswith("refused: the finding rests on an external event alone")
    forced = responder.act("stop", finding.id, "erin", force=True)  # tried: no runtime client on that PATH
    assert forced.detail.endswith(" (forced: the finding rests on an external event alone (event-only): nothing on "
                                  "this node saw it)")  # fmt: skip
    assert forced.values["forced"] == (
        "the finding rests on an external event alone (event-only): nothing on this node saw it"
    )
    stored = store.get_finding(finding.id)
    assert stored is not None and stored.actions[-1] == forced


def test_a_block_policy_never_stops_on_an_event_only_finding(store: SqlStore) -> None:
    policy = ResponsePolicy(id="stop-all", mode="block")
    responder = Responder(store, policies=[policy], runtime_env={"PATH": "/nonexistent"})
    event_only = FindingsPipeline(store).process(detection(evidence=[Evidence("event-only", "the event alone")]))
    responder.on_finding(event_only, None)
    assert responder.blocked == set() and store.audit_log(event_only.id) == []
    seen = FindingsPipeline(store).process(detection(file=FileInfo(path="/tmp/y", sha256="f" * 64)))
    responder.on_finding(seen, None)
    assert responder.blocked == {CID}
    [(_, stop)] = store.audit_log(seen.id)
    assert (stop.action, stop.by, stop.ok) == ("stop", "policy:stop-all", False), "ctr is not on that PATH"


def test_quarantine_and_restore_act_on_every_path_the_content_was_seen_at(root: Path, store: SqlStore) -> None:
    """One binary copied to two paths is one finding with two sightings: both copies are made unexecutable,
    each re-identified on its own (a copy replaced meanwhile is refused alone), and both are restored."""
    shutil.copy(root / "tmp" / "bb", root / "tmp" / "bb2")
    (root / "tmp" / "bb3").write_bytes(b"\x7fELF dropped binary")
    (root / "tmp" / "bb3").chmod(0o755)
    _file_finding(store, root, "/tmp/bb2", capture_inode=False)
    _file_finding(store, root, "/tmp/bb3", capture_inode=False)
    finding = _file_finding(store, root, "/tmp/bb")
    assert {s.path for s in finding.sightings} == {"/tmp/bb", "/tmp/bb2", "/tmp/bb3"}
    (root / "tmp" / "bb3").unlink()
    (root / "tmp" / "bb3").write_bytes(b"something else entirely")  # replaced since it was seen
    (root / "tmp" / "bb3").chmod(0o755)
    responder = Responder(store, locate=lambda _cid: str(root))
    done = responder.act("quarantine", finding.id, "alice")
    assert done.ok and done.values["other_paths"] == 2 and done.values["other_paths_done"] == 1, done
    assert [(root / "tmp" / n).stat().st_mode & 0o777 for n in ("bb", "bb2", "bb3")] == [0, 0, 0o755]
    stored = store.get_finding(finding.id)
    assert stored is not None
    refused = [a for a in stored.actions if a.values.get("refused")]
    assert [a.values["path"] for a in refused] == ["/tmp/bb3"] and "changed since the finding" in refused[0].detail
    restored = responder.act("restore", finding.id, "alice")
    assert restored.ok and restored.values["other_paths_done"] == 1
    assert [(root / "tmp" / n).stat().st_mode & 0o777 for n in ("bb", "bb2", "bb3")] == [0o755, 0o755, 0o755]
