"""`bindrift watch` against real podman containers (runc, overlay): what is written and executed in a
container becomes the right finding, with its writer and evidence — and harmless activity does not.
The machine is shared: everything is filtered by this test's container id."""

from __future__ import annotations

import functools
import hashlib
import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_for
from tests.containers import Podman, busybox_rootfs_tar, make_podman, podman_available
from tests.upx_mutations import rename_magic

from bindrift.schema.finding import Finding
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

pytestmark = pytest.mark.skipif(not podman_available(), reason="needs podman, as root")
# Every file the scenarios make a finding about; nothing else may raise one.
MEMFD = "/memfd:payload (deleted)"
EXPECTED_PATHS = {"/tmp/dropbear", "/tmp/packed", "/tmp/ls", "/opt/tool", "/tmp/sleeper", "/dev/shm/sleep",
                  "/tmp/lib/libc.so.6", MEMFD, "/tmp/uname"}  # fmt: skip
MEMEXEC = Path(__file__).resolve().parent.parent / "assets" / "memexec.c"


class Scenario:
    """A watched container and the ways to act in it."""

    def __init__(self, podman: Podman, cid: str, db: str, port: int, discovered_after: float) -> None:
        self.podman, self.cid, self.db, self.port = podman, cid, db, port
        self.discovered_after = discovered_after

    def run(self, *command: str, stdin: bytes | None = None) -> int:
        flags = ["-i"] if stdin is not None else []
        return subprocess.run(["podman", "exec", *flags, self.cid, *command], env=self.podman.env, input=stdin,
                              capture_output=True, timeout=60, check=False).returncode  # fmt: skip

    def findings(self) -> dict[str, Finding]:
        store = SqlStore(self.db)
        try:
            found = store.list_findings(FindingFilter(container_id=self.cid, limit=1000))
        finally:
            store.close()
        return {f.file.path: f for f in found}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> Iterator[Scenario]:
    work = tmp_path_factory.mktemp("agent")
    podman = make_podman(work / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    loader, libc = Path("/lib64/ld-linux-x86-64.so.2").resolve(), Path("/lib/x86_64-linux-gnu/libc.so.6").resolve()
    memexec = work / "memexec"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(memexec), str(MEMEXEC)], check=True, capture_output=True)
    extra = {"/opt/tool": busybox, "/opt/tool2": busybox, "/lib64/ld-linux-x86-64.so.2": loader,
             "/lib/x86_64-linux-gnu/libc.so.6": libc, "/opt/sleep": Path("/usr/bin/sleep"),
             "/opt/memexec": memexec}  # fmt: skip
    rootfs = busybox_rootfs_tar(busybox, work / "rootfs.tar", extra)
    podman("import", "--change", 'CMD ["/bin/sh"]', str(rootfs), "localhost/bdagent:latest")
    served = work / "www"
    served.mkdir()
    (served / "dropbear").write_bytes((test_binaries / "dropbear-bin-arm64" / "usr" / "sbin" / "dropbear").read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    db = f"sqlite:///{work / 'agent.db'}"
    log_path = work / "agent.log"
    with log_path.open("w") as log:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--node-name", "node-t", "--cluster", "test",
                                  "--duration", "300"], stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
    cid = ""
    try:
        wait_for(lambda: "agent started" in log_path.read_text() or agent.poll() is not None, 20, "the agent")
        assert agent.poll() is None, log_path.read_text()
        cid = podman(
            "run",
            "-d",
            "--network",
            "host",
            "--tmpfs",
            "/dev/shm:rw,exec,size=64m",
            "localhost/bdagent:latest",
            "sleep",
            "600",
        ).strip()  # an exec-able /dev/shm, as on many hosts
        discovered = wait_for(lambda: f"watching container {cid}" in log_path.read_text(), 5, "discovery")
        yield Scenario(podman, cid, db, server.server_port, discovered)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        server.shutdown()
        server.server_close()
        if cid:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False)
        podman.reset()


