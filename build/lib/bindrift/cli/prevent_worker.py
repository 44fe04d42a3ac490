"""The prevention process: answers the containers' exec permission events away from the agent's
interpreter, so the agent's own work (and its GIL) never delays an exec.

Started by `PreventionProcess` as `python -m bindrift.cli.prevent_worker FD` with one end of a
SOCK_SEQPACKET socket pair. It receives its settings, then each container's permission group (the
descriptor itself, SCM_RIGHTS) and reports denied and degraded execs back, a denied one with a descriptor
of the file for the evidence. It dies with the agent (PR_SET_PDEATHSIG) and on the socket's end; the
kernel then releases every exec still waiting.
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

from bindrift.analysis.intel.intel_set import IntelSet, Kind
from bindrift.analysis.triage import triage
from bindrift.context.containers import ContainerContext
from bindrift.detectors.drift import classify_exec
from bindrift.detectors.suspicious_binary import suspicious_binary
from bindrift.findings.severity import SeverityPolicy
from bindrift.response.prevent import Prevention
from bindrift.schema.finding import Detection, FileInfo, ProcessInfo, Resource
from bindrift.schema.response import ResponsePolicy
from bindrift.schema.severity import Severity
from bindrift.sensors.runtime.fanotify import FAN_OPEN_EXEC_PERM, FanotifyGroup

MAX_MESSAGE = 1 << 20
PR_SET_PDEATHSIG = 1
log = logging.getLogger(__name__)


class ExecClassifier:
    """For prevention: the drift detection of an executed file, or None for an image binary (the upper
    layer is checked before anything is hashed)."""

    def __init__(self, intel: IntelSet, resource: Callable[[ContainerContext], Resource]) -> None:
        self.intel = intel
        self.resource = resource

    def __call__(self, fd: int, path: str, pid: int, container: ContainerContext) -> Detection | None:
        verdict = classify_exec(fd, path, container.upper, container.lowers, container.started)
        if verdict.category is None:
            return None
        now, resource = datetime.now(UTC), self.resource(container)
        intel = self.intel.lookup(verdict.sha256)
        suspicious = suspicious_binary(triage(fd, label=path), resource, now, "agent")
        file = suspicious.file if suspicious else FileInfo(path=path, sha256=verdict.sha256, size=os.fstat(fd).st_size)
        return Detection(category=verdict.category, observed_at=now, resource=resource, file=file, source="agent",
                         process=ProcessInfo(pid=pid), evidence=[*verdict.evidence, *(suspicious.evidence
                         if suspicious else [])], intel=intel)  # fmt: skip


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


class Report(msgspec.Struct, tag="report"):
    detection: Detection
    prevented: bool
    policy_id: str = ""


Message = Start | Watch | Unwatch | Report
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
    prevention: Prevention[ContainerContext] = Prevention(start.policies, classify,
                                                          severity=SeverityPolicy(start.severity),
                                                          deadline=start.deadline)  # fmt: skip
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "agent")
    selector.register(prevention, selectors.EVENT_READ, "prevention")
    try:
        while True:
            for key, _mask in selector.select():
                if key.data == "prevention":
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
                if isinstance(message, Watch) and fds:
                    resources[message.key] = message.resource
                    group = FanotifyGroup.adopt(fds[0], FAN_OPEN_EXEC_PERM)
                    prevention.adopt(message.key, group, message.container, message.resource)
                elif isinstance(message, Unwatch):
                    prevention.unwatch(message.key)
                    resources.pop(message.key, None)
                else:
                    for fd in fds:
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
