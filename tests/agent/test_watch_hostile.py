"""Watch coverage that a container can neither escape nor blind, with real podman containers and a real agent:
volumes and tmpfs are watched, a 20 GB sparse ELF, a character device and a FIFO cannot stall the agent, a
self-deleting binary is still reported, a script is not a binary, and a container that cannot be read or
marked raises *Coverage degraded* without blinding the others. Findings are filtered by this test's
containers (the machine is shared)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_for, wait_logged
from tests.containers import Podman, busybox_rootfs_tar, make_podman, podman_available

from bindrift.schema.finding import Finding
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not podman_available(), reason="needs podman, as root")]
LOADER = "/lib64/ld-linux-x86-64.so.2"


@dataclass
class Node:
    """The agent, its log and database, and two containers: `a` with a volume, a tmpfs and CAP_MKNOD, `b` plain."""

    podman: Podman
    agent: subprocess.Popen[bytes]
    log: Path
    db: str
    a: str
    b: str
    volume: Path
    state_root: Path

    def run(self, cid: str, script: str, stdin: bytes | None = None) -> int:
        return subprocess.run(["podman", "exec", *(["-i"] if stdin is not None else []), cid, "sh", "-c", script],
                              env=self.podman.env, input=stdin, capture_output=True, timeout=60,
                              check=False).returncode  # fmt: skip

    def findings(self, cid: str, category: str | None = None) -> list[Finding]:
        store = SqlStore(self.db)
        try:
            return store.list_findings(FindingFilter(container_id=cid, category=category, limit=1000))
        finally:
            store.close()

    def finding(self, cid: str, path: str, timeout: float = 10) -> Finding:
        found: list[Finding] = []

        def arrived() -> bool:
            found[:] = [f for f in self.findings(cid) if f.file.path == path]
            return bool(found)

        wait_for(arrived, timeout, f"a finding on {path}")
        (finding,) = found
        return finding

    def latency(self, cid: str, name: str) -> float:
        """Seconds from a new binary's exec returning in `cid` to its finding being stored."""
        # Named after an applet: busybox runs the applet its file is called.
        path = f"/tmp/{name}/true"
        assert self.run(cid, f"mkdir /tmp/{name} && cp /bin/busybox {path} && echo {name} >> {path} && {path}") == 0
        started = time.monotonic()
        self.finding(cid, path, timeout=30)
        return time.monotonic() - started


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("hostile")
    podman = make_podman(work / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    rootfs = busybox_rootfs_tar(busybox, work / "rootfs.tar", {LOADER: Path(LOADER).resolve()})
    podman("import", "--change", 'CMD ["/bin/sh"]', str(rootfs), "localhost/bdhostile:latest")
    volume, state_root = work / "volume", work / "state"
    volume.mkdir()
    state_root.mkdir()
    db, log_path = f"sqlite:///{work / 'agent.db'}", work / "agent.log"
    with log_path.open("w") as log:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--node-name", "node-hostile", "--duration", "600",
                                  "--state-root", f"containerd={state_root}"], stdout=subprocess.DEVNULL,
                                 stderr=log)  # fmt: skip
    ids: list[str] = []
    try:
        wait_logged(log_path, "agent started", 30)
        unique = uuid.uuid4().hex[:8]
        ids.append(podman("run", "-d", "--name", f"bdhostile-a-{unique}", "-v", f"{volume}:/data",
                          "--tmpfs", "/scratch:rw,exec,size=16m", "--cap-add", "MKNOD", "localhost/bdhostile:latest",
                          "sleep", "600").strip())  # fmt: skip
        ids.append(podman("run", "-d", "--name", f"bdhostile-b-{unique}", "localhost/bdhostile:latest", "sleep",
                          "600").strip())  # fmt: skip
        for cid in ids:
            wait_logged(log_path, f"watching container {cid}", 10)
        yield Node(podman, agent, log_path, db, ids[0], ids[1], volume, state_root)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        for cid in ids:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False)
        podman.reset()


