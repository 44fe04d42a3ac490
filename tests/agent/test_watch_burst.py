"""Through an exec burst in a container (process events then read in batches, image executables remembered
as untouched), what is added or modified is still found, with its writer's executable, and the burst is
counted in the metrics. The machine is shared: findings are filtered by this test's container id."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, stored, wait_for, wait_logged
from tests.containers import busybox_rootfs_tar, make_podman, podman_available

from bindrift.sinks.store.sql_store import FindingFilter

pytestmark = pytest.mark.skipif(not podman_available(), reason="needs podman, as root")
STORM = "i=0; while [ $i -lt 15000 ]; do /bin/true; /opt/tool2; i=$((i+1)); done"


@pytest.mark.parametrize("sensor", ["procfs", "ebpf"])
def test_added_and_modified_binaries_found_through_an_exec_burst(tmp_path: Path, test_binaries: Path,
                                                                 sensor: str) -> None:  # fmt: skip
    podman = make_podman(tmp_path / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(busybox, tmp_path / "rootfs.tar",
           {"/opt/tool2": busybox, "/opt/tool3": busybox})), "localhost/bdburst:latest")  # fmt: skip
    db, log, metrics = f"sqlite:///{tmp_path / 'burst.db'}", tmp_path / "agent.log", tmp_path / "bindrift.prom"
    with log.open("w") as err:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--duration", "180", "--metrics-file", str(metrics),
                                  "--process-sensor", sensor], stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    cid = ""
    try:
        wait_logged(log, "agent started", 30)
        cid = podman("run", "-d", "localhost/bdburst:latest", "sleep", "600").strip()
        wait_logged(log, f"watching container {cid}", 5)

        def run(script: str) -> None:
            subprocess.run(["podman", "exec", cid, "sh", "-c", script], env=podman.env, check=True, timeout=120,
                           capture_output=True)  # fmt: skip

        storm = subprocess.Popen(["podman", "exec", cid, "sh", "-c", STORM], env=podman.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            time.sleep(1)  # well into the burst, /opt/tool2 run (and remembered as the image's) hundreds of times
            run("cp /bin/busybox /tmp/uname && /tmp/uname")
            run(
                "for i in 1 2 3; do /opt/tool3; done; sleep 0.1; cat /bin/busybox > /opt/tool3 && echo >> /opt/tool3 "
                "&& { /opt/tool3 || true; }"
            )  # run as the image's first (and remembered), then modified
            wait_for(lambda: {f.file.path for f in stored(db, FindingFilter(container_id=cid))} >= {"/tmp/uname",
                     "/opt/tool3"}, 15, "both findings")  # fmt: skip
        finally:
            storm.wait(timeout=120)
        time.sleep(1)  # anything the storm's image binaries wrongly raised would have arrived by now
        found = {f.file.path: f for f in stored(db, FindingFilter(container_id=cid))}
        assert found.keys() == {"/tmp/uname", "/opt/tool3"}
        added, modified = found["/tmp/uname"], found["/opt/tool3"]
        assert added.category == "Added Binary Executed" and modified.category == "Modified Binary Executed"
        assert added.writer is not None and added.writer.pid > 0
        # procfs: a `cp` gone within a batch is named by its executable, or (when its exec's open was not seen
        # before it went, as under a loaded CI machine) by its name alone; eBPF captured it as it ran (a busybox
        # applet in the shell's forked child: its name, not the shell's arguments)
        assert added.writer.exe.endswith("busybox") or (sensor == "procfs" and added.writer.comm == "cp")
        assert added.writer.args in (["cp", "/bin/busybox", "/tmp/uname"], [])
        if sensor == "ebpf":
            assert added.writer.exe.endswith("busybox")
            assert added.writer.comm == "cp" and added.writer.context_source == "ebpf"
        content = {e.kind: e for e in modified.evidence}["content"]
        assert content.values["lower_sha256"] != content.values["sha256"] == modified.file.sha256
        wait_for(lambda: "bindrift_process_event_bursts_total" in metrics.read_text(), 10, "the metrics")
        if sensor == "procfs":  # the proc connector is read in batches through a burst; the eBPF ring always is
            (line,) = [x for x in metrics.read_text().splitlines()
                       if x.startswith("bindrift_process_event_bursts_total")]  # fmt: skip
            assert float(line.split()[-1]) >= 1
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        if cid:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False)
        podman.reset()
