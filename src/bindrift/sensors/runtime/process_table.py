"""What is known about each process, kept a while after it exits and joined into a lineage: captured in the
kernel by the eBPF sensor (`apply`, exact and never late), or, as the fallback, read from /proc when the
proc connector says a process exec'd (before a short-lived writer such as `cp` is gone, when in time)."""

from __future__ import annotations

import os
import posixpath
import time
from datetime import UTC, datetime
from functools import lru_cache

import msgspec

from bindrift.schema.finding import ProcessInfo, ProcessRef
from bindrift.sensors.ebpf.events import Event, ExecEvent
from bindrift.sensors.ebpf.images import ProcessImages, Record

MAX_CMDLINE = 64 * 1024
MAX_LINEAGE = 16
KEEP_EXITED_S = 120.0
EXPIRE_EVERY_S = 1.0
INGRESS_TOOLS = frozenset({"curl", "wget", "tftp", "scp", "sftp", "nc", "ncat", "netcat", "socat", "rsync", "ftp",
                           "aria2c", "fetch"})  # fmt: skip
URL_SCHEMES = ("http://", "https://", "ftp://", "tftp://")
SCRIPTERS = ("python", "perl", "ruby", "php", "node")


def _read(directory: int, name: str, limit: int = 4096) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=directory)
    except OSError:
        return b""
    try:
        return os.read(fd, limit)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _readlink(directory: int, name: str) -> str:
    try:
        return os.readlink(name, dir_fd=directory)
    except OSError:
        return ""


@lru_cache(maxsize=1)
def _clock() -> tuple[float, int]:
    """(boot time in seconds since the epoch, clock ticks per second)."""
    with open("/proc/stat", "rb") as fh:
        for line in fh.read(64 * 1024).splitlines():
            if line.startswith(b"btime "):
                return float(line.split()[1]), os.sysconf("SC_CLK_TCK")
    raise OSError("no btime in /proc/stat")


def start_time(stat: bytes) -> datetime | None:
    """When the process of a /proc/PID/stat line started (its field 22, clock ticks after boot); None if the
    line is malformed. Computed the same way each time, so equal values mean the same process start."""
    try:
        ticks = int(stat[stat.rfind(b")") + 2 :].split(maxsplit=20)[19])
        boot, hz = _clock()
    except (IndexError, ValueError, OSError):
        return None
    return datetime.fromtimestamp(boot + ticks / hz, UTC)


