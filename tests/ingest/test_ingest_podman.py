"""`bindrift ingest` against a real podman container: Falco and auditd events (constructed in their exact
shapes, naming what really happened in the container) get the agent's layer comparison. The tool's "upper
layer" alone is overruled by the content: a chmod copy-up raises nothing. Filtered by this test's container."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from tests.containers import Podman, busybox_rootfs_tar, make_podman, podman_available

from bindrift.schema.finding import Finding

pytestmark = pytest.mark.slow
BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
IMAGE = "localhost/bdingest:latest"


@dataclass(frozen=True)
class Box:
    podman: Podman
    cid: str
    init_pid: int
    busybox: bytes

    def run(self, *command: str) -> None:
        subprocess.run(["podman", "exec", self.cid, *command], env=self.podman.env, check=True, capture_output=True,
                       timeout=60)  # fmt: skip


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> Iterator[Box]:
    if not podman_available():
        if os.environ.get("CI"):
            pytest.fail("podman (run as root) is missing")
        pytest.skip("needs podman, as root")
    work = tmp_path_factory.mktemp("ingest-podman")
    podman = make_podman(work / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    rootfs = busybox_rootfs_tar(busybox, work / "rootfs.tar", {"/opt/tool": busybox, "/opt/tool2": busybox})
    podman("import", "--change", 'CMD ["/bin/sh"]', str(rootfs), IMAGE)
    cid = ""
    try:
        cid = podman("run", "-d", IMAGE, "sleep", "600").strip()
        pid = int(podman("inspect", "-f", "{{.State.Pid}}", cid).strip())
        found = Box(podman, cid, pid, busybox.read_bytes())
        found.run("cp", "/bin/busybox", "/tmp/added")  # added
        found.run("sh", "-c", "cat /bin/busybox > /opt/tool && echo >> /opt/tool")  # modified
        found.run("chmod", "700", "/opt/tool2")  # copy-up, same content
        yield found
    finally:
        if cid:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False)
        podman.reset()


def _falco_exec(cid: str, path: str, pid: int = 0) -> dict[str, object]:
    """Falco's "Drop and execute new binary in container" alert, as Falco 0.41+ writes it."""
    return {"hostname": "node-t", "priority": "Critical", "rule": "Drop and execute new binary in container",
            "source": "syscall", "time": "2026-07-11T09:44:58.682419669Z", "output_fields": {
                "container.id": cid[:12], "evt.arg.flags": "EXE_WRITABLE|EXE_UPPER_LAYER", "evt.type": "execve",
                "evt.time": 1783763098682419669, "proc.exepath": path, "proc.cmdline": path.rsplit("/", 1)[-1],
                "proc.is_exe_upper_layer": True, "proc.pid": pid, "proc.name": path.rsplit("/", 1)[-1]}}  # fmt: skip