@pytest.fixture(scope="module")
def observed(scenario: Scenario, test_binaries: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finding]:
    """Run every scenario once, then read the findings of this container."""
    upx = test_binaries / "upx-ucl-amd64" / "usr" / "bin" / "upx-ucl"
    packed = tmp_path_factory.mktemp("upx") / "bb.upx"
    source = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    subprocess.run([str(upx), "-q", "-1", "-o", str(packed), str(source)], check=True, capture_output=True)
    url = f"http://127.0.0.1:{scenario.port}/dropbear"
    assert scenario.run("wget", "-q", "-O", "/tmp/dropbear", url) == 0  # (i)
    assert scenario.run("dd", "of=/tmp/packed", stdin=rename_magic(packed.read_bytes())) == 0  # (ii)
    assert scenario.run("cp", "/bin/busybox", "/tmp/ls") == 0  # (iii)
    assert scenario.run("/tmp/ls", "/") == 0
    # The shell appends to the file itself (echo is a builtin), then execs it in the same process.
    assert scenario.run("sh", "-c", "cp /bin/busybox /tmp/uname && echo >> /tmp/uname && /tmp/uname") == 0
    assert scenario.run("sh", "-c", "cat /bin/busybox > /opt/tool && echo >> /opt/tool") == 0  # (iv)
    scenario.run("/opt/tool")
    assert scenario.run("chmod", "700", "/opt/tool2") == 0  # (v)
    scenario.run("/opt/tool2")
    assert scenario.run("ls", "/") == 0  # (vi)
    assert scenario.run("dd", "of=/tmp/sleeper", stdin=Path("/usr/bin/sleep").read_bytes()) == 0  # (viii)
    assert scenario.run("/lib64/ld-linux-x86-64.so.2", "/tmp/sleeper", "0.3") == 0, "not even executable: ld.so runs it"
    # Other content than /tmp/ls: one finding per (container, content, category) would merge them.
    assert scenario.run("dd", "of=/dev/shm/sleep", stdin=Path("/usr/bin/sleep").read_bytes() + b"\n") == 0
    assert scenario.run("chmod", "755", "/dev/shm/sleep") == 0
    assert scenario.run("/dev/shm/sleep", "0.3") == 0
    assert scenario.run("mkdir", "-p", "/tmp/lib") == 0
    added_libc = Path("/lib/x86_64-linux-gnu/libc.so.6").resolve().read_bytes() + b"\n"
    assert scenario.run("dd", "of=/tmp/lib/libc.so.6", stdin=added_libc) == 0
    assert scenario.run("env", "LD_LIBRARY_PATH=/tmp/lib", "/opt/sleep", "0.5") == 0  # an image program
    assert scenario.run("/opt/memexec", "/bin/busybox") == 0  # an image program running busybox from a memfd
    expected = EXPECTED_PATHS
    try:
        wait_for(lambda: expected <= scenario.findings().keys(), 10, "findings")
    except AssertionError as exc:
        raise AssertionError(f"missing findings: {sorted(expected - scenario.findings().keys())}") from exc
    time.sleep(0.5)  # anything wrongly raised for (v) and (vi) would have arrived by now
    return scenario.findings()


def test_discovery_within_a_second(scenario: Scenario) -> None:
    assert scenario.discovered_after < 1.0


def test_downloaded_foreign_binary_is_suspicious_and_names_wget(
    observed: dict[str, Finding], scenario: Scenario
) -> None:
    finding = observed["/tmp/dropbear"]
    assert (finding.category, finding.severity, finding.source) == ("Suspicious binary", "high", "agent")
    assert finding.file.elf is not None and finding.file.elf.arch == "aarch64"
    assert [c.check for c in finding.file.triage] == ["foreign_arch"]
    assert finding.writer is not None and finding.writer.comm == "wget"
    assert finding.writer.downloaded_by == "wget" and "downloaded by wget" in finding.summary
    assert finding.writer.args[:2] == ["wget", "-q"]
    assert finding.resource.container_id == scenario.cid and finding.resource.runtime == "podman"
    assert finding.resource.image == "localhost/bdagent:latest" and finding.resource.node == "node-t"
    assert finding.resource.cluster == "test"
    assert [t.id for t in finding.techniques] == ["T1105"]


def test_tampered_upx_written_is_suspicious(observed: dict[str, Finding]) -> None:
    finding = observed["/tmp/packed"]
    assert finding.category == "Suspicious binary" and finding.severity == "high"
    assert {"upx_magic_changed"} <= {c.check for c in finding.file.triage}
    assert finding.writer is not None and finding.writer.exe.endswith("busybox")
    # A writer that exits within a millisecond may be gone before /proc is read: its name is then unknown,
    # never its parent's (runc's).
    assert finding.writer.comm in ("dd", "")


def test_added_binary_executed_with_its_writer(observed: dict[str, Finding], scenario: Scenario) -> None:
    finding = observed["/tmp/ls"]
    assert (finding.category, finding.severity) == ("Added Binary Executed", "low")
    assert finding.writer is not None and finding.writer.comm in ("cp", "")
    # A `cp` this short may be gone before /proc is read: then its executable still is known.
    assert finding.writer.args in (["cp", "/bin/busybox", "/tmp/ls"], [])
    assert finding.writer.exe in ("/bin/busybox", "/usr/bin/busybox") or finding.writer.exe.endswith("busybox")
    assert finding.process is not None and finding.process.exe == "/tmp/ls"
    assert finding.process.args in (["/tmp/ls", "/"], []), "empty only when it exited before /proc was read"
    assert all("runc" not in p.comm and "conmon" not in p.comm for p in finding.writer.lineage), "container only"
    kinds = {e.kind: e for e in finding.evidence}
    assert kinds["layers"].values["lower_layers"] == 1 and kinds["layers"].values["upper"] is True
    assert kinds["timing"].values["changed_after_start"] is True
    assert "written by" in kinds["writer"].summary
    assert finding.file.sha256 == kinds["layers"].values["sha256"] and finding.indicator is not None


