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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_for, wait_logged
from tests.containers import Podman, busybox_rootfs_tar, make_podman, podman_available

from bindrift.schema.finding import Finding
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

pytestmark = pytest.mark.skipif(not podman_available(), reason="needs podman, as root")
TINY = 'void _start(void){ __asm__ volatile("mov $60,%eax; xor %edi,%edi; syscall"); }\n'
SHELL_N, XARGS_N, DOWNLOAD_N = (int(n) for n in os.environ.get("BD_EBPF_N", "400,400,200").split(","))
UID, GID = 1000, 1001
EXACT_SHARE = 0.995


@dataclass
class Watched:
    podman: Podman
    cid: str
    db: str
    log: Path
    metrics: Path
    port: int
    served: Path

    def run(self, script: str) -> None:
        subprocess.run(["podman", "exec", "--user", f"{UID}:{GID}", self.cid, "sh", "-c", script],
                       env=self.podman.env, check=True, capture_output=True, timeout=300)  # fmt: skip

    def executed(self) -> dict[str, Finding]:
        store = SqlStore(self.db)
        try:
            found = store.list_findings(FindingFilter(container_id=self.cid, category="Added Binary Executed",
                                                      limit=5000))  # fmt: skip
        finally:
            store.close()
        return {f.file.path: f for f in found}


def _watched(work: Path, sensor: str) -> Iterator[Watched]:
    podman = make_podman(work / "podman")
    busybox = work.parent / "busybox"
    tiny = work / "tiny"
    (work / "tiny.c").write_text(TINY)
    subprocess.run(["gcc", "-static", "-nostdlib", "-O2", "-o", str(tiny), str(work / "tiny.c")], check=True)
    image = f"localhost/bdebpf-{sensor}:latest"
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(busybox, work / "rootfs.tar",
                                                                            {"/opt/tiny": tiny})), image)  # fmt: skip
    served = work / "www"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    db, log, metrics = f"sqlite:///{work / 'agent.db'}", work / "agent.log", work / "metrics.prom"
    with log.open("w") as out:
        command = [BINDRIFT, "watch", "--db", db, "--process-sensor", sensor, "--metrics-file", str(metrics)]
        agent = subprocess.Popen([*command, "--duration", "400"], stdout=subprocess.DEVNULL, stderr=out)
    cid = ""
    try:
        wait_logged(log, "agent started")
        cid = podman("run", "-d", "--network", "host", "--name", f"bdebpf-{sensor}-{os.getpid()}", image,
                     "sleep", "600").strip()  # fmt: skip
        wait_logged(log, f"watching container {cid}")
        yield Watched(podman, cid, db, log, metrics, server.server_port, served)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        server.shutdown()
        server.server_close()
        if cid:
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], env=podman.env, capture_output=True, check=False)
        podman.reset()


