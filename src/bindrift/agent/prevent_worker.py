"""The prevention process: answers the containers' exec permission events away from the agent's
interpreter, so the agent's own work (and its GIL) never delays an exec.

Started by `PreventionProcess` as `python -m bindrift.agent.prevent_worker FD` with one end of a
SOCK_SEQPACKET socket pair. It receives its settings, then each container to watch; it marks the
container's writable mounts in its one permission group and reports denied and degraded execs back, a
denied one with a descriptor of the file for the evidence. It dies with the agent (PR_SET_PDEATHSIG) and
on the socket's end; the kernel then releases every exec still waiting.
"""

from __future__ import annotations

import array
import ctypes
import logging
import os
import selectors
import signal
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import msgspec

from bindrift.agent.coverage import last_path
from bindrift.agent.watches import mount_values
from bindrift.analysis.intel.intel_set import IntelSet, Kind
from bindrift.analysis.triage import triage
from bindrift.context.containers import ContainerContext
from bindrift.context.mountinfo import WatchedMount
from bindrift.detectors.drift import classify_exec, classify_mount_exec, script_evidence
from bindrift.detectors.suspicious_binary import suspicious_binary
from bindrift.findings.severity import SeverityPolicy
from bindrift.response.prevent import Prevention
from bindrift.schema.finding import Detection, FileInfo, ProcessInfo, Resource
from bindrift.schema.response import ResponsePolicy
from bindrift.schema.severity import Severity

MAX_MESSAGE = 1 << 20
PR_SET_PDEATHSIG = 1
log = logging.getLogger(__name__)


Context = tuple[ContainerContext, WatchedMount]


class ExecClassifier:
    """For prevention: the drift detection of an executed file, or None for an image binary (the upper
    layer is checked before anything is hashed); on a volume or tmpfs, a file changed after the container
    started."""

    def __init__(self, intel: IntelSet, resource: Callable[[ContainerContext], Resource]) -> None:
        self.intel = intel
        self.resource = resource

    def __call__(self, fd: int, path: str, pid: int, context: Context) -> Detection | None:
        container, mount = context
        st = os.fstat(fd)
        path, deleted = last_path(path, st)
        if mount.kind == "root":
            verdict = classify_exec(fd, path, container.upper, container.lowers, container.started, deleted=deleted)
        else:
            verdict = classify_mount_exec(fd, path, mount_values(mount), container.started, seen_written=False,
                                          deleted=deleted)  # fmt: skip
        if verdict.category is None:
            return None
        now, resource = datetime.now(UTC), self.resource(container)
        intel = self.intel.lookup(verdict.sha256) if verdict.sha256 else []
        suspicious = suspicious_binary(triage(fd, label=path, compute_hash=False), resource, now, "agent")
        file = FileInfo(path=path, sha256=verdict.sha256, size=st.st_size)
        if suspicious is not None:
            file = msgspec.structs.replace(suspicious.file, sha256=verdict.sha256)
        category, evidence = verdict.category, [*verdict.evidence, *(suspicious.evidence if suspicious else [])]
        script = script_evidence(fd, path)
        if script is not None:  # as the agent reports it: a script, not a binary
            category = "Added Script Executed"
            evidence.append(script)
        return Detection(category=category, observed_at=now, resource=resource, file=file, source="agent",
                         process=ProcessInfo(pid=pid), evidence=evidence, intel=intel)  # fmt: skip


class Start(msgspec.Struct, tag="start"):
    policies: list[ResponsePolicy]
    intel: list[tuple[str, str]]
    severity: dict[str, Severity]
    deadline: float


class Watch(msgspec.Struct, tag="watch"):
    key: str
    container: ContainerContext
    resource: Resource


class Unwatch(msgspec.Struct, tag="unwatch"):
    key: str


class Held(msgspec.Struct, tag="held"):
    """A container's execs are now held for decisions (its root file system is marked)."""

    key: str


class Report(msgspec.Struct, tag="report"):
    detection: Detection
    prevented: bool
    policy_id: str = ""


Message = Start | Watch | Unwatch | Held | Report
decoder = msgspec.msgpack.Decoder(Message)
encoder = msgspec.msgpack.Encoder()


def receive(sock: socket.socket, flags: int = 0) -> tuple[bytes, list[int]]:
    """One message and the descriptors it carries (`socket.recv_fds` drops its flags argument)."""
    fds = array.array("i")
    data, ancillary, _flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_LEN(fds.itemsize), flags)
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def serve(sock: socket.socket) -> None:
    """Answer until the agent goes away."""
    start = decoder.decode(sock.recv(MAX_MESSAGE))
    assert isinstance(start, Start)
    resources: dict[str, Resource] = {}
    intel = IntelSet([(path, cast(Kind, kind)) for path, kind in start.intel])
    classify = ExecClassifier(intel, lambda container: resources.get(container.id, Resource()))
    prevention: Prevention[Context] = Prevention(start.policies, classify,
                                                          severity=SeverityPolicy(start.severity),
                                                          deadline=start.deadline)  # fmt: skip
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "agent")
    selector.register(prevention, selectors.EVENT_READ, "prevention")
    try:
        while True:
            for key, _mask in selector.select():
                if key.data == "prevention":
                    for marked in prevention.drain_marked():
                        sock.send(encoder.encode(Held(marked)))
                    for outcome in prevention.drain():
                        fds = [outcome.fd] if outcome.fd >= 0 else []
                        try:
                            socket.send_fds(sock, [encoder.encode(Report(outcome.detection, outcome.prevented,
                                                                         outcome.policy_id))], fds)  # fmt: skip
                        finally:
                            for fd in fds:
                                os.close(fd)
                    continue
                data, fds = receive(sock)
                if not data:
                    return
                message = decoder.decode(data)
                if isinstance(message, Watch):
                    resources[message.key] = message.resource
                    container = message.container
                    mounts = [(m.mount_id, m.mountpoint, m.kind == "root", (container, m)) for m in container.mounts]
                    prevention.watch(message.key, container.init_pid, mounts, message.resource)
                elif isinstance(message, Unwatch):
                    prevention.unwatch(message.key)
                    resources.pop(message.key, None)
                for fd in fds:  # nothing sent to this process carries a descriptor
                    os.close(fd)
    finally:
        prevention.close()


def main() -> None:
    _die_with_parent()
    if os.getppid() == 1:
        return
    logging.basicConfig(level=logging.WARNING, format="bindrift prevention: %(message)s")
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