def test_writer_that_then_execs_the_file_is_named_as_it_was(observed: dict[str, Finding]) -> None:
    finding = observed["/tmp/uname"]
    assert finding.category == "Added Binary Executed"
    assert finding.process is not None and finding.process.exe == "/tmp/uname"
    # Same pid, two programs: the write came from the shell before its exec (a running file cannot be written).
    assert finding.process.pid == finding.writer.pid if finding.writer else False
    assert finding.writer is not None and finding.writer.exe.endswith("busybox") and finding.writer.comm in ("sh", "")
    # Empty only when the shell's own exec was read after it was gone (a loaded machine).
    assert finding.writer.args in (["sh", "-c", "cp /bin/busybox /tmp/uname && echo >> /tmp/uname && /tmp/uname"], [])


def test_modified_image_binary(observed: dict[str, Finding]) -> None:
    finding = observed["/opt/tool"]
    assert (finding.category, finding.severity) == ("Modified Binary Executed", "medium")
    kinds = {e.kind: e for e in finding.evidence}
    assert kinds["layers"].values["lower_layer"] == 1
    assert kinds["content"].values["lower_sha256"] != kinds["content"].values["sha256"]


def test_chmod_copy_up_and_image_binaries_raise_nothing(observed: dict[str, Finding]) -> None:
    assert "/opt/tool2" not in observed, "a chmod copy-up with unchanged content is not drift"
    assert "/bin/busybox" not in observed and "/bin/ls" not in observed
    assert set(observed) == EXPECTED_PATHS, "the image's own libc and /opt/sleep raise nothing"


def test_added_library_loaded(observed: dict[str, Finding]) -> None:
    finding = observed["/tmp/lib/libc.so.6"]
    assert (finding.category, finding.severity) == ("Added Library Loaded", "low")
    assert finding.process is not None and finding.process.comm == "sleep"
    kinds = {e.kind: e for e in finding.evidence}
    assert kinds["layers"].values["lower_layers"] == 1 and "mapped executable" in kinds["mapping"].summary
    assert [t.id for t in finding.techniques] == ["T1105", "T1129"]


def test_added_binary_started_through_the_dynamic_loader(observed: dict[str, Finding]) -> None:
    finding = observed["/tmp/sleeper"]
    assert finding.category == "Added Binary Executed"
    kinds = {e.kind: e for e in finding.evidence}
    assert kinds["loader"].values["loader"].endswith("ld-linux-x86-64.so.2")  # type: ignore[union-attr]
    assert kinds["layers"].values["lower_layers"] == 1
    assert finding.process is not None and finding.process.args[1:] == ["/tmp/sleeper", "0.3"]
    assert finding.writer is not None and finding.writer.exe.endswith("busybox")


def test_binary_run_from_dev_shm(observed: dict[str, Finding]) -> None:
    finding = observed["/dev/shm/sleep"]
    assert finding.category == "Added Binary Executed"
    # The /dev/shm tmpfs is watched with a mount mark of its own: the exec is seen there, written by dd.
    assert [e.kind for e in finding.evidence] == ["mount", "timing", "writer"]
    mount = finding.evidence[0].values
    assert (mount["mountpoint"], mount["kind"], mount["fstype"], mount["seen_written"]) == ("/dev/shm", "tmpfs",
                                                                                          "tmpfs", True)  # fmt: skip
    assert finding.process is not None and finding.process.args == ["/dev/shm/sleep", "0.3"]
    assert finding.writer is not None and finding.writer.args[:1] == ["dd"]


def test_fileless_execution_from_a_memfd(observed: dict[str, Finding], test_binaries: Path) -> None:
    finding = observed[MEMFD]
    assert (finding.category, finding.severity) == ("Fileless execution", "high")
    busybox = (test_binaries / "busybox-static-amd64" / "bin" / "busybox").read_bytes()
    assert finding.file.sha256 == hashlib.sha256(busybox).hexdigest() and finding.file.size == len(busybox)
    assert [e.kind for e in finding.evidence] == ["memfd"] and "no file exists" in finding.evidence[0].summary
    assert finding.process is not None and finding.process.args == ["sleep", "0.5"]
    assert finding.process.exe == MEMFD
    assert [t.id for t in finding.techniques] == ["T1620"]
