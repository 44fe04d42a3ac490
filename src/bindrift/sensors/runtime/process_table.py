"""What is known about each process: read from /proc when it execs (before a short-lived writer such
as `cp` is gone), kept a while after it exits, and joined into a lineage."""

from __future__ import annotations

import os
import posixpath
import time

from bindrift.schema.finding import ProcessInfo, ProcessRef

MAX_CMDLINE = 64 * 1024
MAX_LINEAGE = 16
KEEP_EXITED_S = 120.0
EXPIRE_EVERY_S = 1.0
INGRESS_TOOLS = frozenset({"curl", "wget", "tftp", "scp", "sftp", "nc", "ncat", "netcat", "socat", "rsync", "ftp",
                           "aria2c", "fetch"})  # fmt: skip
URL_SCHEMES = ("http://", "https://", "ftp://", "tftp://")
SCRIPTERS = ("python", "perl", "ruby", "php", "node")


def _read(path: str, limit: int = 4096) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, limit)
    except OSError:
        return b""
    finally:
        os.close(fd)


def snapshot(pid: int) -> ProcessInfo | None:
    """The process as /proc shows it now, or None when it is gone."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    comm = stat[stat.find(b"(") + 1 : stat.rfind(b")")].decode(errors="replace")
    fields = stat[stat.rfind(b")") + 2 :].split()
    ppid = int(fields[1]) if len(fields) > 1 else 0
    args = [a.decode(errors="replace") for a in _read(f"/proc/{pid}/cmdline", MAX_CMDLINE).split(b"\0") if a]
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    uid = -1
    for line in _read(f"/proc/{pid}/status", 8192).splitlines():
        if line.startswith(b"Uid:"):
            uid = int(line.split()[1])
            break
    return ProcessInfo(pid=pid, ppid=ppid, comm=comm, exe=exe, args=args, uid=uid,
                       downloaded_by=ingress_tool(comm, args))  # fmt: skip


def ingress_tool(comm: str, args: list[str]) -> str:
    """The download tool this process is (busybox applets count by their name), or ''."""
    name = posixpath.basename(args[0]) if args else comm
    for candidate in (name, comm):
        if candidate in INGRESS_TOOLS:
            return candidate
    if name == "busybox" and len(args) > 1 and args[1] in INGRESS_TOOLS:
        return f"busybox {args[1]}"
    if name.startswith(SCRIPTERS) and any(scheme in arg for arg in args[1:] for scheme in URL_SCHEMES):
        return f"{name} one-liner"
    return ""


def _pid_namespace(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


class ProcessTable:
    """pid → the latest snapshot; entries outlive their process by a couple of minutes."""

    def __init__(self) -> None:
        self._known: dict[int, ProcessInfo] = {}
        self._exited: dict[int, float] = {}
        self._pidns: dict[int, str] = {}
        self._exec_paths: dict[int, str] = {}
        self._expired_at = 0.0

    def on_exec(self, pid: int) -> None:
        """Read the process now; if it is already gone, forget what it inherited from its parent rather than
        report the parent's name for it (its executable may still arrive through `note_exe`)."""
        found = snapshot(pid)
        if found is not None:
            self._known[pid] = found
            self._exited.pop(pid, None)
            self._pidns[pid] = _pid_namespace(pid)
            return
        known = self._known.get(pid)
        ppid = known.ppid if known is not None else 0
        self._known[pid] = ProcessInfo(pid=pid, ppid=ppid, comm="", uid=known.uid if known is not None else -1)

    def on_comm(self, pid: int, comm: str) -> None:
        """A new name (prctl, as busybox applets run in a forked shell do): the arguments inherited from the
        parent no longer describe the process; its executable, unchanged without an exec, still does."""
        known = self._known.get(pid)
        if known is not None and known.comm != comm:
            self._known[pid] = ProcessInfo(pid=pid, ppid=known.ppid, comm=comm, exe=known.exe, uid=known.uid,
                                           downloaded_by=ingress_tool(comm, []))  # fmt: skip

    def note_exe(self, pid: int, exe: str) -> None:
        """The executable a process was seen opening for exec (a container-relative path): known even when
        the process is gone before /proc can be read."""
        self._exec_paths[pid] = exe

    def on_fork(self, pid: int, parent: int) -> None:
        known = self._known.get(parent)
        if known is not None and pid not in self._known:
            self._known[pid] = ProcessInfo(pid=pid, ppid=parent, comm=known.comm, exe=known.exe, args=known.args,
                                           uid=known.uid, downloaded_by=known.downloaded_by)  # fmt: skip

    def on_exit(self, pid: int) -> None:
        if pid in self._known:
            self._exited[pid] = time.monotonic()
        self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        if now - self._expired_at < EXPIRE_EVERY_S:  # a scan of every exited process, not one per exit
            return
        self._expired_at = now
        for pid in [p for p, at in self._exited.items() if now - at > KEEP_EXITED_S]:
            self._known.pop(pid, None)
            self._pidns.pop(pid, None)
            self._exec_paths.pop(pid, None)
            del self._exited[pid]

    def namespace(self, pid: int) -> str:
        """The process's PID namespace as read at its exec, else read now ('' when it is gone)."""
        return self._pidns.get(pid) or _pid_namespace(pid)

    def peek(self, pid: int) -> ProcessInfo | None:
        """The latest snapshot of `pid`, without lineage (cheap)."""
        return self._known.get(pid)

    def get(self, pid: int, stop_at: int = 0) -> ProcessInfo | None:
        """The process with its lineage up to `stop_at` (a container's init) or pid 1; read from /proc if it
        was not seen exec'ing."""
        process = self._known.get(pid) or snapshot(pid)
        if process is None:
            return None
        # A process already gone has no namespace to read: the container's (its init's) stands in for it.
        namespace = self._pidns.get(pid) or _pid_namespace(pid) or (_pid_namespace(stop_at) if stop_at else "")
        lineage: list[ProcessRef] = []
        parent = process.ppid
        while parent > 1 and len(lineage) < MAX_LINEAGE:
            ancestor = self._known.get(parent) or snapshot(parent)
            if ancestor is None:
                break
            if namespace and (self._pidns.get(parent) or _pid_namespace(parent)) != namespace:
                break  # the chain left the container (runc, conmon, the runtime's daemon)
            lineage.append(ProcessRef(pid=ancestor.pid, comm=ancestor.comm, exe=ancestor.exe, args=ancestor.args))
            if ancestor.pid == stop_at:
                break
            parent = ancestor.ppid
        exe = process.exe or self._exec_paths.get(pid, "")
        return ProcessInfo(pid=process.pid, ppid=process.ppid, comm=process.comm, exe=exe, args=process.args,
                           uid=process.uid, lineage=lineage, downloaded_by=process.downloaded_by)  # fmt: skip