def test_volume_and_tmpfs_are_watched(node: Node, test_binaries: Path) -> None:
    busybox = (test_binaries / "busybox-static-amd64" / "bin" / "busybox").read_bytes()
    for where, suffix in (("/data", b"volume\n"), ("/scratch", b"tmpfs\n")):
        assert node.run(node.a, f"cat > {where}/true && chmod 755 {where}/true", stdin=busybox + suffix) == 0
        assert node.run(node.a, f"{where}/true") == 0
    foreign = (test_binaries / "dropbear-bin-arm64" / "usr" / "sbin" / "dropbear").read_bytes()
    assert node.run(node.a, "cat > /data/dropbear", stdin=foreign) == 0
    for path, kind, fstype in (("/data/true", "volume", ""), ("/scratch/true", "tmpfs", "tmpfs")):
        finding = node.finding(node.a, path)
        assert finding.category == "Added Binary Executed" and finding.resource.container_id == node.a
        suffix = b"volume\n" if kind == "volume" else b"tmpfs\n"
        assert finding.file.sha256 == hashlib.sha256(busybox + suffix).hexdigest()
        mount = next(e for e in finding.evidence if e.kind == "mount")
        assert mount.values["mountpoint"] == path.rsplit("/", 1)[0] and mount.values["kind"] == kind
        assert mount.values["seen_written"] is True and (not fstype or mount.values["fstype"] == fstype)
        assert finding.writer is not None and finding.writer.exe.endswith("busybox")
    assert (node.volume / "true").read_bytes() == busybox + b"volume\n"  # the host's view of the same file
    finding = node.finding(node.a, "/data/dropbear")
    assert finding.category == "Suspicious binary" and finding.file.elf is not None
    assert finding.file.elf.arch == "aarch64" and finding.file.sha256 == hashlib.sha256(foreign).hexdigest()
    mount = next(e for e in finding.evidence if e.kind == "mount")
    assert mount.values["mountpoint"] == "/data" and mount.values["kind"] == "volume"


def test_sparse_20g_elf_does_not_delay_another_container(node: Node, test_binaries: Path) -> None:
    baseline = node.latency(node.b, "before-sparse")
    foreign = (test_binaries / "busybox-static-arm64" / "bin" / "busybox").read_bytes()
    # A 20 GB file with an ELF header, written with one write (dd from a regular file, one 4 MiB block).
    assert node.run(node.a, "cat > /tmp/big.hdr", stdin=foreign) == 0
    script = "truncate -s 20G /tmp/big && dd if=/tmp/big.hdr of=/tmp/big conv=notrunc bs=4194304 2>/dev/null"
    assert node.run(node.a, script) == 0
    delayed = node.latency(node.b, "after-sparse")
    assert delayed <= baseline + 1.0, (baseline, delayed)
    head = hashlib.sha256((foreign + bytes(64 * 2**20 - len(foreign)))[: 64 * 2**20]).hexdigest()
    final: list[Finding] = []

    def as_last_written() -> bool:
        """truncate's close may be read while dd writes the header (the kernel gives a reader no all-or-nothing
        view of a write): its finding can show a part of it, and dd's close, read next, brings the finding to
        the file as last written."""
        final[:] = [node.finding(node.a, "/tmp/big")]
        return any(e.values.get("head_sha256") == head for e in final[0].evidence if e.kind == "budget")

    wait_for(as_last_written, 30, "the sparse file's finding as last written")
    (finding,) = final
    assert finding.category == "Suspicious binary" and finding.file.size == 20 * 2**30
    assert finding.file.elf is not None and finding.file.elf.arch == "aarch64"
    assert finding.file.sha256 == ""  # not hashed whole: the head's hash is in the evidence
    budget = next(e for e in finding.evidence if e.kind == "budget")
    assert budget.values["bounded"] is True and budget.values["hashed_bytes"] == 64 * 2**20
    assert node.agent.poll() is None


