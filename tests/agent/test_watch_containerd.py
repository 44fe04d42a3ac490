"""`bindrift watch` with containerd in the Kubernetes namespace: the finding carries the pod, namespace,
container and image that the CRI annotations name."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.containers import (
    Containerd,
    busybox_rootfs_tar,
    containerd_available,
    make_podman,
    podman_available,
    start_containerd,
)

from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

pytestmark = pytest.mark.skipif(not (containerd_available() and podman_available()), reason="needs containerd, podman")
BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
CID = "b1d7" * 16
ANNOTATIONS = {
    "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-name": "payments-7f9c",
    "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.container-name": "api",
    "io.kubernetes.cri.image-name": "registry.example/shop/api:2.1",
}  # fmt: skip


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> Iterator[Containerd]:
    work = tmp_path_factory.mktemp("ctrd")
    podman = make_podman(work / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(busybox, work / "rootfs.tar")),
           "localhost/bdk8s:latest")  # fmt: skip
    podman("save", "--format", "oci-archive", "-o", str(work / "image.tar"), "localhost/bdk8s:latest")
    podman.reset()
    daemon = start_containerd(work / "containerd")
    try:
        daemon.ctr("images", "import", "--base-name", "localhost/bdk8s", str(work / "image.tar"), namespace="k8s.io")
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
        deadline = time.monotonic() + 20
        while "agent started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        notes = [arg for key, value in ANNOTATIONS.items() for arg in ("--annotation", f"{key}={value}")]
        containerd.ctr("run", "-d", "--cgroup", f"/kubepods/besteffort/podabc/{CID}", *notes,
                       "localhost/bdk8s:latest", CID, "/bin/sleep", "600", namespace="k8s.io")  # fmt: skip
        deadline = time.monotonic() + 5
        while f"watching container {CID}" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"watching container {CID} (containerd)" in log.read_text(), log.read_text()
        containerd.ctr("task", "exec", "--exec-id", "e1", CID, "cp", "/bin/busybox", "/tmp/ls", namespace="k8s.io")
        containerd.ctr("task", "exec", "--exec-id", "e2", CID, "/tmp/ls", "/", namespace="k8s.io")
        found = []
        deadline = time.monotonic() + 10
        while not found and time.monotonic() < deadline:
            store = SqlStore(db)
            found = store.list_findings(FindingFilter(container_id=CID))
            store.close()
            time.sleep(0.1)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    (finding,) = found
    assert finding.category == "Added Binary Executed" and finding.file.path == "/tmp/ls"
    r = finding.resource
    assert (r.cluster, r.namespace, r.pod, r.container_name, r.image, r.runtime) == (
        "prod-eu", "shop", "payments-7f9c", "api", "registry.example/shop/api:2.1", "containerd")  # fmt: skip
    assert "kubectl --context prod-eu -n shop delete pod payments-7f9c" in [step.command for step in finding.response]