@pytest.fixture(scope="module")
def busybox_dir(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> Path:
    root = tmp_path_factory.mktemp("ebpfagent")
    (root / "busybox").write_bytes((test_binaries / "busybox-static-amd64" / "bin" / "busybox").read_bytes())
    (root / "busybox").chmod(0o755)
    return root


def _exact(finding: Finding, path: str, token: str, cwd: str, script: str) -> bool:
    process = finding.process
    return (process is not None and process.args == [path, token] and process.uid == UID and process.gid == GID
            and process.cwd == cwd and process.exe == path and process.context_source == "ebpf"
            and any(p.comm == "sh" and p.args == ["sh", "-c", script] for p in process.lineage))  # fmt: skip


@pytest.mark.slow
def test_a_thousand_added_binaries_carry_exact_context(busybox_dir: Path) -> None:
    work = busybox_dir / "ebpf"
    work.mkdir()
    watched = _watched(work, "ebpf")
    env = next(watched)
    try:
        wait_logged(env.log, "process context from the eBPF sensor")
        for i in range(DOWNLOAD_N):
            (env.served / f"d{i}").write_bytes((work / "tiny").read_bytes() + f"download {i}\n".encode())
        shell = (f"mkdir -p /tmp/s && cd /tmp/s && for i in $(seq 1 {SHELL_N}); do cp /opt/tiny s$i && "
                 f"echo shell $i >> s$i; done; for i in $(seq 1 {SHELL_N}); do /tmp/s/s$i tok-s$i; done")  # fmt: skip
        xargs = (f"mkdir -p /tmp/x && cd /tmp/x && for i in $(seq 1 {XARGS_N}); do cp /opt/tiny x$i && "
                 f"echo xargs $i >> x$i; done; seq 1 {XARGS_N} | xargs -P 4 -I{{}} /tmp/x/x{{}} tok-x{{}}")  # fmt: skip
        download = (f"mkdir -p /tmp/d && cd /tmp/d && for i in $(seq 0 {DOWNLOAD_N - 1}); do wget -q -O /tmp/d/d$i "
                    f"http://127.0.0.1:{env.port}/d$i && chmod +x /tmp/d/d$i && /tmp/d/d$i tok-d$i; done")  # fmt: skip
        started = time.monotonic()
        for script in (shell, xargs, download):
            env.run(script)
            print(f"ran in {time.monotonic() - started:.1f} s; {len(env.executed())} findings")
        expected = {f"/tmp/s/s{i}": (f"tok-s{i}", "/tmp/s", shell) for i in range(1, SHELL_N + 1)}
        expected |= {f"/tmp/x/x{i}": (f"tok-x{i}", "/tmp/x", xargs) for i in range(1, XARGS_N + 1)}
        expected |= {f"/tmp/d/d{i}": (f"tok-d{i}", "/tmp/d", download) for i in range(DOWNLOAD_N)}
        try:
            wait_for(lambda: len(env.executed().keys() & expected.keys()) >= len(expected), 120, "1,000 findings")
        except AssertionError:
            missing = sorted(expected.keys() - env.executed().keys())
            raise AssertionError(f"{len(missing)} missing: {missing[:5]}; {env.log.read_text()[-3000:]}") from None
        found = env.executed()
        exact = [path for path, (token, cwd, script) in expected.items() if _exact(found[path], path, token, cwd,
                                                                                  script)]  # fmt: skip
        share = len(exact) / len(expected)
        print(
            f"exact process context: {len(exact)}/{len(expected)} ({share:.2%}) in {time.monotonic() - started:.1f} s"
        )
        assert share >= EXACT_SHARE, [(p, found[p].process) for p in sorted(expected.keys() - set(exact))[:3]]
        downloaded = [found[f"/tmp/d/d{i}"].writer for i in range(DOWNLOAD_N)]
        print("DBG", [(i, w) for i, w in enumerate(downloaded) if w is None or w.args[0] != "wget"][:3])
        exact_writers = sum(
            1
            for i, w in enumerate(downloaded)
            if w is not None
            and w.args == ["wget", "-q", "-O", f"/tmp/d/d{i}", f"http://127.0.0.1:{env.port}/d{i}"]
            and w.downloaded_by == "wget"
        )
        assert exact_writers / DOWNLOAD_N >= EXACT_SHARE, downloaded[:2]
        assert 'bindrift_process_context{source="ebpf"} 1.0' in env.metrics.read_text()
    finally:
        next(watched, None)


def test_fallback_to_procfs_is_stated_in_log_metrics_and_findings(busybox_dir: Path) -> None:
    work = busybox_dir / "procfs"
    work.mkdir()
    watched = _watched(work, "procfs")
    env = next(watched)
    try:
        wait_logged(env.log, "process context from procfs (fallback: procfs chosen")
        script = "mkdir -p /tmp/f && cd /tmp/f && cp /opt/tiny f1 && echo 1 >> f1 && sleep 0.2 && /tmp/f/f1 tok"
        env.run(script)
        wait_for(lambda: "/tmp/f/f1" in env.executed(), 20, "the finding")
        finding = env.executed()["/tmp/f/f1"]
        assert finding.process is not None and finding.process.context_source == "procfs"
        wait_for(env.metrics.exists, 15, "the metrics file")
        assert 'bindrift_process_context{source="procfs"} 1.0' in env.metrics.read_text()
    finally:
        next(watched, None)
