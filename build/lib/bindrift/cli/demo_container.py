"""The container scenario of `bindrift demo`: a podman container of the demo's own (private storage, an
image built from this host's shell and coreutils, no registry, no network) watched by the agent while a
binary is dropped and run, an image binary is overwritten and run, one is only chmod'ed (not drift),
and a foreign binary is written inside it."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bindrift.cli.agent import Agent
    from bindrift.sinks.store.sql_store import SqlStore

PROGRAMS = ("sh", "cp", "cat", "chmod", "sleep")
LIBRARY = re.compile(r"(/\S+)\s+\(0x")
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
netns = "none"
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
{runtime}"""
IMAGE = "localhost/bindrift-demo:latest"
AGENT_RUN_S = 30.0
SETTLE_S = 1.0


class Podman:
    """podman with its configuration and storage under `root`."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        runtime = 'runtime = "runc"\n' if shutil.which("runc") else ""
        # podman's defaults (1048576) fail where root's hard limits are lower: use this host's own.
        nofile = _hard_limit(resource.RLIMIT_NOFILE, 20_000)
        nproc = _hard_limit(resource.RLIMIT_NPROC, 32_768)
        (root / "containers.conf").write_text(CONTAINERS_CONF.format(runtime=runtime, nofile=nofile, nproc=nproc))
        (root / "storage.conf").write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/storage"\n'
                                           f'runroot = "{root}/runroot"\n')  # fmt: skip
        self.env = {**os.environ, "CONTAINERS_CONF": str(root / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(root / "storage.conf")}  # fmt: skip

    def __call__(self, *args: str, stdin: bytes | None = None) -> str:
        result = subprocess.run(["podman", *args], env=self.env, input=stdin, capture_output=True, timeout=120,
                                check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"podman {args[0]}: {result.stderr.decode(errors='replace')[-500:]}")
        return result.stdout.decode()


def _hard_limit(limit: int, ceiling: int) -> int:
    hard = resource.getrlimit(limit)[1]
    return ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)


def _with_libraries(program: Path) -> set[Path]:
    """The program and the shared objects the host's loader resolves for it."""
    listed = subprocess.run(["ldd", str(program)], capture_output=True, text=True, timeout=30, check=False).stdout
    return {program, *(Path(match) for match in LIBRARY.findall(listed))}


def image_tar(dest: Path) -> Path:
    """A root file system of this host's shell and coreutils with their libraries, as a tarball."""
    rootfs = dest.with_suffix(".d")
    for sub in ("bin", "tmp", "etc", "proc", "sys", "dev", "root"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    for name in PROGRAMS:
        found = shutil.which(name)
        if found is None:
            raise FileNotFoundError(f"{name} is not installed")
        program = Path(found).resolve()
        shutil.copy(program, rootfs / "bin" / name)
        for library in _with_libraries(program) - {program}:
            target = rootfs / str(library).lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(library.resolve(), target)
    with tarfile.open(dest, "w") as tar:
        tar.add(rootfs, arcname=".")
    return dest


def container_scenario(store: SqlStore, scratch: Path, foreign: Path) -> str:
    """Run the scenario; returns what happened, in one line."""
    from bindrift.cli.agent import Agent

    podman = Podman(scratch / "podman")
    try:
        podman("import", "--change", 'CMD ["/bin/sh"]', str(image_tar(scratch / "rootfs.tar")), IMAGE)
        cid = podman("run", "-d", "--name", f"bindrift-demo-{os.getpid()}", IMAGE, "/bin/sleep", "120").strip()
        agent = Agent(store, cluster="demo")
        actor = threading.Thread(target=_act, args=(agent, podman, cid, foreign.read_bytes()), daemon=True)
        actor.start()
        deadline = time.monotonic() + AGENT_RUN_S
        try:
            while actor.is_alive() and time.monotonic() < deadline:
                agent.run(0.25)
            agent.run(SETTLE_S)  # the last exec's report and library scan
        finally:
            agent.close()
        return f"container {cid[:12]} ({IMAGE}) watched by the agent"
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", "--all"], env=podman.env, capture_output=True, timeout=120,
                       check=False)  # fmt: skip
        subprocess.run(["podman", "system", "reset", "-f"], env=podman.env, capture_output=True, timeout=120,
                       check=False)  # fmt: skip


def _act(agent: Agent, podman: Podman, cid: str, foreign: bytes) -> None:
    """Once the agent watches the container: drift, a modification, a harmless chmod, a foreign binary."""
    deadline = time.monotonic() + 5
    while cid not in agent.watched and time.monotonic() < deadline:
        time.sleep(0.05)
    steps: list[tuple[tuple[str, ...], bytes | None]] = [
        (("sh", "-c", "cp /bin/sleep /tmp/updater && /tmp/updater 0"), None),
        (("sh", "-c", "cp /bin/sleep /bin/cat && /bin/cat 0"), None),
        (("sh", "-c", "chmod 700 /bin/chmod && /bin/chmod 755 /tmp"), None),
        (("sh", "-c", "/bin/cp /dev/stdin /tmp/dropbear"), foreign),
    ]
    for command, stdin in steps:
        try:
            podman("exec", *(["-i"] if stdin is not None else []), cid, *command, stdin=stdin)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:  # the demo goes on with the other steps
            print(f"bindrift demo: {' '.join(command)} did not run: {exc}", file=sys.stderr)
