"""`bindrift watch` with the eBPF process sensor against a real podman container: 1,000 distinct added
binaries, each run once with a unique argument and exiting at once — from a shell loop, from `xargs -P`, and
from a downloader that then runs its download — and the findings' process context is exact; with
`--process-sensor procfs` the fallback says so in the log, the metrics and the findings."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_for, wait_logged, wait_stored
from tests.containers import Podman, busybox_rootfs_tar, make_podman, podman_available

from bindrift.schema.finding import Detection, ProcessInfo
from bindrift.sinks.store.sql_store import FindingFilter

pytestmark = pytest.mark.skipif(not podman_available(), reason="needs podman, as root")
TINY = 'void _start(void){ __asm__ volatile("mov $60,%eax; xor %edi,%edi; syscall"); }\n'
SHELL_N, XARGS_N, DOWNLOAD_N = 400, 400, 200
UID, GID = 1000, 1001
EXACT_SHARE = 0.995


def _image(work: Path, name: str) -> tuple[Podman, str]:
    """A podman of `work`'s own holding a busybox image with /opt/tiny, a 9 kB static program that exits."""
    podman = make_podman(work / "podman")
    tiny = work / "tiny"
    (work / "tiny.c").write_text(TINY)
    subprocess.run(["gcc", "-static", "-nostdlib", "-O2", "-o", str(tiny), str(work / "tiny.c")], check=True)
    image = f"localhost/bdebpf-{name}:latest"
    rootfs = busybox_rootfs_tar(work.parent / "busybox", work / "rootfs.tar", {"/opt/tiny": tiny})
    podman("import", "--change", 'CMD ["/bin/sh"]', str(rootfs), image)
    return podman, image


def _run(podman: Podman, cid: str, script: str) -> None:
    subprocess.run(["podman", "exec", "--user", f"{UID}:{GID}", cid, "sh", "-c", script], env=podman.env,
                   check=True, capture_output=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def busybox_dir(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> Path:
    root = tmp_path_factory.mktemp("ebpfagent")
    (root / "busybox").write_bytes((test_binaries / "busybox-static-amd64" / "bin" / "busybox").read_bytes())
    (root / "busybox").chmod(0o755)
    return root


def _exact(process: ProcessInfo | None, path: str, token: str, cwd: str, script: str) -> bool:
    return (process is not None and process.args == [path, token] and process.uid == UID and process.gid == GID
            and process.cwd == cwd and process.exe == path and process.context_source == "ebpf"
            and any(p.comm == "sh" and p.args == ["sh", "-c", script] for p in process.lineage))  # fmt: skip


class InProcessAgent:
    """The agent's loop in a thread of this process, publishing its detections to a list instead of a store:
    the findings stage stays out of a measurement of process context."""

    def __init__(self) -> None:
        from bindrift.agent.loop import Agent

        self.detections: list[Detection] = []
        self.agent = Agent(None, publish=self.detections.append, process_sensor="ebpf")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.agent.run(0.2)

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)
        self.agent.close()

    def executed(self, cid: str) -> dict[str, Detection]:
        return {d.file.path: d for d in list(self.detections)
                if d.category == "Added Binary Executed" and d.resource.container_id == cid}  # fmt: skip


@pytest.mark.slow
def test_a_thousand_added_binaries_carry_exact_context(busybox_dir: Path) -> None:
    work = busybox_dir / "ebpf"
    work.mkdir()
    podman, image = _image(work, "ebpf")
    served = work / "www"
    served.mkdir()
    for i in range(DOWNLOAD_N):
        (served / f"d{i}").write_bytes((work / "tiny").read_bytes() + f"download {i}\n".encode())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    agent = InProcessAgent()
    cid = ""
    try:
        cid = podman("run", "-d", "--network", "host", "--name", f"bdebpf-k-{os.getpid()}", image, "sleep",
                     "600").strip()  # fmt: skip
        agent.agent.sync_containers()
        assert cid in agent.agent.watches.attached
        agent.thread.start()
        shell = (f"mkdir -p /tmp/s && cd /tmp/s && for i in $(seq 1 {SHELL_N}); do cp /opt/tiny s$i && "
                 f"echo shell $i >> s$i; done; for i in $(seq 1 {SHELL_N}); do /tmp/s/s$i tok-s$i; done")  # fmt: skip
        xargs = (f"mkdir -p /tmp/x && cd /tmp/x && for i in $(seq 1 {XARGS_N}); do cp /opt/tiny x$i && "
                 f"echo xargs $i >> x$i; done; seq 1 {XARGS_N} | xargs -P 4 -I{{}} /tmp/x/x{{}} tok-x{{}}")  # fmt: skip
        download = (f"mkdir -p /tmp/d && cd /tmp/d && for i in $(seq 0 {DOWNLOAD_N - 1}); do wget -q -O /tmp/d/d$i "
                    f"http://127.0.0.1:{port}/d$i && chmod +x /tmp/d/d$i && /tmp/d/d$i tok-d$i; done")  # fmt: skip
        started = time.monotonic()
        for script in (shell, xargs, download):
            _run(podman, cid, script)
        expected = {f"/tmp/s/s{i}": (f"tok-s{i}", "/tmp/s", shell) for i in range(1, SHELL_N + 1)}
        expected |= {f"/tmp/x/x{i}": (f"tok-x{i}", "/tmp/x", xargs) for i in range(1, XARGS_N + 1)}
        expected |= {f"/tmp/d/d{i}": (f"tok-d{i}", "/tmp/d", download) for i in range(DOWNLOAD_N)}
        try:
            wait_for(lambda: len(agent.executed(cid).keys() & expected.keys()) >= len(expected), 120, "detections")
        except AssertionError:
            missing = sorted(expected.keys() - agent.executed(cid).keys())
            raise AssertionError(f"{len(missing)} missing: {missing[:5]}") from None
        found = agent.executed(cid)
        exact = [path for path, (token, cwd, script) in expected.items()
                 if _exact(found[path].process, path, token, cwd, script)]  # fmt: skip
        share = len(exact) / len(expected)
        print(
            f"exact process context: {len(exact)}/{len(expected)} ({share:.2%}) in {time.monotonic() - started:.1f} s"
        )
        assert share >= EXACT_SHARE, [(p, found[p].process) for p in sorted(expected.keys() - set(exact))[:3]]
        downloaded = [found[f"/tmp/d/d{i}"].writer for i in range(DOWNLOAD_N)]
        exact_writers = sum(
            1
            for i, w in enumerate(downloaded)
            if w is not None
            and w.args == ["wget", "-q", "-O", f"/tmp/d/d{i}", f"http://127.0.0.1:{port}/d{i}"]
            and w.downloaded_by == "wget"
        )
        print(
            f"exact downloader: {exact_writers}/{DOWNLOAD_N}",
            [(i, w) for i, w in enumerate(downloaded) if w is None or w.args[:1] != ["wget"]][:2],
        )
        assert exact_writers / DOWNLOAD_N >= EXACT_SHARE, downloaded[:2]
        assert agent.agent.kernel_feed is not None and agent.agent.kernel_feed.lost == 0
    finally:
        agent.close()
        server.shutdown()
        server.server_close()
        if cid:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False)
        podman.reset()


