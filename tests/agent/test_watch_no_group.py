"""An agent started while `fanotify_init` fails with EMFILE (every fanotify group its user may hold is taken)
does not die: within 5 s it raises *Coverage degraded* for the node and for each container, naming the
mounts not watched; it retries, and watches the containers as soon as a group frees.

The limit is the real kernel one (`fs.fanotify.max_user_groups`, counted per user). The agent and the
process that takes every group run as a user of this test's own, with the capabilities the agent needs, so
the groups of root (every other agent on this shared machine) are never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_for, wait_logged, wait_stored
from tests.containers import busybox_rootfs_tar, make_podman, podman_available

from bindrift.schema.finding import Finding
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not podman_available() or shutil.which("setpriv") is None,
                                                   reason="needs podman and setpriv, as root")]  # fmt: skip
CAPABILITIES = "+sys_admin,+dac_override,+dac_read_search,+net_admin,+sys_ptrace,+bpf,+perfmon,+kill,+fowner"
# Takes fanotify groups until fanotify_init fails, says how many and why, holds them until its stdin closes.
TAKE_ALL_GROUPS = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
held = []
while (fd := libc.fanotify_init(1 | 2, 0)) >= 0:
    held.append(fd)
print(len(held), os.strerror(ctypes.get_errno()), flush=True)
sys.stdin.read()
"""


def _as_user(uid: int, *command: str) -> list[str]:
    """`command` run as `uid`, with the agent's capabilities kept (ambient)."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", f"--inh-caps={CAPABILITIES}",
            f"--ambient-caps={CAPABILITIES}", *command]  # fmt: skip


def test_no_fanotify_group_at_start_is_reported_then_recovered(tmp_path: Path, test_binaries: Path) -> None:
    uid = 200_000 + os.getpid() % 100_000  # no one else's: its fanotify groups count against it alone
    podman = make_podman(tmp_path / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(busybox, tmp_path / "rootfs.tar")),
           "localhost/bdnogroup:latest")  # fmt: skip
    work = tmp_path / "agent"
    work.mkdir()
    os.chown(work, uid, uid)
    db, log = f"sqlite:///{work / 'agent.db'}", work / "agent.log"
    cid = ""
    taker = subprocess.Popen(_as_user(uid, sys.executable, "-c", TAKE_ALL_GROUPS), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    agent = None
    try:
        assert taker.stdout is not None and taker.stdin is not None
        held, _, why = taker.stdout.readline().strip().partition(" ")
        assert int(held) > 0 and why == os.strerror(24), (held, why)  # EMFILE: the user's groups all taken
        cid = podman("run", "-d", "--name", f"bdnogroup-{uuid.uuid4().hex[:8]}", "localhost/bdnogroup:latest",
                     "sleep", "120").strip()  # fmt: skip
        with log.open("w") as err:
            agent = subprocess.Popen(_as_user(uid, BINDRIFT, "watch", "--db", db, "--node-name", "node-nogroup",
                                              "--duration", "90"), stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        wait_logged(log, "agent started", 30)
        found: dict[str, Finding] = {}

        def reported() -> bool:
            store = SqlStore(db)
            try:
                for finding in store.list_findings(FindingFilter(category="Coverage degraded", node="node-nogroup")):
                    if finding.resource.container_id in ("", cid):
                        found.setdefault(finding.resource.container_id, finding)
            finally:
                store.close()
            return {"", cid} <= found.keys()

        wait_for(reported, 5, "Coverage degraded for the node and the container, within 5 s")
        assert agent.poll() is None, "the agent runs on without a fanotify group"
        node, container = found[""], found[cid]
        assert node.file.path == "fanotify-group" and "Too many open files" in str(node.evidence[0].values["error"])
        (marks,) = container.evidence
        assert container.file.path == "fanotify-marks" and marks.values["container_id"] == cid
        assert "/: no fanotify group: [Errno 24] fanotify_init: Too many open files" in str(marks.values["failures"])
        assert container.first_seen - node.first_seen < timedelta(seconds=5)
        taker.stdin.close()  # the groups free: the agent's retry gets one
        assert taker.wait(timeout=10) == 0
        wait_logged(log, "fanotify group open", 5)
        wait_logged(log, f"watching container {cid}", 5)
        script = "cp /bin/busybox /tmp/busybox-late && echo late >> /tmp/busybox-late && /tmp/busybox-late true"
        subprocess.run(["podman", "exec", cid, "sh", "-c", script], env=podman.env, check=True, timeout=60)
        drift = wait_stored(db, FindingFilter(container_id=cid, category="Added Binary Executed"), timeout=20)
        assert [f.file.path for f in drift] == ["/tmp/busybox-late"]
        assert agent.poll() is None
    finally:
        if taker.poll() is None:
            taker.kill()
            taker.wait(timeout=10)
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=30)
        if cid:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False)
        podman.reset()
