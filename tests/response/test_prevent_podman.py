"""Prevention, blocking and evidence with real podman containers and a real agent (`bindrift watch` as a
subprocess): under `prevent` an added binary's exec fails with EPERM while image binaries run, under `block`
the container is stopped, the captured evidence has the original's SHA-256, and an agent killed while an exec
waits for its decision does not leave the container hanging. Everything is filtered by this test's own
container ids; prevention only holds containers the policies name, so other containers are never touched."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_for
from tests.containers import Podman, busybox_rootfs_tar, make_podman, podman_available
from tests.upx_mutations import rename_magic

from bindrift.schema.finding import Finding
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

pytestmark = [pytest.mark.skipif(not podman_available(), reason="needs podman, as root"), pytest.mark.slow]
TOKEN = uuid.uuid4().hex[:8]
POLICIES = f"""
[[policy]]
id = "prevent-test"
mode = "prevent"
container = "bdprev{TOKEN}-*"
drift = true

[[policy]]
id = "harm-test"
mode = "prevent"
container = "bdharm{TOKEN}-*"

[[policy]]
id = "block-test"
mode = "block"
container = "bdblock{TOKEN}-*"
category = "Added Binary Executed"
"""


# For the agents a test starts of its own: the module's agent must not hold their containers too.
OWN_POLICY = f"""
[[policy]]
id = "own-test"
mode = "prevent"
container = "bdown{TOKEN}-*"
drift = true
"""


def _malware(lab: Lab) -> bytes:
    """A busybox variant the test's intelligence lists as known-malicious."""
    return (lab.binaries / "busybox-static-amd64" / "bin" / "busybox").read_bytes() + b"malware\n"


@dataclass
class Agent:
    process: subprocess.Popen[bytes]
    log: Path
    db: str
    evidence: Path

    def text(self) -> str:
        return self.log.read_text()

    def findings(self, cid: str) -> dict[str, Finding]:
        store = SqlStore(self.db)
        try:
            return {f.category + ":" + f.file.path: store.get_finding(f.id)  # type: ignore[misc]
                    for f in store.list_findings(FindingFilter(container_id=cid, limit=100))}  # fmt: skip
        finally:
            store.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _start_agent(work: Path, podman: Podman, *extra: str, policies: str = POLICIES) -> Agent:
    work.mkdir(parents=True, exist_ok=True)
    (work / "policy.toml").write_text(policies)
    db, log = f"sqlite:///{work / 'agent.db'}", work / "agent.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [BINDRIFT, "watch", "--db", db, "--policy", str(work / "policy.toml"), "--evidence-dir",
             str(work / "evidence"), "--duration", "300", *extra],
            stdout=subprocess.DEVNULL, stderr=err, env=podman.env,  # the agent's podman is the test's podman
        )  # fmt: skip
    agent = Agent(process, log, db, work / "evidence")
    wait_for(lambda: "agent started" in agent.text() or process.poll() is not None, 20, "the agent")
    assert process.poll() is None, agent.text()
    return agent


@dataclass
class Lab:
    podman: Podman
    work: Path
    busybox_sha: str
    cids: list[str]
    binaries: Path

    def run_container(self, name: str, agent: Agent, prevented: bool, *options: str) -> str:
        cid = self.podman("run", "-d", "--name", name, *options, "localhost/bdresp:latest", "sleep", "600").strip()
        self.cids.append(cid)
        wait_for(lambda: f"watching container {cid}" in agent.text(), 30, "discovery")  # a loaded, shared machine
        if prevented:
            wait_for(lambda: f"preventing in container {cid}" in agent.text(), 10, "prevention")
        return cid

    def sh(
        self, cid: str, script: str, timeout: float = 30, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        run = subprocess.run(["podman", "exec", "-i", cid, "sh", "-c", script], env=self.podman.env, input=stdin,
                             capture_output=True, timeout=timeout, check=False)  # fmt: skip
        return subprocess.CompletedProcess(run.args, run.returncode, run.stdout.decode(errors="replace"),
                                           run.stderr.decode(errors="replace"))  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> Iterator[Lab]:
    work = tmp_path_factory.mktemp("response")
    podman = make_podman(work / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(busybox, work / "rootfs.tar")),
           "localhost/bdresp:latest")  # fmt: skip
    lab = Lab(podman, work, hashlib.sha256(busybox.read_bytes()).hexdigest(), [], test_binaries)
    try:
        yield lab
    finally:
        for cid in lab.cids:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False,
                           timeout=60)  # fmt: skip
        podman.reset()