def start_time_of(boot_ns: int) -> datetime | None:
    """The start time of a process from its kernel start time (ns after boot, as the eBPF sensor reads it),
    computed as `start_time` computes /proc's clock ticks: a responder comparing the two finds them equal.
    (The kernel's task start time leaves out time suspended; /proc's counts it: equal on a node never
    suspended, as servers are.)"""
    try:
        boot, hz = _clock()
    except OSError:
        return None
    return datetime.fromtimestamp(boot + (boot_ns * hz // 1_000_000_000) / hz, UTC)


def snapshot(pid: int) -> tuple[ProcessInfo, str] | None:
    """The process as /proc shows it now, with its PID namespace, or None when it is gone. Every file is read
    beneath one open /proc/PID: all from the same process even if the PID is reused meanwhile, and without a
    path walk each (a third cheaper: this runs for every exec on the node)."""
    try:
        directory = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        stat = _read(directory, "stat")
        if not stat:
            return None
        comm = stat[stat.find(b"(") + 1 : stat.rfind(b")")].decode(errors="replace")
        fields = stat[stat.rfind(b")") + 2 :].split()
        ppid = int(fields[1]) if len(fields) > 1 else 0
        args = [a.decode(errors="replace") for a in _read(directory, "cmdline", MAX_CMDLINE).split(b"\0") if a]
        exe = _readlink(directory, "exe")
        status = _read(directory, "status", 8192)
        at = status.find(b"\nUid:")
        uid_fields = status[at + 5 : status.find(b"\n", at + 5)].split() if at >= 0 else []
        uid = int(uid_fields[0]) if uid_fields else -1
        process = ProcessInfo(pid=pid, ppid=ppid, comm=comm, exe=exe, args=args, uid=uid,
                              start_time=start_time(stat), downloaded_by=ingress_tool(comm, args),
                              context_source="procfs")  # fmt: skip
        return process, _readlink(directory, "ns/pid")
    finally:
        os.close(directory)


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


def _process(found: tuple[ProcessInfo, str] | None) -> ProcessInfo | None:
    return found[0] if found is not None else None


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
        self._previous: dict[int, ProcessInfo] = {}  # what each process was before its last exec
        self._expired_at = 0.0
        self.images = ProcessImages()

    def apply(self, events: list[Event]) -> list[ExecEvent]:
        """The eBPF sensor's events, in order; returns the execs among them."""
        return self.images.apply(events)

    def on_exec(self, pid: int) -> bool:
        """Read the process now (True), or, if it is already gone (False), forget what it inherited from its
        parent rather than report the parent's name for it (its executable may still arrive through
        `note_exe`)."""
        known = self._known.get(pid)
        if known is not None:
            self._previous[pid] = known
        found = snapshot(pid)
        if found is not None:
            self._known[pid], self._pidns[pid] = found
            self._exited.pop(pid, None)
            return True
        ppid = known.ppid if known is not None else 0
        self._known[pid] = ProcessInfo(pid=pid, ppid=ppid, comm="", uid=known.uid if known is not None else -1,
                                       context_source="procfs")  # fmt: skip
        return False

    def on_comm(self, pid: int, comm: str) -> None:
        """A new name (prctl, as busybox applets run in a forked shell do): the arguments inherited from the
        parent no longer describe the process; its executable, unchanged without an exec, still does."""
        known = self._known.get(pid)
        if known is not None and known.comm != comm:
            self._known[pid] = ProcessInfo(pid=pid, ppid=known.ppid, comm=comm, exe=known.exe, uid=known.uid,
                                           start_time=known.start_time, context_source="procfs",
                                           downloaded_by=ingress_tool(comm, []))  # fmt: skip

    def note_exe(self, pid: int, exe: str) -> None:
        """The executable a process was seen opening for exec (a container-relative path): known even when
        the process is gone before /proc can be read."""
        self._exec_paths[pid] = exe

    def on_fork(self, pid: int, parent: int) -> None:
        known = self._known.get(parent)
        if known is not None and pid not in self._known:
            self._known[pid] = ProcessInfo(pid=pid, ppid=parent, comm=known.comm, exe=known.exe, args=known.args,
                                           uid=known.uid, downloaded_by=known.downloaded_by,
                                           context_source="procfs")  # fmt: skip

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
            self._previous.pop(pid, None)
            del self._exited[pid]

    def namespace(self, pid: int) -> str:
        """The process's PID namespace as captured or read at its exec, else read now ('' when it is gone)."""
        return self.images.namespace(pid) or self._pidns.get(pid) or _pid_namespace(pid)

    def ended(self, pid: int) -> bool:
        """Whether the eBPF sensor saw the latest image of `pid` exit."""
        record = self.images.current(pid)
        return record is not None and record.ended_ns != 0

    def peek(self, pid: int) -> ProcessInfo | None:
        """The latest snapshot of `pid`, without lineage (cheap)."""
        record = self.images.current(pid)
        return record.info if record is not None else self._known.get(pid)

    def running(self, pid: int, executable: os.stat_result, stop_at: int = 0) -> ProcessInfo | None:
        """`pid` as it was when it ran the file `executable` (captured in the kernel), with its lineage; else
        as `get` finds it."""
        record = self.images.running(pid, executable)
        return self._image_lineage(record, stop_at) if record is not None else self.get(pid, stop_at)

    def writer(self, pid: int, path: str, written: os.stat_result, stop_at: int = 0) -> ProcessInfo | None:
        """The process that wrote `path` (`written`: the file's stat), with its lineage. Captured in the
        kernel: the image of `pid` running when the file was last modified. From /proc: `pid` as it is now,
        or as it was before its last exec when it now runs that very file — a file being executed cannot be
        opened for writing, so the write came first (`wget -O x URL && exec ./x` in one shell process)."""
        record = self.images.writer(pid, written)
        if record is not None:
            return self._image_lineage(record, stop_at)
        previous = self._previous.get(pid)
        if previous is not None and self._runs(pid, path, written):
            return self._with_lineage(previous, pid, stop_at, "")
        return self.get(pid, stop_at)

    def _runs(self, pid: int, path: str, written: os.stat_result) -> bool:
        current = self._known.get(pid)
        if ((current.exe if current is not None else "") or self._exec_paths.get(pid, "")) == path:
            return True
        try:
            running = os.stat(f"/proc/{pid}/exe")
        except OSError:
            return False
        return (running.st_dev, running.st_ino) == (written.st_dev, written.st_ino)

    def get(self, pid: int, stop_at: int = 0) -> ProcessInfo | None:
        """The process with its lineage up to `stop_at` (a container's init) or pid 1; read from /proc if it
        was not seen exec'ing."""
        record = self.images.current(pid)
        if record is not None:
            return self._image_lineage(record, stop_at)
        process = self._known.get(pid) or _process(snapshot(pid))
        if process is None:
            return None
        return self._with_lineage(process, pid, stop_at, self._exec_paths.get(pid, ""))

    def _image_lineage(self, record: Record, stop_at: int) -> ProcessInfo:
        lineage, beyond = self.images.lineage(record, stop_at)
        if beyond:  # an ancestor older than the sensor: the rest of the chain as /proc shows it now
            rest = self._with_lineage(ProcessInfo(pid=0, ppid=beyond), record.info.pid, stop_at, "",
                                      f"pid:[{record.pid_ns}]" if record.pid_ns else "")  # fmt: skip
            lineage = (lineage + rest.lineage)[:MAX_LINEAGE]
        return msgspec.structs.replace(record.info, lineage=lineage)

    def _with_lineage(self, process: ProcessInfo, pid: int, stop_at: int, exec_path: str,
                      namespace: str = "") -> ProcessInfo:  # fmt: skip
        # A process already gone has no namespace to read: the container's (its init's) stands in for it.
        namespace = namespace or self._pidns.get(pid) or _pid_namespace(pid)
        namespace = namespace or (_pid_namespace(stop_at) if stop_at else "")
        lineage: list[ProcessRef] = []
        parent = process.ppid
        while parent > 1 and len(lineage) < MAX_LINEAGE:
            ancestor = self._known.get(parent) or _process(snapshot(parent))
            if ancestor is None:
                break
            if namespace and (self._pidns.get(parent) or _pid_namespace(parent)) != namespace:
                break  # the chain left the container (runc, conmon, the runtime's daemon)
            lineage.append(ProcessRef(pid=ancestor.pid, comm=ancestor.comm, exe=ancestor.exe, args=ancestor.args))
            if ancestor.pid == stop_at:
                break
            parent = ancestor.ppid
        exe = process.exe or exec_path
        return msgspec.structs.replace(process, exe=exe, lineage=lineage)
