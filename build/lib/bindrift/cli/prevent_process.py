"""The agent's side of the prevention process (`bindrift.cli.prevent_worker`): same interface as an
in-process `Prevention`, the work done in a process of its own."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from bindrift.cli.prevent_worker import Report, Start, Unwatch, Watch, decoder, encoder, receive
from bindrift.context.containers import ContainerContext
from bindrift.response.policy import in_scope
from bindrift.response.prevent import Outcome, permission_group
from bindrift.schema.finding import Detection, Evidence, FileInfo, Resource
from bindrift.schema.response import ResponsePolicy
from bindrift.schema.severity import Severity

log = logging.getLogger(__name__)
SOCKET_BUFFER = 4 << 20


class PreventionProcess:
    """Starts the prevention process, hands it each container's permission group, relays its reports."""

    def __init__(self, policies: list[ResponsePolicy], *, intel: list[tuple[str, str]],
                 severity: Mapping[str, Severity], deadline: float, node: Resource) -> None:  # fmt: skip
        self.policies = [p for p in policies if p.mode in ("prevent", "block")]
        self.node = node
        self.alive = True
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for end in (self.sock, child):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        self.process = subprocess.Popen([sys.executable, "-m", "bindrift.cli.prevent_worker", str(child.fileno())],
                                        pass_fds=[child.fileno()])  # fmt: skip
        child.close()
        self.sock.send(encoder.encode(Start(self.policies, intel, dict(severity), deadline)))

    @property
    def pid(self) -> int:
        return self.process.pid

    def fileno(self) -> int:
        return self.sock.fileno()

    def covers(self, resource: Resource) -> bool:
        """Whether a `prevent` or `block` policy may apply in this container (only those are held)."""
        return self.alive and any(in_scope(p, resource) for p in self.policies)

    def watch(self, key: str, root: str, container: ContainerContext, resource: Resource) -> None:
        """Place the container's permission group here (OSError if the mark fails) and hand it over."""
        group = permission_group(root)
        try:
            socket.send_fds(self.sock, [encoder.encode(Watch(key, container, resource))], [group.fd])
        finally:
            group.close()  # the process holds it now: only its death releases the held execs

    def unwatch(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(encoder.encode(Unwatch(key)))

    def drain(self) -> list[Outcome]:
        """The reports waiting; a *Prevention degraded* one if the process has died (`alive` turns False)."""
        found: list[Outcome] = []
        while self.alive:
            try:
                data, fds = receive(self.sock, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not data:
                self.alive = False
                found.append(Outcome(self._died(), prevented=False))
                break
            report = decoder.decode(data)
            if isinstance(report, Report):
                found.append(Outcome(report.detection, report.prevented, report.policy_id, fds[0] if fds else -1))
        return found

    def _died(self) -> Detection:
        try:
            code: int | None = self.process.wait(timeout=1)  # its socket closes a moment before it is reaped
        except subprocess.TimeoutExpired:
            code = None
        log.error("the prevention process exited (%s): executions are no longer checked", code)
        return Detection(
            category="Prevention degraded", observed_at=datetime.now(UTC), resource=self.node,
            file=FileInfo(path="prevention-process"), source="agent",
            evidence=[Evidence("process", f"the prevention process exited ({code}): executions are allowed "
                               "unchecked", {"pid": self.process.pid, "exit": code})],
        )  # fmt: skip

    def close(self) -> None:
        self.sock.close()  # the process ends on the socket's end
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