def _ingest(tool: str, tmp_path: Path, data: bytes) -> list[Finding]:
    result = subprocess.run([BINDRIFT, "ingest", "--from", tool, "--db", f"sqlite:///{tmp_path / 'i.db'}", "-"],
                            input=data, capture_output=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    return [msgspec.json.decode(line, type=Finding) for line in result.stdout.splitlines()]


def test_falco_events_get_the_layer_comparison(box: Box, tmp_path: Path) -> None:
    write = {"priority": "Error", "rule": "Write below monitored dir", "source": "syscall",
             "time": "2026-07-11T09:44:58.000000001Z", "output_fields": {
                 "container.id": box.cid[:12], "evt.type": "openat", "evt.is_open_write": True,
                 "evt.time": 1783763098000000001, "fd.name": "/tmp/added", "proc.pid": 4242, "proc.vpid": 7,
                 "proc.name": "cp", "proc.exepath": "/bin/busybox",
                 "proc.cmdline": "cp /bin/busybox /tmp/added"}}  # fmt: skip
    alerts = [write, *(_falco_exec(box.cid, p) for p in ("/tmp/added", "/opt/tool", "/opt/tool2", "/bin/busybox"))]
    findings = {f.file.path: f for f in _ingest("falco", tmp_path, b"\n".join(json.dumps(a).encode() for a in alerts))}
    assert set(findings) == {"/tmp/added", "/opt/tool"}, "the copy-up and the image file are not drift"
    added, modified = findings["/tmp/added"], findings["/opt/tool"]
    assert (added.category, added.severity, added.source) == ("Added Binary Executed", "low", "ingest:falco")
    assert added.file.sha256 == hashlib.sha256(box.busybox).hexdigest() and added.file.size == len(box.busybox)
    assert (added.resource.container_id, added.resource.runtime, added.resource.image, added.resource.node) == (
        box.cid, "podman", IMAGE, "node-t")  # fmt: skip
    assert added.writer is not None and (added.writer.comm, added.writer.pid, added.writer.args) == (
        "cp", 4242, ["cp", "/bin/busybox", "/tmp/added"])  # fmt: skip
    kinds = [e.kind for e in added.evidence]
    assert kinds == ["layers", "timing", "writer", "reported"]
    assert added.evidence[0].values == {"upper": True, "lower_layers": 1, "sha256": added.file.sha256}
    assert added.evidence[3].values["proc.is_exe_upper_layer"] is True
    assert (modified.category, modified.severity) == ("Modified Binary Executed", "medium")
    content = next(e for e in modified.evidence if e.kind == "content")
    assert content.values["lower_sha256"] == hashlib.sha256(box.busybox).hexdigest()
    assert content.values["sha256"] == hashlib.sha256(box.busybox + b"\n").hexdigest() == modified.file.sha256


def test_paths_cannot_leave_the_container(box: Box, tmp_path: Path, test_binaries: Path) -> None:
    """A foreign binary on the host, named through `..` or a symlink planted in the container, stays out of
    reach: it is resolved inside the container's root, where it does not exist."""
    host_file = tmp_path / "host-only" / "bb"
    host_file.parent.mkdir()
    host_file.write_bytes((test_binaries / "busybox-static-arm64" / "bin" / "busybox").read_bytes())
    box.run("ln", "-s", f"/../../../../../..{host_file}", "/tmp/escape")
    alerts = [_falco_exec(box.cid, p) for p in (f"/../../../../../..{host_file}", "/tmp/escape")]
    result = subprocess.run([BINDRIFT, "ingest", "--from", "falco", "--db", f"sqlite:///{tmp_path / 'i.db'}", "-"],
                            input=b"\n".join(json.dumps(a).encode() for a in alerts), capture_output=True,
                            timeout=120, check=False)  # fmt: skip
    findings = [msgspec.json.decode(line, type=Finding) for line in result.stdout.splitlines()]
    assert (
        "2 events kept, 0 rejected, 0 ignored; 0 analysed in full, 2 findings (2 from the event alone)"
        in result.stderr.decode()
    )
    assert [f.category for f in findings] == ["Added Binary Executed"] * 2
    assert all(f.file.elf is None and f.file.sha256 == "" for f in findings), "the host file was never read"
    assert all("cannot be opened" in str(f.evidence[0].values["reason"]) for f in findings)


def test_auditd_exec_is_mapped_to_its_container_by_cgroup(box: Box, tmp_path: Path) -> None:
    # auditd has no container field: the live process (the container's init) leads to it through its cgroup.
    records = (
        f"type=SYSCALL msg=audit(1783763098.682:9001): arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=1 "
        f'pid={box.init_pid} auid=4294967295 uid=0 comm="added" exe="/tmp/added" key="exec"\n'
        'type=EXECVE msg=audit(1783763098.682:9001): argc=2 a0="/tmp/added" a1="sh"\n'
        "type=EOE msg=audit(1783763098.682:9001):\n"
    )
    (finding,) = _ingest("auditd", tmp_path, records.encode())
    assert (finding.category, finding.source, finding.file.path) == ("Added Binary Executed", "ingest:auditd",
                                                                    "/tmp/added")  # fmt: skip
    assert finding.resource.container_id == box.cid and finding.resource.runtime == "podman"
    assert finding.process is not None and (finding.process.pid, finding.process.args) == (
        box.init_pid, ["/tmp/added", "sh"])  # fmt: skip
