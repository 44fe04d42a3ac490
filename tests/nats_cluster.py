"""A NATS JetStream cluster of our own: Debian's nats-server, one or three servers on 127.0.0.1 with free ports
and private store folders, started and stopped by PID; used by tests/bus and bench/bus.py."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NatsCluster:
    """Servers started by the test; `kill(i)` ends one with SIGKILL, `start(i)` (re)starts it."""

    folder: Path
    size: int
    ports: list[int] = field(default_factory=list)
    routes: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = [_free_port() for _ in range(self.size)]
        self.routes = [_free_port() for _ in range(self.size)]

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{port}" for port in self.ports]

    def start(self, i: int) -> None:
        config = self.folder / f"s{i}.conf"
        store = self.folder / f"store{i}"
        lines = [f"server_name: s{i}", f"listen: 127.0.0.1:{self.ports[i]}",
                 f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, max_file_store: 1GB }}']  # fmt: skip
        if self.size > 1:
            routes = ", ".join(f"nats://127.0.0.1:{port}" for j, port in enumerate(self.routes) if j != i)
            lines.append(f"cluster {{ name: bindrift-test, listen: 127.0.0.1:{self.routes[i]}, routes: [{routes}] }}")
        config.write_text("\n".join(lines) + "\n")
        with (self.folder / f"s{i}.log").open("ab") as log:
            self.processes[i] = subprocess.Popen([NATS_SERVER, "-c", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.ports[i])) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"nats-server s{i} did not listen: {(self.folder / f's{i}.log').read_text()[-2000:]}")

    def kill(self, i: int) -> None:
        process = self.processes.pop(i)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for i in list(self.processes):
            process = self.processes.pop(i)
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def wait_jetstream(self, timeout: float = 30.0) -> None:
        """Until JetStream answers (the cluster has elected its meta leader)."""
        asyncio.run(_wait_jetstream(self.urls, timeout))


async def _wait_jetstream(urls: list[str], timeout: float) -> None:
    import nats

    deadline = time.monotonic() + timeout
    client = await nats.connect(servers=urls, connect_timeout=2, max_reconnect_attempts=-1)
    try:
        js = client.jetstream(timeout=2)
        while True:
            try:
                await js.account_info()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await client.close()