@pytest.fixture(scope="module")
def agent(lab: Lab) -> Iterator[Agent]:
    (lab.work / "agent").mkdir()
    intel = lab.work / "agent" / "bad.sha256"
    intel.write_text(hashlib.sha256(_malware(lab)).hexdigest() + "\n")
    subprocess.run([BINDRIFT, "intel", "add", str(intel), "--db", f"sqlite:///{lab.work / 'agent' / 'agent.db'}"],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    started = _start_agent(lab.work / "agent", lab.podman)
    try:
        yield started
    finally:
        started.stop()


def test_prevent_denies_an_added_binary_and_keeps_its_evidence(lab: Lab, agent: Agent) -> None:
    cid = lab.run_container(f"bdprev{TOKEN}-a", agent, prevented=True)
    assert lab.sh(cid, "cp /bin/busybox /tmp/added").returncode == 0
    result = lab.sh(cid, "/tmp/added echo ran; echo rc=$?")
    assert "ran" not in result.stdout and "rc=126" in result.stdout, result
    assert "Operation not permitted" in result.stderr, result
    image = lab.sh(cid, "ls /bin/busybox && echo image-ok")
    assert (image.returncode, image.stdout) == (0, "/bin/busybox\nimage-ok\n"), "image binaries run normally"

    wait_for(lambda: "Added Binary Executed:/tmp/added" in agent.findings(cid), 10, "the prevented finding")
    key = "Added Binary Executed:/tmp/added"
    wait_for(lambda: {"capture", "prevent"} <= {a.action for a in agent.findings(cid)[key].actions}, 5,
              "the evidence and prevention records")  # fmt: skip
    finding = agent.findings(cid)["Added Binary Executed:/tmp/added"]
    assert (finding.severity, finding.state, finding.source) == ("low", "active", "agent")
    assert finding.file.sha256 == lab.busybox_sha and finding.file.size > 0
    assert finding.resource.container_id == cid and finding.resource.runtime == "podman"
    assert finding.process is not None and finding.process.pid > 0
    assert finding.writer is not None and finding.writer.exe.endswith("busybox")  # from the denied descriptor
    kinds = {e.kind: e for e in finding.evidence}
    assert kinds["prevention"].values == {"decision": "deny", "policy": "prevent-test", "mode": "prevent"}
    assert kinds["layers"].values["upper"] is True and kinds["layers"].values["lower_layers"] == 1
    actions = {a.action: a for a in finding.actions}
    prevent = actions["prevent"]
    assert (prevent.ok, prevent.by, prevent.values["policy"]) == (True, "policy:prevent-test", "prevent-test")
    assert prevent.detail == "execution of /tmp/added denied (EPERM)"
    capture = actions["capture"]
    assert (capture.ok, capture.by, capture.values["sha256"]) == (True, "bindrift", lab.busybox_sha)
    assert "Prevention degraded:/tmp/added" not in agent.findings(cid)

    store = SqlStore(agent.db)
    try:
        [record] = store.list_evidence(finding.id)
    finally:
        store.close()
    assert (record.id, record.finding_id, record.sha256) == (capture.values["evidence_id"], finding.id, lab.busybox_sha)
    assert (record.path, record.resource.container_id, record.verified) == ("/tmp/added", cid, True)
    stored = Path(record.stored)
    assert stored == agent.evidence / "sha256" / lab.busybox_sha[:2] / lab.busybox_sha
    assert record.size == stored.stat().st_size and hashlib.sha256(stored.read_bytes()).hexdigest() == lab.busybox_sha
    assert stored.stat().st_mode & 0o777 == 0o400 and agent.evidence.stat().st_mode & 0o777 == 0o700
    out = lab.work / f"evidence-{record.id}"
    command = [BINDRIFT, "evidence", "get", record.id, "-o", str(out), "--evidence-dir", str(agent.evidence),
               "--db", agent.db]  # fmt: skip
    got = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == lab.busybox_sha and out.stat().st_mode & 0o777 == 0o400
    assert got.stdout.strip() == f"{out}: {record.size} bytes, sha256 {lab.busybox_sha} (verified)"


def test_prevent_denies_before_an_attacker_can_delete_the_file(lab: Lab, agent: Agent) -> None:
    cid = lab.run_container(f"bdprev{TOKEN}-b", agent, prevented=True)
    script = "cat /bin/busybox > /tmp/gone && echo x >> /tmp/gone && chmod 755 /tmp/gone; /tmp/gone true; rm /tmp/gone"
    assert "Operation not permitted" in lab.sh(cid, script).stderr
    key = "Added Binary Executed:/tmp/gone"
    wait_for(lambda: key in agent.findings(cid) and any(a.action == "capture" for a in agent.findings(cid)[key]
                                                           .actions), 10, "the finding with its evidence")  # fmt: skip
    assert lab.sh(cid, "test -e /tmp/gone || echo deleted").stdout == "deleted\n"
    finding = agent.findings(cid)[key]
    expected = hashlib.sha256((lab.work / "rootfs.d" / "bin" / "busybox").read_bytes() + b"x\n").hexdigest()
    assert finding.file.sha256 == expected
    store = SqlStore(agent.db)
    try:
        [record] = store.list_evidence(finding.id)
    finally:
        store.close()
    assert hashlib.sha256(Path(record.stored).read_bytes()).hexdigest() == expected


def test_prevent_without_drift_denies_only_harmful_binaries(lab: Lab, agent: Agent) -> None:
    cid = lab.run_container(f"bdharm{TOKEN}-a", agent, prevented=True)
    upx = lab.binaries / "upx-ucl-amd64" / "usr" / "bin" / "upx-ucl"
    packed = lab.work / "bb.upx"
    subprocess.run([str(upx), "-q", "-1", "-o", str(packed), str(lab.binaries / "busybox-static-amd64" / "bin" /
                    "busybox")], check=True, capture_output=True, timeout=120)  # fmt: skip
    dropbear = lab.binaries / "dropbear-bin-arm64" / "usr" / "sbin" / "dropbear"
    files = {"packed": rename_magic(packed.read_bytes()), "dropbear": dropbear.read_bytes(),
             "malware": _malware(lab)}  # fmt: skip
    for name, content in files.items():
        script = f"mkdir -p /tmp/{name} && cat > /tmp/{name}/busybox && chmod 755 /tmp/{name}/busybox"
        assert lab.sh(cid, script, stdin=content).returncode == 0
        denied = lab.sh(cid, f"/tmp/{name}/busybox echo ran; echo rc=$?")
        assert (denied.stdout, denied.stderr) == ("rc=126\n", f"sh: /tmp/{name}/busybox: Operation not permitted\n")
    allowed = lab.sh(cid, "mkdir /tmp/plain && cp /bin/busybox /tmp/plain/busybox && /tmp/plain/busybox echo ran")
    assert allowed.stdout == "ran\n", "an added binary that is not harmful runs: this policy has no `drift`"

    keys = {"packed": "Added Binary Executed:/tmp/packed/busybox",
            "dropbear": "Added Binary Executed:/tmp/dropbear/busybox",
            "malware": "Added Malicious Binary Executed:/tmp/malware/busybox"}  # fmt: skip
    plain_key = "Added Binary Executed:/tmp/plain/busybox"

    def complete() -> bool:
        now = agent.findings(cid)
        return plain_key in now and all(k in now and any(a.action == "prevent" for a in now[k].actions)
                                        for k in keys.values())  # fmt: skip

    wait_for(complete, 10, "the prevented findings with their actions, and the plain one")
    found = agent.findings(cid)
    for key in keys.values():
        kinds = {e.kind: e for e in found[key].evidence}
        assert kinds["prevention"].values == {"decision": "deny", "policy": "harm-test", "mode": "prevent"}, key
        assert [a.action for a in found[key].actions if a.action == "prevent"] == ["prevent"], key
    assert "upx_magic_changed" in {c.check for c in found[keys["packed"]].file.triage}
    assert found[keys["packed"]].severity == "low"
    elf = found[keys["dropbear"]].file.elf
    assert elf is not None and elf.arch == "aarch64" and "foreign_arch" in {c.check for c in found[keys["dropbear"]]
                                                                            .file.triage}  # fmt: skip
    malware = found[keys["malware"]]
    assert (malware.severity, malware.indicator is not None) == ("critical", True)
    assert malware.indicator is not None and [m.kind for m in malware.indicator.matches] == ["sha256"]
    plain = found[plain_key]
    assert "prevention" not in {e.kind for e in plain.evidence} and "prevent" not in {a.action for a in plain.actions}


def test_block_stops_the_container(lab: Lab, agent: Agent) -> None:
    cid = lab.run_container(f"bdblock{TOKEN}-a", agent, prevented=True)
    # block denies only harmful execs (no `drift`): this added copy runs, its finding then stops the container
    # (busybox picks its applet by its name: a copy runs as `busybox` from a folder of its own).
    result = lab.sh(cid, "mkdir /tmp/blocked && cp /bin/busybox /tmp/blocked/busybox && /tmp/blocked/busybox echo ran")
    assert result.stdout == "ran\n", result

    def state() -> str:
        return lab.podman("inspect", "--format", "{{.State.Status}}", cid).strip()

    key = "Added Binary Executed:/tmp/blocked/busybox"
    wait_for(lambda: key in agent.findings(cid) and "stop" in {a.action for a in agent.findings(cid)[key].actions},
              20, "the stop action")  # fmt: skip
    wait_for(lambda: state() == "exited", 10, "the container to be stopped")
    finding = agent.findings(cid)[key]
    stop = next(a for a in finding.actions if a.action == "stop")
    assert (stop.ok, stop.by, stop.values["command"]) == (True, "policy:block-test", f"podman stop -t 0 {cid}")
    assert stop.detail == f"container {cid[:12]} stopped (podman)"
    assert "prevention" not in {e.kind for e in finding.evidence}


def test_containers_outside_the_policies_are_not_held(lab: Lab, agent: Agent) -> None:
    cid = lab.run_container(f"bdfree{TOKEN}-a", agent, prevented=False)
    assert (
        lab.sh(cid, "mkdir /tmp/free && cp /bin/busybox /tmp/free/busybox && /tmp/free/busybox echo ran").stdout
        == "ran\n"
    )
    wait_for(lambda: "Added Binary Executed:/tmp/free/busybox" in agent.findings(cid), 10, "the alert finding")
    assert f"preventing in container {cid}" not in agent.text()
    finding = agent.findings(cid)["Added Binary Executed:/tmp/free/busybox"]
    assert [a.action for a in finding.actions] == ["capture"], "alert only: evidence, no action"


def test_deadline_missed_allows_and_reports_degraded(lab: Lab) -> None:
    fast = _start_agent(lab.work / "deadline", lab.podman, "--prevent-deadline-ms", "1", policies=OWN_POLICY)
    try:
        cid = lab.run_container(f"bdown{TOKEN}-deadline", fast, prevented=True)
        # 64 MiB to hash and triage: no decision within 1 ms, so the exec is allowed (fail open).
        script = ("mkdir /tmp/late && (cat /bin/busybox; head -c 67108864 /dev/zero) > /tmp/late/busybox && "
                  "chmod 755 /tmp/late/busybox && /tmp/late/busybox echo ran")  # fmt: skip
        result = lab.sh(cid, script)
        assert result.stdout == "ran\n", result
        wait_for(lambda: "Prevention degraded:/tmp/late/busybox" in fast.findings(cid), 10, "Prevention degraded")
        finding = fast.findings(cid)["Prevention degraded:/tmp/late/busybox"]
        title = "An execution was allowed unchecked: no prevention decision within the deadline"
        assert (finding.severity, finding.title, finding.state) == ("medium", title, "active")
        [deadline] = finding.evidence
        assert deadline.kind == "deadline" and deadline.values["deadline_ms"] == 1
        assert finding.process is not None and finding.process.pid == deadline.values["pid"]

        [worker] = [int(line.rsplit(" ", 1)[1]) for line in fast.text().splitlines() if "prevention process" in line]
        os.kill(worker, signal.SIGKILL)  # the prevention process dies alone: reported, and execs still run

        def died() -> list[Finding]:
            store = SqlStore(fast.db)
            try:
                return store.list_findings(FindingFilter(category="Prevention degraded", text="prevention-process"))
            finally:
                store.close()

        wait_for(died, 10, "the prevention process's death to be reported")
        [dead] = died()
        assert dead.file.path == "prevention-process" and dead.resource.container_id == ""
        assert dead.evidence[0].values["pid"] == worker and dead.evidence[0].values["exit"] == -9
        still = lab.sh(cid, "/tmp/late/busybox echo still", timeout=15)
        assert still.stdout == "still\n", still
    finally:
        fast.stop()


def test_agent_killed_with_a_pending_exec_does_not_hang_the_container(lab: Lab) -> None:
    held = _start_agent(lab.work / "killed", lab.podman, policies=OWN_POLICY)
    try:
        cid = lab.run_container(f"bdown{TOKEN}-killed", held, prevented=True)
        [worker] = [int(line.rsplit(" ", 1)[1]) for line in held.text().splitlines() if "prevention process" in line]
    except BaseException:
        held.stop()  # not left running (holding its fanotify groups) when the set-up fails
        raise
    assert Path(f"/proc/{worker}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"bindrift.agent.prevent_worker"]
    os.kill(worker, signal.SIGSTOP)  # the process that answers can no longer do so: the next exec waits
    waiting = subprocess.Popen(["podman", "exec", cid, "/bin/echo", "released"], env=lab.podman.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(2)
        assert waiting.poll() is None, "the exec is held while its permission event is pending"
        os.kill(held.process.pid, signal.SIGKILL)  # the agent dies; its prevention process dies with it
        held.process.wait(timeout=10)
        out, err = waiting.communicate(timeout=15)
        assert (waiting.returncode, out) == (0, "released\n"), err
        assert lab.sh(cid, "echo alive", timeout=15).stdout == "alive\n"
        wait_for(lambda: not os.path.exists(f"/proc/{worker}"), 10, "the prevention process to end")
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait(timeout=10)
        if held.process.poll() is None:
            held.process.kill()
            held.process.wait(timeout=10)
        if os.path.exists(f"/proc/{worker}"):
            os.kill(worker, signal.SIGKILL)


def test_prevent_covers_volumes_tmpfs_and_dev_shm(lab: Lab, agent: Agent) -> None:
    volume = lab.work / "prevent-volume"
    volume.mkdir()
    cid = lab.run_container(f"bdprev{TOKEN}-mounts", agent, True, "-v", f"{volume}:/data",
                            "--tmpfs", "/scratch:rw,exec,size=16m", "--tmpfs", "/dev/shm:rw,exec,size=16m")  # fmt: skip
    for where in ("/data", "/scratch", "/dev/shm"):
        assert lab.sh(cid, f"cp /bin/busybox {where}/added").returncode == 0
        result = lab.sh(cid, f"{where}/added echo ran; echo rc=$?")
        assert "ran" not in result.stdout and "rc=126" in result.stdout, (where, result)
        key = f"Added Binary Executed:{where}/added"
        wait_for(lambda key=key: key in agent.findings(cid), 10, f"the prevented finding on {where}")  # type: ignore[misc]
        finding = agent.findings(cid)[key]
        kinds = {e.kind: e for e in finding.evidence}
        assert kinds["prevention"].values == {"decision": "deny", "policy": "prevent-test", "mode": "prevent"}
        assert kinds["mount"].values["mountpoint"] == where and finding.file.sha256 == lab.busybox_sha
    assert (volume / "added").read_bytes()[:4] == b"\x7fELF"  # written, only its execution refused
