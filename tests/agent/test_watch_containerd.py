"""`bindrift watch` with containerd in the Kubernetes namespace: the finding carries the pod, namespace,
container and image that the CRI annotations name."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_logged, wait_stored
from tests.containers import Containerd, containerd_available, containerd_with_busybox_image, podman_available

from bindrift.sinks.store.sql_store import FindingFilter

pytestmark = pytest.mark.skipif(not (containerd_available() and podman_available()), reason="needs containerd, podman")
CID = "b1d7" * 16
ANNOTATIONS = {
    "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-name": "payments-7f9c",
    "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.container-name": "api",
    "io.kubernetes.cri.image-name": "registry.example/shop/api:2.1",
}  # fmt: skip


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> Iterator[Containerd]:
    work = tmp_path_factory.mktemp("ctrd")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    daemon = containerd_with_busybox_image(work, busybox, "localhost/bdk8s:latest", "k8s.io")
    try:
        yield daemon
    finally:
        try:
            daemon.ctr("tasks", "kill", "-s", "SIGKILL", CID, namespace="k8s.io")
            time.sleep(0.5)
            daemon.ctr("containers", "delete", CID, namespace="k8s.io")
        except RuntimeError:
            pass
        daemon.stop()


def test_kubernetes_context_on_findings(containerd: Containerd, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k8s.db'}"
    log = tmp_path / "agent.log"
    with log.open("w") as err:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--cluster", "prod-eu", "--duration", "120"],
                                 stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    try:
        wait_logged(log, "agent started")
        notes = [arg for key, value in ANNOTATIONS.items() for arg in ("--annotation", f"{key}={value}")]
        containerd.ctr("run", "-d", "--cgroup", f"/kubepods/besteffort/podabc/{CID}", *notes,
                       "localhost/bdk8s:latest", CID, "/bin/sleep", "600", namespace="k8s.io")  # fmt: skip
        wait_logged(log, f"watching container {CID} (containerd)", 5)
        containerd.ctr("task", "exec", "--exec-id", "e1", CID, "cp", "/bin/busybox", "/tmp/ls", namespace="k8s.io")
        containerd.ctr("task", "exec", "--exec-id", "e2", CID, "/tmp/ls", "/", namespace="k8s.io")
        found = wait_stored(db, FindingFilter(container_id=CID))
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    (finding,) = found
    assert finding.category == "Added Binary Executed" and finding.file.path == "/tmp/ls"
    r = finding.resource
    assert (r.cluster, r.namespace, r.pod, r.container_name, r.image, r.runtime) == (
        "prod-eu", "shop", "payments-7f9c", "api", "registry.example/shop/api:2.1", "containerd")  # fmt: skip
    assert "kubectl --context prod-eu -n shop delete pod payments-7f9c" in [step.command for step in finding.response]
