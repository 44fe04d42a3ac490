"""Running containers, discovered from the runc state every runtime leaves on the node.

podman and CRI-O keep it under `/run/runc`, containerd under `/run/containerd/runc/<namespace>`
(`k8s.io` for Kubernetes), Docker under `/run/docker/runtime-runc/moby`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from bindrift.context.mountinfo import read_overlay_root
from bindrift.context.podman_store import podman_image

MAX_STATE = 4 * 2**20
STATE_ROOTS = (("/run/runc", "podman"), ("/run/containerd/runc", "containerd"),
               ("/run/docker/runtime-runc/moby", "docker"))  # fmt: skip


class ContainerContext(msgspec.Struct, frozen=True):
    """What bindrift knows about one running container."""

    id: str
    runtime: str
    init_pid: int
    rootfs: str
    upper: str
    lowers: list[str]
    started: datetime | None = None
    name: str = ""
    image: str = ""
    image_digest: str = ""
    namespace: str = ""
    pod: str = ""
    container_name: str = ""
    runtime_namespace: str = ""


def _state_dirs(root: str) -> Iterator[tuple[Path, str]]:
    """(state folder, runtime namespace) pairs below a runc state root."""
    base = Path(root)
    if not base.is_dir():
        return
    for entry in base.iterdir():
        if (entry / "state.json").is_file():
            yield entry, ""
        elif entry.is_dir():
            for inner in entry.iterdir():
                if (inner / "state.json").is_file():
                    yield inner, entry.name


def _annotations(state: dict[str, object]) -> dict[str, str]:
    config = state.get("config")
    labels = config.get("labels") if isinstance(config, dict) else None
    found = {}
    for label in labels if isinstance(labels, list) else []:
        if isinstance(label, str) and "=" in label:
            key, _, value = label.partition("=")
            found[key] = value
    return found


def load_container(state_dir: Path, runtime: str, runtime_namespace: str) -> ContainerContext | None:
    """The container described by a runc state folder, or None when it is not running on overlay."""
    try:
        raw = (state_dir / "state.json").read_bytes()[:MAX_STATE]
        state = json.loads(raw)
    except (OSError, ValueError):
        return None
    pid = state.get("init_process_pid")
    if not isinstance(pid, int) or pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        return None
    overlay = read_overlay_root(pid)
    if overlay is None:
        return None
    notes = _annotations(state)
    if runtime == "podman" and notes.get("io.container.manager") != "libpod":
        runtime = "cri-o"  # CRI-O shares runc's default state root with podman
    config = state.get("config") if isinstance(state.get("config"), dict) else {}
    rootfs = str(config.get("rootfs", "")) if isinstance(config, dict) else ""
    created = state.get("created")
    started = datetime.fromisoformat(created.replace("Z", "+00:00")) if isinstance(created, str) else None
    image, digest, name = "", "", ""
    if runtime == "podman":
        image, digest, name = podman_image(rootfs, state_dir.name)
    image = image or notes.get("io.kubernetes.cri.image-name", "") or notes.get("io.kubernetes.cri-o.ImageName", "")
    return ContainerContext(
        id=str(state.get("id", state_dir.name)), runtime=runtime, init_pid=pid, rootfs=rootfs, upper=overlay.upper,
        lowers=overlay.lowers, started=started.astimezone(UTC) if started else None, name=name, image=image,
        image_digest=digest,
        namespace=notes.get("io.kubernetes.pod.namespace") or notes.get("io.kubernetes.cri.sandbox-namespace", ""),
        pod=notes.get("io.kubernetes.pod.name") or notes.get("io.kubernetes.cri.sandbox-name", ""),
        container_name=notes.get("io.kubernetes.container.name") or notes.get("io.kubernetes.cri.container-name", "")
        or name,
        runtime_namespace=runtime_namespace,
    )  # fmt: skip


def running_containers(roots: tuple[tuple[str, str], ...] = STATE_ROOTS) -> dict[str, ContainerContext]:
    """Every running container on overlay, by id."""
    return ContainerDiscovery(roots).running()


class ContainerDiscovery:
    """`running_containers` for a caller that asks again and again (the agent, four times a second): a state
    file that has not changed since it was read is not parsed again; its init process is still checked."""

    def __init__(self, roots: tuple[tuple[str, str], ...] = STATE_ROOTS) -> None:
        self.roots = roots
        self._known: dict[Path, tuple[tuple[int, int, int], ContainerContext | None]] = {}

    def running(self) -> dict[str, ContainerContext]:
        found: dict[str, ContainerContext] = {}
        seen: set[Path] = set()
        for root, runtime in self.roots:
            for state_dir, namespace in _state_dirs(root):
                seen.add(state_dir)
                container = self._load(state_dir, runtime, namespace)
                if container is not None:
                    found[container.id] = container
        for gone in self._known.keys() - seen:
            del self._known[gone]
        return found

    def _load(self, state_dir: Path, runtime: str, namespace: str) -> ContainerContext | None:
        try:
            info = (state_dir / "state.json").stat()
        except OSError:
            return None
        version = (info.st_ino, info.st_size, info.st_mtime_ns)
        cached = self._known.get(state_dir)
        if cached is not None and cached[0] == version:
            container = cached[1]
            if container is None or os.path.exists(f"/proc/{container.init_pid}"):
                return container
        container = load_container(state_dir, runtime, namespace)
        self._known[state_dir] = (version, container)
        return container
