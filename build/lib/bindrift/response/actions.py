"""Response actions on what a finding names: its process, its container (through the runtime that runs
it), its file, and its Kubernetes pod. Each returns what happened as a `ResponseAction`; nothing here
raises for an action that could not be carried out (`ok` is False and `detail` says why).

Names and ids come from findings, which come from the workload: they are checked against a strict
pattern and passed as separate arguments (never through a shell, never where an option is expected).
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from bindrift.analysis.safe_open import open_in_root
from bindrift.schema.finding import Resource, ResponseAction

CONTAINER_ID = re.compile(r"^[0-9a-f]{12,64}$")
RUNTIME_TIMEOUT_S = 30.0
MAX_CGROUP = 64 * 1024
CONTAINERD_STATE = Path("/run/containerd/runc")


def _action(action: str, by: str, ok: bool, detail: str, **values: str | int | bool | None) -> ResponseAction:
    return ResponseAction(action, by, datetime.now(UTC), ok=ok, detail=detail, values=dict(values))


def _in_container(pid: int, container_id: str) -> bool:
    """The process's cgroup names the container (guards against a recycled pid)."""
    try:
        with open(f"/proc/{pid}/cgroup", "rb") as fh:
            return container_id.encode() in fh.read(MAX_CGROUP)
    except OSError:
        return False


def kill_process(pid: int, resource: Resource, by: str) -> ResponseAction:
    """SIGKILL `pid` through a pidfd, once its cgroup shows it is still in the finding's container."""
    if pid <= 0:
        return _action("kill", by, False, "the finding names no process", pid=pid)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as exc:
        return _action("kill", by, False, f"process {pid} is gone: {exc.strerror}", pid=pid)
    try:
        if resource.container_id and not _in_container(pid, resource.container_id):
            return _action("kill", by, False, f"pid {pid} is no longer in container {resource.container_id[:12]}",
                           pid=pid)  # fmt: skip
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError as exc:
        return _action("kill", by, False, f"kill {pid}: {exc.strerror}", pid=pid)
    finally:
        os.close(pidfd)
    return _action("kill", by, True, f"process {pid} killed (SIGKILL)", pid=pid)


def _containerd_namespace(container_id: str) -> str:
    """The containerd namespace holding the container (from its runc state folder), `default` if unknown."""
    try:
        for entry in CONTAINERD_STATE.iterdir():
            if (entry / container_id).is_dir():
                return entry.name
    except OSError:
        pass
    return "default"


def runtime_command(resource: Resource, verb: str) -> list[str]:
    """The runtime's command to `pause` or `stop` the container. ValueError for an unusable finding."""
    cid = resource.container_id
    if not CONTAINER_ID.match(cid):
        raise ValueError(f"not a container id: {cid!r}")
    if resource.runtime in ("podman", "docker"):
        return [resource.runtime, "pause", cid] if verb == "pause" else [resource.runtime, "stop", "-t", "0", cid]
    if resource.runtime == "containerd":
        namespace = _containerd_namespace(cid)
        if verb == "pause":
            return ["ctr", "-n", namespace, "task", "pause", cid]
        return ["ctr", "-n", namespace, "task", "kill", "-s", "SIGKILL", cid]
    raise ValueError(f"no {verb} for runtime {resource.runtime or 'unknown'!r}")


def container_action(resource: Resource, verb: str, by: str, env: Mapping[str, str] | None = None) -> ResponseAction:
    """Pause or stop the container through its runtime (podman, docker, containerd's `ctr`); `env` reaches
    the runtime's client (CONTAINERS_CONF, CONTAINERD_ADDRESS, …)."""
    try:
        command = runtime_command(resource, verb)
    except ValueError as exc:
        return _action(verb, by, False, str(exc))
    try:
        result = subprocess.run(command, env=dict(env) if env is not None else None, capture_output=True, text=True,
                                timeout=RUNTIME_TIMEOUT_S, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _action(verb, by, False, f"{command[0]}: {exc}", command=" ".join(command))
    if result.returncode != 0:
        return _action(verb, by, False, f"{command[0]} exited {result.returncode}: {result.stderr.strip()[-500:]}",
                       command=" ".join(command))  # fmt: skip
    done = "paused" if verb == "pause" else "stopped"
    return _action(verb, by, True, f"container {resource.container_id[:12]} {done} ({resource.runtime})",
                   command=" ".join(command))  # fmt: skip


def quarantine_file(root: str, path: str, sha256: str, by: str) -> ResponseAction:
    """Make the file unexecutable (mode 000: not even root can exec it) inside the container root `root`
    (e.g. `/proc/<init>/root`); the old mode is recorded for `restore_file`."""
    try:
        fd = _open(root, path)
    except OSError as exc:
        return _action("quarantine", by, False, f"cannot open {path}: {exc.strerror}", path=path)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return _action("quarantine", by, False, f"{path} is not a regular file", path=path)
        os.fchmod(fd, 0)
    except OSError as exc:
        return _action("quarantine", by, False, f"chmod {path}: {exc.strerror}", path=path)
    finally:
        os.close(fd)
    mode = stat.S_IMODE(st.st_mode)
    return _action("quarantine", by, True, f"{path} made unexecutable (mode {mode:o} → 000)", path=path,
                   mode=mode, inode=st.st_ino, sha256=sha256)  # fmt: skip


def restore_file(root: str, path: str, mode: int, inode: int, by: str) -> ResponseAction:
    """Give a quarantined file back its mode, if it is still the same file (same inode)."""
    try:
        fd = _open(root, path)
    except OSError as exc:
        return _action("restore", by, False, f"cannot open {path}: {exc.strerror}", path=path)
    try:
        if os.fstat(fd).st_ino != inode:
            return _action("restore", by, False, f"{path} was replaced since the quarantine", path=path)
        os.fchmod(fd, mode)
    except OSError as exc:
        return _action("restore", by, False, f"chmod {path}: {exc.strerror}", path=path)
    finally:
        os.close(fd)
    return _action("restore", by, True, f"{path} restored to mode {mode:o}", path=path, mode=mode)


def _open(root: str, path: str) -> int:
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return open_in_root(root_fd, path)
    finally:
        os.close(root_fd)


def in_cluster() -> bool:
    """Whether bindrift runs in a Kubernetes pod (the service account and API address are there)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )


def delete_pod(resource: Resource, by: str) -> ResponseAction:
    """Delete the finding's pod through the Kubernetes API (in-cluster service account)."""
    if not (resource.namespace and resource.pod):
        return _action("delete-pod", by, False, "the finding names no pod")
    if not in_cluster():
        return _action("delete-pod", by, False, "not running in a Kubernetes cluster (no service account)")
    try:
        from kubernetes import client, config
    except ImportError:
        return _action("delete-pod", by, False, "the kubernetes client is not installed (pip install bindrift[k8s])")
    try:
        config.load_incluster_config()
        client.CoreV1Api().delete_namespaced_pod(resource.pod, resource.namespace, grace_period_seconds=0)
    except Exception as exc:  # the client's ApiException, ConfigException, and urllib3's errors (not OSErrors)
        return _action("delete-pod", by, False, f"delete pod {resource.namespace}/{resource.pod}: {exc}")
    return _action("delete-pod", by, True, f"pod {resource.namespace}/{resource.pod} deleted",
                   namespace=resource.namespace, pod=resource.pod)  # fmt: skip


def failed(action: str, by: str, detail: str) -> ResponseAction:
    """An action that could not even be attempted."""
    return _action(action, by, False, detail)