def test_large_added_binary_run_in_a_loop_does_not_delay_another_container(node: Node, test_binaries: Path) -> None:
    baseline = node.latency(node.b, "before-large")
    busybox = (test_binaries / "busybox-static-amd64" / "bin" / "busybox").read_bytes()
    padding = 60 * 2**20
    # A 60 MiB ELF (static busybox padded: it still runs, as the applet its name says), run every 20 ms for
    # 6 s: each exec is hashed and compared with the image layers on the content worker, the first one copied.
    setup = f"mkdir /tmp/large && cp /bin/busybox /tmp/large/true && head -c {padding} /dev/zero >> /tmp/large/true"
    assert node.run(node.a, setup) == 0
    script = (
        "end=$(($(date +%s) + 6)); n=0; "
        'while [ "$(date +%s)" -lt $end ]; do /tmp/large/true; n=$((n+1)); sleep 0.02; done'
    )
    loop = subprocess.Popen(["podman", "exec", node.a, "sh", "-c", f"{script}; echo $n"], env=node.podman.env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(1.5)  # well into the loop: the content worker has a queue of large files by now
        delayed = node.latency(node.b, "during-large")
        assert loop.poll() is None, "the loop was still running while the other container's finding was timed"
    finally:
        out, _err = loop.communicate(timeout=120)
    runs = int(out)
    assert delayed <= baseline + 1.0, (baseline, delayed)
    digest = hashlib.sha256(busybox + bytes(padding)).hexdigest()
    store = SqlStore(node.db)
    try:

        def compared() -> list[Finding]:
            found = [f for f in node.findings(node.a, "Added Binary Executed") if f.file.sha256 == digest]
            return [f for f in store.get_findings([f.id for f in found]) if f.actions]

        wait_for(compared, 30, "the large binary's finding with its evidence copy")
        (finding,) = compared()
    finally:
        store.close()
    assert finding.file.path == "/tmp/large/true" and finding.file.size == len(busybox) + padding
    assert 2 <= finding.count <= runs, (finding.count, runs)  # compared at every exec the queue had room for
    (capture,) = [a for a in finding.actions if a.action == "capture"]
    assert capture.ok and capture.values["sha256"] == digest and capture.values["size"] == finding.file.size
    layers = next(e for e in finding.evidence if e.kind == "layers")
    assert layers.values["upper"] is True and layers.values["lower_layers"] == 1
    assert node.agent.poll() is None


def test_character_device_through_the_loader_is_never_read(node: Node) -> None:
    baseline = node.latency(node.b, "before-chardev")
    # /dev/zero's numbers: the loader reads zeros and gives up; an agent hashing it would never finish.
    node.run(node.a, f"mknod /tmp/zero c 1 5 && {LOADER} /tmp/zero; true")
    delayed = node.latency(node.b, "after-chardev")
    assert delayed <= baseline + 1.0, (baseline, delayed)
    assert not [f for f in node.findings(node.a) if f.file.path == "/tmp/zero"]
    assert node.agent.poll() is None


def test_fifo_through_the_loader_loses_no_process_events(node: Node) -> None:
    script = (f"mkfifo /tmp/pipe && ({LOADER} /tmp/pipe & ) && sleep 0.3 && "
              "mkdir /tmp/fifo && cp /bin/busybox /tmp/fifo/true && echo fifo >> /tmp/fifo/true && /tmp/fifo/true && "
              "echo > /tmp/pipe")  # fmt: skip
    assert node.run(node.a, script) == 0
    finding = node.finding(node.a, "/tmp/fifo/true")
    assert finding.category == "Added Binary Executed" and finding.process is not None
    assert finding.process.exe == "/tmp/fifo/true"
    assert not [f for f in node.findings(node.a) if f.file.path == "/tmp/pipe"]


def test_self_deleting_binary_is_reported_from_its_descriptor(node: Node, test_binaries: Path) -> None:
    # Held still while the binary runs and deletes itself: the agent reads the exec event after the rm.
    os.kill(node.agent.pid, signal.SIGSTOP)
    try:
        script = ("cp /bin/busybox /tmp/gone && echo gone >> /tmp/gone && (/tmp/gone sleep 2 &) && sleep 0.3 && "
                  "rm /tmp/gone")  # fmt: skip
        assert node.run(node.b, script) == 0
    finally:
        os.kill(node.agent.pid, signal.SIGCONT)
    finding = node.finding(node.b, "/tmp/gone")
    busybox = (test_binaries / "busybox-static-amd64" / "bin" / "busybox").read_bytes()
    assert finding.category == "Added Binary Executed"
    assert finding.file.sha256 == hashlib.sha256(busybox + b"gone\n").hexdigest()
    kinds = {e.kind: e for e in finding.evidence}
    assert kinds["deleted"].values == {"deleted": True, "last_path": "/tmp/gone"}
    assert kinds["layers"].values["upper"] is False and kinds["layers"].values["lower_layers"] == 1


def test_renamed_binary_keeps_its_writer(node: Node, test_binaries: Path) -> None:
    """Written, then moved (the download-and-install pattern): the writer follows the file, not its first path."""
    content = (test_binaries / "busybox-static-amd64" / "bin" / "busybox").read_bytes() + b"moved\n"
    assert node.run(node.b, "cat > /tmp/download && chmod 755 /tmp/download", stdin=content) == 0
    time.sleep(0.5)  # the write is read (at its first path) well before the move; moved first, it is read there
    assert node.run(node.b, "mkdir -p /opt/moved && mv /tmp/download /opt/moved/true && /opt/moved/true") == 0
    finding = node.finding(node.b, "/opt/moved/true")
    assert finding.category == "Added Binary Executed"
    assert finding.file.sha256 == hashlib.sha256(content).hexdigest()
    # busybox's sh runs `cat` in a fork without an exec: the writer is that fork of the shell
    assert finding.writer is not None and finding.writer.exe.endswith("busybox")
    written = next(e for e in finding.evidence if e.kind == "writer")
    assert written.values["pid"] == finding.writer.pid


def test_reading_a_written_file_leaves_its_access_time(node: Node, test_binaries: Path) -> None:
    """The agent reads what it is told about without touching the access time, evidence of its own."""
    if os.statvfs(node.volume).f_flag & os.ST_NOATIME:
        pytest.skip("the volume's file system never updates access times")
    foreign = (test_binaries / "dropbear-bin-arm64" / "usr" / "sbin" / "dropbear").read_bytes() + b"atime\n"
    # Held still until the file's times are in the past: any read would then move its access time (relatime).
    os.kill(node.agent.pid, signal.SIGSTOP)
    try:
        assert node.run(node.a, "cat > /data/atime && touch -d '2020-01-02 03:04:05' /data/atime", foreign) == 0
    finally:
        os.kill(node.agent.pid, signal.SIGCONT)
    before = os.stat(node.volume / "atime")
    finding = node.finding(node.a, "/data/atime")
    assert finding.category == "Suspicious binary" and finding.file.sha256 == hashlib.sha256(foreign).hexdigest()
    after = os.stat(node.volume / "atime")
    print("TIMES", before, after)
    assert after.st_atime_ns == before.st_atime_ns == before.st_mtime_ns


def test_script_is_added_script_executed(node: Node) -> None:
    assert node.run(node.b, "printf '#!/bin/sh\\necho hi\\n' > /tmp/run.sh && chmod +x /tmp/run.sh && /tmp/run.sh") == 0
    finding = node.finding(node.b, "/tmp/run.sh")
    assert (finding.category, finding.severity) == ("Added Script Executed", "info")
    script = next(e for e in finding.evidence if e.kind == "script")
    assert script.values == {"interpreter": "/bin/sh", "script": "/tmp/run.sh"}
    # Not an ELF file: its writer (the shell running printf) is still remembered, without its path.
    assert finding.writer is not None and finding.writer.exe.endswith("busybox")
    assert not [f for f in node.findings(node.b, "Added Binary Executed") if f.file.path == "/tmp/run.sh"]


def test_unreadable_container_state_raises_coverage_degraded(node: Node) -> None:
    pid = int(node.podman("inspect", "--format", "{{.State.Pid}}", node.b).strip())
    bogus = f"bdhostile-bogus-{uuid.uuid4().hex[:8]}"
    state_dir = node.state_root / "k8s.io" / bogus
    state_dir.mkdir(parents=True)
    (state_dir / "state.json").write_text(json.dumps({"id": bogus, "init_process_pid": pid, "created": "yesterday"}))
    started = time.monotonic()
    found: list[Finding] = []

    def reported() -> bool:
        found[:] = node.findings(bogus, "Coverage degraded")
        return bool(found)

    wait_for(reported, 5, "Coverage degraded for the unreadable container")
    assert time.monotonic() - started < 5
    (finding,) = found
    (evidence,) = finding.evidence
    assert evidence.kind == "discovery" and evidence.values["state_dir"] == str(state_dir)
    assert "ValueError" in str(evidence.values["error"]) and finding.file.path == "container-discovery"
    # The other containers are still watched: a new binary in b is still reported.
    assert node.latency(node.b, "after-bogus") < 5


def test_mark_failure_raises_coverage_degraded_naming_the_container(node: Node, tmp_path: Path) -> None:
    db, log_path = f"sqlite:///{tmp_path / 'marks.db'}", tmp_path / "marks.log"
    with log_path.open("w") as log:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--node-name", "node-marks", "--duration", "60",
                                  "--max-marks", "1"], stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
    try:
        wait_logged(log_path, "agent started", 30)
        started = time.monotonic()
        found: list[Finding] = []

        def reported() -> bool:
            store = SqlStore(db)
            try:
                found[:] = store.list_findings(FindingFilter(container_id=node.a, category="Coverage degraded"))
            finally:
                store.close()
            return bool(found)

        wait_for(reported, 5, "Coverage degraded naming container a")
        assert time.monotonic() - started < 5
        assert agent.poll() is None  # the loop goes on
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    (finding,) = found
    (evidence,) = finding.evidence
    assert evidence.kind == "marks" and evidence.values["container_id"] == node.a
    assert "mark limit reached (1 marks held)" in str(evidence.values["failures"])
    assert finding.resource.container_id == node.a and finding.resource.node == "node-marks"