@pytest.mark.parametrize("sensor", ["ebpf", "procfs"])
def test_the_source_of_process_context_is_stated_in_log_metrics_and_findings(busybox_dir: Path, sensor: str) -> None:
    """`bindrift watch --process-sensor procfs` (as where eBPF cannot load) and `ebpf`: the log, the metrics
    and the stored finding say which."""
    work = busybox_dir / f"cli-{sensor}"
    work.mkdir()
    podman, image = _image(work, f"cli-{sensor}")
    db, log, metrics = f"sqlite:///{work / 'agent.db'}", work / "agent.log", work / "metrics.prom"
    with log.open("w") as out:
        command = [BINDRIFT, "watch", "--db", db, "--process-sensor", sensor, "--metrics-file", str(metrics)]
        agent = subprocess.Popen([*command, "--duration", "120"], stdout=subprocess.DEVNULL, stderr=out)
    cid = ""
    try:
        wait_logged(log, "agent started")
        said = "process context from the eBPF sensor" if sensor == "ebpf" else "process context from procfs (fallback"
        assert said in log.read_text()
        cid = podman("run", "-d", "--name", f"bdebpf-{sensor}-{os.getpid()}", image, "sleep", "600").strip()
        wait_logged(log, f"watching container {cid}")
        _run(podman, cid, "mkdir -p /tmp/f && cd /tmp/f && cp /opt/tiny f1 && echo 1 >> f1 && sleep 0.3 && ./f1 tok")
        found = wait_stored(db, FindingFilter(container_id=cid, category="Added Binary Executed"), timeout=20)
        assert found and found[0].process is not None and found[0].process.context_source == sensor
        if sensor == "ebpf":
            assert found[0].process.args == ["./f1", "tok"] and found[0].process.cwd == "/tmp/f"
        wait_for(metrics.exists, 15, "the metrics file")
        assert f'bindrift_process_context{{source="{sensor}"}} 1.0' in metrics.read_text()
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        if cid:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False)
        podman.reset()
