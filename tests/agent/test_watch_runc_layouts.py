"""Discovery of containers in the state layouts CRI-O and Docker leave: real runc containers on a real
overlay mount, created with runc's state root where each runtime keeps it (`/run/runc` with CRI-O's
annotations, `/run/docker/runtime-runc/moby`), each watched and its drift found."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_logged, wait_stored
from tests.containers import busybox_rootfs_tar

from bindrift.schema.finding import Finding
from bindrift.sinks.store.sql_store import FindingFilter

NEEDS_RUNC = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None, reason="needs runc, as root")
pytestmark = [pytest.mark.slow, NEEDS_RUNC]
CRIO_ANNOTATIONS = {"io.kubernetes.cri-o.ImageName": "quay.example/shop/cart:3.1",
                    "io.kubernetes.pod.name": "cart-5d", "io.kubernetes.pod.namespace": "shop",
                    "io.kubernetes.container.name": "cart"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RuncContainer:
    root: str
    id: str

    def run(self, *command: str) -> int:
        return subprocess.run(["runc", "--root", self.root, "exec", self.id, *command], capture_output=True,
                              timeout=60, check=False).returncode  # fmt: skip


def _start(work: Path, state_root: str, annotations: dict[str, str], busybox: Path) -> RuncContainer:
    lower = busybox_rootfs_tar(busybox, work / "rootfs.tar").with_suffix(".d")
    upper, scratch, merged, bundle = (work / name for name in ("upper", "work", "merged", "bundle"))
    for folder in (upper, scratch, merged, bundle):
        folder.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={scratch}",
                    str(merged)], check=True)  # fmt: skip
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": str(merged), "readonly": False}
    spec["process"].update(terminal=False, args=["/bin/sleep", "120"])
    spec["annotations"] = annotations
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
    (bundle / "config.json").write_text(json.dumps(spec))
    container = RuncContainer(state_root, secrets.token_hex(32))
    for step in (["create", "--bundle", str(bundle), container.id], ["start", container.id]):
        subprocess.run(["runc", "--root", state_root, *step], check=True, timeout=60, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return container


def _stop(container: RuncContainer, merged: Path) -> None:
    subprocess.run(["runc", "--root", container.root, "kill", container.id, "KILL"], capture_output=True, check=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["runc", "--root", container.root, "delete", container.id], capture_output=True,
                          check=False).returncode == 0:  # fmt: skip
            break
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(merged)], check=False)


@pytest.fixture(params=[("cri-o", "/run/runc", CRIO_ANNOTATIONS), ("docker", "/run/docker/runtime-runc/moby", {})],
                ids=["cri-o", "docker"])  # fmt: skip
def watched(request: pytest.FixtureRequest, tmp_path: Path, test_binaries: Path) -> Iterator[tuple[str, Finding]]:
    """(runtime, the Added Binary Executed finding) after `cp /bin/busybox /tmp/ls; /tmp/ls /` in the container."""
    runtime, state_root, annotations = request.param
    db = f"sqlite:///{tmp_path / 'layouts.db'}"
    log = tmp_path / "agent.log"
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    container = _start(tmp_path, state_root, annotations, busybox)
    try:
        with log.open("w") as err:
            agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--duration", "120"], stdout=subprocess.DEVNULL,
                                     stderr=err)  # fmt: skip
        try:
            wait_logged(log, f"watching container {container.id} ({runtime})")
            assert container.run("/bin/sh", "-c", "cp /bin/busybox /tmp/ls && /tmp/ls /") == 0
            found = wait_stored(db, FindingFilter(container_id=container.id))
        finally:
            agent.terminate()
            agent.wait(timeout=30)
        assert len(found) == 1, log.read_text()
        yield runtime, found[0]
    finally:
        _stop(container, tmp_path / "merged")


def test_runc_state_layouts_of_cri_o_and_docker(watched: tuple[str, Finding]) -> None:
    runtime, finding = watched
    assert (finding.category, finding.severity, finding.file.path) == ("Added Binary Executed", "low", "/tmp/ls")
    assert finding.resource.runtime == runtime
    kinds = {e.kind: e for e in finding.evidence}
    assert kinds["layers"].values["upper"] is True and kinds["layers"].values["lower_layers"] == 1
    assert finding.writer is not None and finding.writer.exe.endswith("busybox")
    r = finding.resource
    if runtime == "cri-o":
        assert (r.image, r.namespace, r.pod, r.container_name) == ("quay.example/shop/cart:3.1", "shop", "cart-5d",
                                                                   "cart")  # fmt: skip
        assert any(step.command == "kubectl -n shop delete pod cart-5d" for step in finding.response)
    else:
        assert (r.namespace, r.pod, r.image) == ("", "", "")
        assert any(step.command == f"docker stop {r.container_id}" for step in finding.response)
