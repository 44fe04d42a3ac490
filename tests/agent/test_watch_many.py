"""One agent, 150 containers, the node's default sysctls (`fs.fanotify.max_user_groups` is 128): every
container is watched through the agent's one fanotify group, none raises *Coverage degraded*, new binaries
are still reported in the first, middle and last containers, and the agent stays within 128 MB of RSS."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.agents import BINDRIFT, wait_for, wait_logged
from tests.containers import Podman, busybox_rootfs_tar, make_podman, podman_available

from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not podman_available(), reason="needs podman, as root")]
CONTAINERS = 150
MAX_RSS_KB = 128 * 1024


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def many(
    tmp_path_factory: pytest.TempPathFactory, test_binaries: Path
) -> Iterator[tuple[Podman, list[str], str, Path]]:
    work = tmp_path_factory.mktemp("many")
    podman = make_podman(work / "podman")
    busybox = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(busybox, work / "rootfs.tar")),
           "localhost/bdmany:latest")  # fmt: skip
    db, log_path = f"sqlite:///{work / 'agent.db'}", work / "agent.log"
    with log_path.open("w") as log:
        agent = subprocess.Popen([BINDRIFT, "watch", "--db", db, "--node-name", "node-many", "--duration", "900"],
                                 stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
    ids: list[str] = []
    unique = uuid.uuid4().hex[:8]

    def start(index: int) -> str:
        return podman("run", "-d", "--name", f"bdmany-{unique}-{index}", "localhost/bdmany:latest", "sleep",
                      "900").strip()  # fmt: skip

    try:
        wait_logged(log_path, "agent started", 30)
        with ThreadPoolExecutor(4) as pool:
            ids.extend(pool.map(start, range(CONTAINERS)))
        yield podman, ids, db, log_path
        assert agent.poll() is None
        rss = _rss_kb(agent.pid)
        print(f"agent RSS with {CONTAINERS} containers watched: {rss / 1024:.1f} MiB")
        assert rss <= MAX_RSS_KB, f"agent RSS {rss} kB with {CONTAINERS} containers"
    finally:
        agent.terminate()
        agent.wait(timeout=60)
        for batch in range(0, len(ids), 50):
            subprocess.run(["podman", "rm", "-f", "-t", "0", *ids[batch : batch + 50]], env=podman.env,
                           capture_output=True, timeout=300, check=False)  # fmt: skip
        podman.reset()


def test_every_container_is_watched_by_one_group(many: tuple[Podman, list[str], str, Path]) -> None:
    podman, ids, db, log_path = many
    assert len(ids) == CONTAINERS
    wait_for(lambda: all(f"watching container {cid}" in log_path.read_text() for cid in ids), 60, "all watched")
    for cid in (ids[0], ids[CONTAINERS // 2], ids[-1]):
        script = "mkdir /tmp/n && cp /bin/busybox /tmp/n/true && echo many >> /tmp/n/true && /tmp/n/true"
        subprocess.run(["podman", "exec", cid, "sh", "-c", script], env=podman.env, check=True, timeout=60)
    store = SqlStore(db)
    try:

        def reported() -> bool:
            found = store.list_findings(FindingFilter(category="Added Binary Executed", node="node-many", limit=1000))
            return {ids[0], ids[CONTAINERS // 2], ids[-1]} <= {f.resource.container_id for f in found}

        wait_for(reported, 20, "the three containers' findings")
        degraded = store.list_findings(FindingFilter(category="Coverage degraded", node="node-many", limit=1000))
    finally:
        store.close()
    assert not [f for f in degraded if f.resource.container_id in ids]
    assert "fanotify_init" not in log_path.read_text()
