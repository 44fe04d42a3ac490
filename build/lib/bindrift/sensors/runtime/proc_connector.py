"""The kernel's proc connector (netlink, CN_IDX_PROC): exec, fork and exit of every process."""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass

NETLINK_CONNECTOR = 11
CN_IDX_PROC, CN_VAL_PROC = 1, 1
PROC_CN_MCAST_LISTEN = 1
NLMSG_DONE = 3
PROC_EVENT_FORK, PROC_EVENT_EXEC, PROC_EVENT_COMM, PROC_EVENT_EXIT = 0x1, 0x2, 0x200, 0x80000000
HEADER = 16 + 20  # nlmsghdr + cn_msg


@dataclass(frozen=True, slots=True)
class ProcEvent:
    """`kind` is fork, exec, comm or exit; for a fork `pid` is the child and `parent` its parent; `comm` is
    the new name (exec renames a process before the exec event: a short-lived `cp` is known by it)."""

    kind: str
    pid: int
    parent: int = 0
    comm: str = ""


SO_RCVBUFFORCE = 33
RECEIVE_BUFFER = 4 * 2**20


class ProcConnector:
    """A non-blocking listener; lost messages (ENOBUFS) are counted in `lost`."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:  # as root, past net.core.rmem_max (often 208 KiB: a few hundred events)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.bind((0, CN_IDX_PROC))
        op = struct.pack("I", PROC_CN_MCAST_LISTEN)
        cn = struct.pack("IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
        self.sock.send(struct.pack("IHHII", 16 + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn)
        self.sock.setblocking(False)
        self.lost = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> list[ProcEvent]:
        events: list[ProcEvent] = []
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return events
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.lost += 1
                    continue
                raise
            event = _parse(data)
            if event is not None:
                events.append(event)

    def close(self) -> None:
        self.sock.close()


def _parse(data: bytes) -> ProcEvent | None:
    if len(data) < HEADER + 16:
        return None
    what = struct.unpack_from("I", data, HEADER)[0]
    body = HEADER + 16  # what, cpu, timestamp
    if what == PROC_EVENT_EXEC:
        pid, tgid = struct.unpack_from("ii", data, body)
        return ProcEvent("exec", tgid)
    if what == PROC_EVENT_FORK:
        _ppid, ptgid, _cpid, ctgid = struct.unpack_from("iiii", data, body)
        return ProcEvent("fork", ctgid, ptgid)
    if what == PROC_EVENT_COMM:
        _pid, tgid = struct.unpack_from("ii", data, body)
        name = data[body + 8 : body + 24].split(b"\0", 1)[0].decode(errors="replace")
        return ProcEvent("comm", tgid, comm=name)
    if what == PROC_EVENT_EXIT:
        pid, tgid = struct.unpack_from("ii", data, body)
        return None if pid != tgid else ProcEvent("exit", tgid)
    return None
