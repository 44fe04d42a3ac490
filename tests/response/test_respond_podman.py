"""`bindrift respond` on findings a real agent raised in a real podman container: kill (pidfd), pause,
quarantine and restore, and delete-pod outside a cluster; each recorded on the finding and in the audit log.
The container swapping the file for a symlink to a file on its volume, or for a copy, is refused."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_for
from tests.containers import Podman, busybox_rootfs_tar, make_podman, podman_available

from bindrift.schema.finding import Finding
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

pytestmark = [pytest.mark.skipif(not podman_available(), reason="needs podman, as root"), pytest.mark.slow]


@dataclass
class Setup:
    podman: Podman
    cid: str
    db: str
    volume: Path

    def sh(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", "exec", self.cid, "sh", "-c", script], env=self.podman.env,
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip

    def finding(self, path: str) -> Finding | None:
        store = SqlStore(self.db)
        try:
            found = [f for f in store.list_findings(FindingFilter(container_id=self.cid)) if f.file.path == path]
            return store.get_finding(found[0].id) if found else None
        finally:
            store.close()

    def respond(self, verb: str, finding_id: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BINDRIFT, "respond", verb, finding_id, "--by", "tester", "--db", self.db],
                              env=self.podman.env, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("respond")
    podman = make_podman(work / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(busybox, work / "rootfs.tar")),
           "localhost/bdrespond:latest")  # fmt: skip
    db, log = f"sqlite:///{work / 'agent.db'}", work / "agent.log"
    with log.open("w") as err:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--evidence-dir", str(work / "evidence"),
                                  "--duration", "300"], stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    cid = ""
    try:
        wait_for(lambda: "agent started" in log.read_text() or agent.poll() is not None, 20, "the agent")
        name = f"bdrespond-{uuid.uuid4().hex[:8]}"
        volume = work / "volume"
        volume.mkdir()
        (volume / "victim").write_bytes(b"a file of the host, shared with the container")
        (volume / "victim").chmod(0o755)
        cid = podman("run", "-d", "--name", name, "-v", f"{volume}:/vol", "localhost/bdrespond:latest", "sleep",
                     "600").strip()  # fmt: skip
        wait_for(lambda: f"watching container {cid}" in log.read_text(), 30, "discovery")  # a loaded, shared machine
        yield Setup(podman, cid, db, volume)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        if cid:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False,
                           timeout=60)  # fmt: skip
        podman.reset()


def test_kill_the_finding_process_through_a_pidfd(setup: Setup) -> None:
    assert setup.sh("mkdir /tmp/k && cp /bin/busybox /tmp/k/busybox").returncode == 0
    subprocess.run(["podman", "exec", "-d", setup.cid, "/tmp/k/busybox", "sleep", "300"], env=setup.podman.env,
                   check=True, capture_output=True, timeout=30)  # fmt: skip

    def captured() -> bool:
        found = setup.finding("/tmp/k/busybox")
        return found is not None and [a.action for a in found.actions] == ["capture"]

    wait_for(captured, 30, "the finding with its evidence")
    finding = setup.finding("/tmp/k/busybox")
    assert finding is not None and finding.process is not None
    pid = finding.process.pid
    assert finding.process.args == ["/tmp/k/busybox", "sleep", "300"] and os.path.exists(f"/proc/{pid}")
    done = setup.respond("kill", finding.id)
    assert (done.returncode, done.stdout) == (0, f"done: process {pid} killed (SIGKILL)\n"), done.stderr
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 5, "the process to die")
    again = setup.respond("kill", finding.id)
    assert again.returncode == 1 and again.stderr.startswith(f"failed: process {pid} is gone")
    finding = setup.finding("/tmp/k/busybox")
    assert finding is not None
    kills = [a for a in finding.actions if a.action == "kill"]
    assert [(a.ok, a.by, a.values) for a in kills] == [
        (True, "tester", {"pid": pid, "verified": "start time,executable"}),
        (False, "tester", {"pid": pid}),
    ]
    assert [a.action for a in finding.actions] == ["capture", "kill", "kill"], "evidence captured at detection"
    store = SqlStore(setup.db)
    try:
        log = store.audit_log(finding.id)
    finally:
        store.close()
    assert log == [(finding.id, action) for action in finding.actions]


def test_quarantine_then_restore(setup: Setup) -> None:
    """Every copy of the content is made unexecutable (busybox at /tmp/q/busybox and /tmp/q/true: one finding,
    two sightings; the kill test's /tmp/k copy too when it ran first), then restored."""
    made = setup.sh("mkdir /tmp/q && cp /bin/busybox /tmp/q/true && /tmp/q/true && "
                    "cp /bin/busybox /tmp/q/busybox && /tmp/q/busybox true")  # fmt: skip
    assert made.returncode == 0
    wait_for(lambda: setup.finding("/tmp/q/busybox") is not None, 30, "the finding")
    finding = setup.finding("/tmp/q/busybox")
    assert finding is not None
    others = sorted({s.path for s in finding.sightings} - {"/tmp/q/busybox"})
    assert "/tmp/q/true" in others
    done = setup.respond("quarantine", finding.id)
    assert (done.returncode, done.stdout) == (0, "done: /tmp/q/busybox made unexecutable (mode 755 → 000); "
                                                 f"{len(others)} of {len(others)} other path(s) too\n")  # fmt: skip
    blocked = setup.sh("/tmp/q/busybox echo ran; echo rc=$?; stat -c %a /tmp/q/busybox " + " ".join(others))
    assert blocked.stdout == "rc=126\n0\n" + "0\n" * len(others) and "Permission denied" in blocked.stderr, blocked
    restored = setup.respond("restore", finding.id)
    suffix = f"{len(others)} of {len(others)} other path(s) too\n"
    assert (restored.returncode, restored.stdout) == (0, f"done: /tmp/q/busybox restored to mode 755; {suffix}")
    assert setup.sh("/tmp/q/busybox echo ran && /tmp/q/true").stdout == "ran\n"
    store = SqlStore(setup.db)
    try:
        finding = store.get_finding(finding.id)  # by id: its last path is /tmp/q/true again now
    finally:
        store.close()
    assert finding is not None
    quarantines = {a.values["path"]: a for a in finding.actions if a.action == "quarantine"}
    restores = {a.values["path"]: a for a in finding.actions if a.action == "restore"}
    assert sorted(quarantines) == sorted(restores) == sorted([*others, "/tmp/q/busybox"])
    quarantine = quarantines["/tmp/q/busybox"]
    assert quarantine.values["mode"] == 0o755 and quarantine.values["sha256"] == finding.file.sha256
    assert isinstance(quarantine.values["inode"], int) and "sha256" in str(quarantine.values["verified"])
    assert all(a.ok and a.values["mode"] == 0o755 for a in restores.values())


def test_a_file_swapped_for_a_symlink_to_a_volume_file_is_not_quarantined(setup: Setup) -> None:
    made = setup.sh(
        "mkdir /tmp/s && cp /bin/busybox /tmp/s/busybox && echo swap >> /tmp/s/busybox && /tmp/s/busybox true"
    )
    assert made.returncode == 0, "a binary of its own: a new finding, its inode recorded at capture"

    def captured() -> bool:
        found = setup.finding("/tmp/s/busybox")
        return found is not None and any(a.action == "capture" for a in found.actions)

    wait_for(captured, 30, "the finding with its evidence")
    finding = setup.finding("/tmp/s/busybox")
    assert finding is not None
    assert setup.sh("mv /tmp/s/busybox /tmp/busybox.kept && ln -s /vol/victim /tmp/s/busybox").returncode == 0
    refused = setup.respond("quarantine", finding.id)
    assert refused.returncode == 1
    assert refused.stderr == ("failed: refused: cannot open /tmp/s/busybox as a regular file without following a "
                              "symlink or crossing a mount: Too many levels of symbolic links\n")  # fmt: skip
    assert (setup.volume / "victim").stat().st_mode & 0o777 == 0o755, "the volume's file was not touched"
    swapped_dir = setup.sh(
        "rm /tmp/s/busybox && rmdir /tmp/s && cp /tmp/busybox.kept /vol/busybox && ln -s /vol /tmp/s"
    )
    assert swapped_dir.returncode == 0
    assert setup.respond("quarantine", finding.id).stderr.endswith("Too many levels of symbolic links\n")
    assert (setup.volume / "busybox").stat().st_mode & 0o777 == 0o755
    copied = setup.sh("rm /tmp/s && mkdir /tmp/s && cp /tmp/busybox.kept /tmp/s/busybox")  # same bytes, new inode
    assert copied.returncode == 0
    replaced = setup.respond("quarantine", finding.id)
    assert replaced.returncode == 1 and "refused: /tmp/s/busybox was replaced since the finding" in replaced.stderr
    assert setup.sh("mv /tmp/busybox.kept /tmp/s/busybox").returncode == 0  # the detected file, back in place
    done = setup.respond("quarantine", finding.id)
    assert (done.returncode, done.stdout) == (0, "done: /tmp/s/busybox made unexecutable (mode 755 → 000)\n")
    assert setup.sh("stat -c %a /tmp/s/busybox").stdout == "0\n"


def test_pause_through_podman_and_no_pod_to_delete(setup: Setup) -> None:
    finding = setup.finding("/tmp/q/busybox") or setup.finding("/tmp/q/true") or setup.finding("/tmp/k/busybox")
    assert finding is not None
    done = setup.respond("pause", finding.id)
    try:
        assert (done.returncode, done.stdout) == (0, f"done: container {setup.cid[:12]} paused (podman)\n")
        assert setup.podman("inspect", "--format", "{{.State.Status}}", setup.cid).strip() == "paused"
    finally:
        setup.podman("unpause", setup.cid)
    pod = setup.respond("delete-pod", finding.id)
    assert (pod.returncode, pod.stderr) == (1, "failed: the finding names no pod\n")
    missing = setup.respond("kill", "0" * 32)
    assert (missing.returncode, missing.stderr) == (2, f"no finding {'0' * 32}\n")