def test_files_present_before_watching_are_swept(node: Node, test_binaries: Path, tmp_path: Path) -> None:
    foreign = (test_binaries / "dropbear-bin-armhf" / "usr" / "sbin" / "dropbear").read_bytes()
    # Two contents (one finding each: the same content at two paths would be one finding with two sightings).
    script = "cat > /tmp/early && { cat /tmp/early; echo data; } > /data/early && touch -d '2020-01-02' /data/early"
    assert node.run(node.a, script, stdin=foreign) == 0
    before = os.stat(node.volume / "early")
    db, log_path = f"sqlite:///{tmp_path / 'sweep.db'}", tmp_path / "sweep.log"
    with log_path.open("w") as log:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--node-name", "node-sweep", "--duration", "60"],
                                 stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
    found: dict[str, Finding] = {}

    def swept() -> bool:
        store = SqlStore(db)
        try:
            found.update({f.file.path: f for f in store.list_findings(FindingFilter(container_id=node.a))})
        finally:
            store.close()
        return {"/tmp/early", "/data/early"} <= found.keys()

    try:
        wait_logged(log_path, "agent started", 30)
        try:
            wait_for(swept, 45, "the startup sweep's findings")  # generous: a loaded CI machine, other containers
        except AssertionError as exc:
            tail = log_path.read_text()[-3000:]
            raise AssertionError(f"{exc}; found {sorted(found)}; the log says:\n{tail}") from None
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    for path, mountpoint, content in (("/tmp/early", "/", foreign), ("/data/early", "/data", foreign + b"data\n")):
        finding = found[path]
        assert finding.category == "Suspicious binary" and finding.file.sha256 == hashlib.sha256(content).hexdigest()
        assert finding.file.elf is not None and finding.file.elf.arch == "arm" and finding.writer is None
        sweep = next(e for e in finding.evidence if e.kind == "sweep")
        assert sweep.values == {"present_before_watching": True, "mountpoint": mountpoint}
    if not os.statvfs(node.volume).f_flag & os.ST_NOATIME:  # read without moving its access time (evidence)
        assert os.stat(node.volume / "early").st_atime_ns == before.st_atime_ns == before.st_mtime_ns


