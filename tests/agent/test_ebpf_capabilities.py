"""The agent runs with exactly the capabilities the DaemonSet and the chart give it (not privileged): the
eBPF sensor loads, containers are watched, and an added binary's finding carries eBPF-captured context."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_logged, wait_stored
from tests.containers import busybox_rootfs_tar, make_podman, podman_available
from tests.deploy.manifests import AGENT_CAPABILITIES

from bindrift.sinks.store.sql_store import FindingFilter

pytestmark = pytest.mark.skipif(not podman_available() or shutil.which("setpriv") is None,
                                reason="needs podman and setpriv, as root")  # fmt: skip

CAPABILITY_BITS = {"DAC_READ_SEARCH": 2, "KILL": 5, "NET_ADMIN": 12, "SYS_PTRACE": 19, "SYS_ADMIN": 21,
                   "SYS_RESOURCE": 24, "PERFMON": 38, "BPF": 39}  # fmt: skip


def _bounding(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("CapBnd:")).split()[1], 16)


def test_the_deployed_capabilities_suffice(tmp_path: Path, test_binaries: Path) -> None:
    podman = make_podman(tmp_path / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(busybox, tmp_path / "rootfs.tar")),
           "localhost/bdcaps:latest")  # fmt: skip
    bounding = "-all," + ",".join(f"+{cap.lower()}" for cap in sorted(AGENT_CAPABILITIES))
    db, log = f"sqlite:///{tmp_path / 'agent.db'}", tmp_path / "agent.log"
    with log.open("w") as out:
        agent = subprocess.Popen(["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", BINDRIFT, "watch",
                                  "--db", db, "--process-sensor", "ebpf", "--duration", "60"],
                                 stdout=subprocess.DEVNULL, stderr=out)  # fmt: skip
    cid = ""
    try:
        wait_logged(log, "agent started")
        assert "process context from the eBPF sensor" in log.read_text()
        wanted = sum(1 << CAPABILITY_BITS[cap] for cap in AGENT_CAPABILITIES)
        assert _bounding(agent.pid) == wanted & _bounding(os.getpid()), "the agent runs with only these capabilities"
        cid = podman("run", "-d", "--name", f"bdcaps-{os.getpid()}", "localhost/bdcaps:latest", "sleep", "120").strip()
        wait_logged(log, f"watching container {cid}")
        script = "cp /bin/busybox /tmp/busybox2 && echo >> /tmp/busybox2 && /tmp/busybox2 true"
        subprocess.run(["podman", "exec", cid, "sh", "-c", script], env=podman.env, check=True, timeout=60)
        found = wait_stored(db, FindingFilter(container_id=cid, category="Added Binary Executed"), timeout=20)
        assert found and found[0].process is not None and found[0].process.context_source == "ebpf"
        assert found[0].process.args == ["/tmp/busybox2", "true"]
        assert found[0].writer is not None and found[0].writer.args[:1] == ["sh"]
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        if cid:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False)
        podman.reset()
