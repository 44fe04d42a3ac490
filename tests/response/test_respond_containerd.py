"""`bindrift respond pause|stop` on a containerd container (through `ctr`, in the containerd namespace the
container's runc state is under), with a private containerd of the test's own."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_logged, wait_stored
from tests.containers import Containerd, containerd_available, containerd_with_busybox_image, podman_available

from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

pytestmark = [pytest.mark.skipif(not (containerd_available() and podman_available()), reason="needs containerd"),
              pytest.mark.slow]  # fmt: skip
NAMESPACE = "bdresp"
CID = uuid.uuid4().hex + uuid.uuid4().hex


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> Iterator[Containerd]:
    work = tmp_path_factory.mktemp("ctrd-respond")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    daemon = containerd_with_busybox_image(work, busybox, "localhost/bdctrresp:latest", NAMESPACE)
    try:
        yield daemon
    finally:
        for args in (("tasks", "kill", "-s", "SIGKILL", CID), ("containers", "delete", CID)):
            try:
                daemon.ctr(*args, namespace=NAMESPACE, timeout=30)
                time.sleep(0.5)
            except RuntimeError:
                pass
        daemon.stop()


def _task_status(containerd: Containerd) -> str:
    for line in containerd.ctr("tasks", "ls", namespace=NAMESPACE).splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == CID:
            return fields[-1]
    return "gone"


def test_pause_then_stop_through_ctr(containerd: Containerd, tmp_path: Path) -> None:
    db, log = f"sqlite:///{tmp_path / 'agent.db'}", tmp_path / "agent.log"
    with log.open("w") as err:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--evidence-dir", "off", "--duration", "120"],
                                 stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    try:
        wait_logged(log, "agent started")
        containerd.ctr("run", "-d", "localhost/bdctrresp:latest", CID, "/bin/sleep", "600", namespace=NAMESPACE)
        wait_logged(log, f"watching container {CID}", 10)
        containerd.ctr("task", "exec", "--exec-id", "e1", CID, "cp", "/bin/busybox", "/tmp/ls", namespace=NAMESPACE)
        containerd.ctr("task", "exec", "--exec-id", "e2", CID, "/tmp/ls", "/", namespace=NAMESPACE)
        found = wait_stored(db, FindingFilter(container_id=CID))
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    (finding,) = found
    assert (finding.resource.runtime, finding.file.path) == ("containerd", "/tmp/ls")
    env = {**os.environ, "CONTAINERD_ADDRESS": str(containerd.root / "containerd.sock")}

    def respond(verb: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BINDRIFT, "respond", verb, finding.id, "--by", "tester", "--db", db], env=env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

    paused = respond("pause")
    assert (paused.returncode, paused.stdout) == (0, f"done: container {CID[:12]} paused (containerd)\n"), paused
    assert _task_status(containerd) == "PAUSED"
    containerd.ctr("task", "resume", CID, namespace=NAMESPACE)
    stopped = respond("stop")
    assert (stopped.returncode, stopped.stdout) == (0, f"done: container {CID[:12]} stopped (containerd)\n")
    deadline = time.monotonic() + 10
    while _task_status(containerd) not in ("STOPPED", "gone") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _task_status(containerd) in ("STOPPED", "gone")
    store = SqlStore(db)
    try:
        stored = store.get_finding(finding.id)
    finally:
        store.close()
    assert stored is not None
    assert [(a.action, a.ok, a.by, a.values["command"]) for a in stored.actions] == [
        ("pause", True, "tester", f"ctr -n {NAMESPACE} task pause {CID}"),
        ("stop", True, "tester", f"ctr -n {NAMESPACE} task kill -s SIGKILL {CID}"),
    ]