def test_one_binary_at_two_paths_keeps_both_sightings(node: Node, test_binaries: Path) -> None:
    content = (test_binaries / "busybox-static-amd64" / "bin" / "busybox").read_bytes() + b"twice\n"
    for where in ("/tmp/one", "/opt/two"):
        assert node.run(node.b, f"mkdir -p {where} && cat > {where}/true && chmod 755 {where}/true", content) == 0
        assert node.run(node.b, f"{where}/true") == 0
    digest = hashlib.sha256(content).hexdigest()
    store = SqlStore(node.db)
    try:

        def both() -> list[Finding]:
            found = [f for f in node.findings(node.b, "Added Binary Executed") if f.file.sha256 == digest]
            whole = [store.get_finding(f.id) for f in found]
            return [f for f in whole if f is not None and len(f.sightings) == 2]

        wait_for(both, 20, "one finding with both paths")
        (finding,) = both()
    finally:
        store.close()
    assert [s.path for s in finding.sightings] == ["/tmp/one/true", "/opt/two/true"]
    assert finding.count == 2 and finding.file.path == "/opt/two/true"  # the last one, as before
    for sighting in finding.sightings:
        assert sighting.count == 1 and sighting.writer is not None and sighting.writer.exe.endswith("busybox")
        assert sighting.process is not None and sighting.process.exe == sighting.path
    assert finding.sightings[0].writer != finding.sightings[1].writer  # each path keeps its own writer
