"""Process images from the eBPF sensor's events: what each process was at each exec and fork, kept after it
exits, joined into a lineage of ancestors as they were when their child started.

An image is replaced (exec) or ends (exit) but is never overwritten, so a pid reused by a later process, or a
process that execs again, never changes what an earlier finding's process was. A written file's writer is
the image of the closing pid that was running when the file was last modified: the file's mtime against
the images' start times (both kernel clocks), stepping back past an image that runs that very file (a file
being executed cannot be open for writing)."""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass

import msgspec

from bindrift.schema.finding import ProcessInfo, ProcessRef
from bindrift.sensors.ebpf.events import Event, ExecEvent, ExitEvent, ForkEvent, Image, RenameEvent

MAX_IMAGES = 32_768  # exited images beyond this are forgotten oldest first (counted in `evicted`)
KEEP_EXITED_S = 120.0
MAX_HISTORY = 8  # images remembered per pid (execs of one process, and processes that reused its pid)
MAX_LINEAGE = 16
EXPIRE_EVERY_S = 1.0
# File times are taken from the coarse clock: a write may be stamped up to one tick before it happened.
CLOCK_REALTIME_COARSE = 5  # Linux's clock id (not in Python's time module)
TICK_NS = int(time.clock_getres(CLOCK_REALTIME_COARSE) * 1e9)
FORK_EXEC_SLACK_NS = 4 * TICK_NS


@dataclass(slots=True)
class Record:
    """One image: its process context (no lineage), its parent image, when it began and ended."""

    key: Image
    info: ProcessInfo
    parent: Image
    started_ns: int
    pid_ns: int
    exe_file: tuple[int, int] = (0, 0)  # (st_dev, st_ino) of the executable; (0, 0) for a fork's copy
    ended_ns: int = 0  # exec replaced it or the process exited


def _namespace(pid_ns: int) -> str:
    return f"pid:[{pid_ns}]" if pid_ns else ""


class ProcessImages:
    """Images by identity, and each pid's recent images in start order."""

    def __init__(self) -> None:
        self.records: dict[Image, Record] = {}
        self.by_pid: dict[int, list[Image]] = {}
        # In exit order, for expiry: an OrderedDict, whose oldest entry is found in constant time (a dict's
        # first key is found by scanning past every entry deleted before it: quadratic under an exec storm).
        self.exited: OrderedDict[Image, float] = OrderedDict()
        self.evicted = 0
        self._expired_at = 0.0
        # CLOCK_MONOTONIC (the events' clock) = CLOCK_REALTIME (file times) - this
        self._realtime_offset = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.monotonic_ns()

    def apply(self, events: list[Event]) -> list[ExecEvent]:
        """Take the sensor's events in order; returns the execs among them."""
        execs = []
        for event in events:
            if isinstance(event, ExecEvent):
                self._exec(event)
                execs.append(event)
            elif isinstance(event, ForkEvent):
                self._fork(event)
            elif isinstance(event, ExitEvent):
                self._exit(event)
            elif isinstance(event, RenameEvent):
                self._rename(event)
        self._expire()
        return execs

    def _add(self, key: Image, record: Record) -> None:
        history = self.by_pid.setdefault(key.tgid, [])
        if history:
            previous = self.records.get(history[-1])
            if previous is not None and not previous.ended_ns:
                previous.ended_ns = record.started_ns
                self.exited[history[-1]] = time.monotonic()
        history.append(key)
        if len(history) > MAX_HISTORY:
            del history[0]
        self.records[key] = record

    def _exec(self, event: ExecEvent) -> None:
        from bindrift.sensors.runtime.process_table import ingress_tool, start_time_of

        info = ProcessInfo(pid=event.image.tgid, ppid=event.parent.tgid, comm=event.comm, exe=event.exe,
                           args=event.argv, uid=event.uid, gid=event.gid, cwd=event.cwd, context_source="ebpf",
                           start_time=start_time_of(event.image.start_ns),
                           downloaded_by=ingress_tool(event.comm, event.argv))  # fmt: skip
        # The parent it had when it started, as its fork said: by its exec it may have been reparented.
        before = self.current(event.image.tgid)
        parent = before.parent if before is not None and before.key.start_ns == event.image.start_ns else event.parent
        if parent != event.parent:
            info = msgspec.structs.replace(info, ppid=parent.tgid)
        self._add(event.image, Record(event.image, info, parent, event.ts_ns, event.pid_ns,
                                      (event.exe_dev, event.exe_inode)))  # fmt: skip

    def _fork(self, event: ForkEvent) -> None:
        from bindrift.sensors.runtime.process_table import start_time_of

        parent = self.records.get(event.parent) or self.current(event.parent.tgid)
        started = start_time_of(event.image.start_ns)
        if parent is not None:  # the child runs its parent's program until it execs
            info = ProcessInfo(pid=event.image.tgid, ppid=event.parent.tgid, comm=event.comm, exe=parent.info.exe,
                               args=parent.info.args, uid=event.uid, gid=event.gid, cwd=parent.info.cwd,
                               start_time=started, context_source="ebpf",
                               downloaded_by=parent.info.downloaded_by)  # fmt: skip
        else:
            info = ProcessInfo(pid=event.image.tgid, ppid=event.parent.tgid, comm=event.comm, uid=event.uid,
                               gid=event.gid, start_time=started, context_source="ebpf")  # fmt: skip
        self._add(event.image, Record(event.image, info, event.parent, event.ts_ns, event.pid_ns))

    def _rename(self, event: RenameEvent) -> None:
        """A forked child renamed without an exec runs other code than its parent's program: the arguments it
        inherited no longer describe it (as the proc connector path does); its executable still does."""
        from bindrift.sensors.runtime.process_table import ingress_tool

        record = self.records.get(event.image)
        if record is not None and record.exe_file == (0, 0) and record.info.comm != event.comm:
            record.info = msgspec.structs.replace(record.info, comm=event.comm, args=[], cwd="",
                                                  downloaded_by=ingress_tool(event.comm, []))  # fmt: skip

    def _exit(self, event: ExitEvent) -> None:
        record = self.records.get(event.image)
        if record is not None and not record.ended_ns:
            record.ended_ns = event.ts_ns
            self.exited[event.image] = time.monotonic()

    def _expire(self) -> None:
        now = time.monotonic()
        while len(self.exited) > MAX_IMAGES // 2 and len(self.records) > MAX_IMAGES:
            self._forget(next(iter(self.exited)))
            self.evicted += 1
        if now - self._expired_at < EXPIRE_EVERY_S:
            return
        self._expired_at = now
        while self.exited:
            key = next(iter(self.exited))
            if now - self.exited[key] <= KEEP_EXITED_S:
                break
            self._forget(key)

    def _forget(self, key: Image) -> None:
        del self.exited[key]
        self.records.pop(key, None)
        history = self.by_pid.get(key.tgid)
        if history is not None and key in history:
            history.remove(key)
            if not history:
                del self.by_pid[key.tgid]

    def current(self, pid: int) -> Record | None:
        """The latest image of `pid` (it may have exited)."""
        history = self.by_pid.get(pid)
        return self.records.get(history[-1]) if history else None

    def namespace(self, pid: int) -> str:
        record = self.current(pid)
        return _namespace(record.pid_ns) if record is not None else ""

    def running(self, pid: int, st: os.stat_result) -> Record | None:
        """The latest image of `pid` that runs the file `st`."""
        for key in reversed(self.by_pid.get(pid, [])):
            record = self.records.get(key)
            if record is not None and record.exe_file == (st.st_dev, st.st_ino):
                return record
        return None

    def writer(self, pid: int, st: os.stat_result) -> Record | None:
        """The image of `pid` that was running when the file `st` was last modified, or None when no image of
        `pid` is known (a process older than the sensor)."""
        history = [self.records[key] for key in self.by_pid.get(pid, []) if key in self.records]
        if not history:
            return None
        written = st.st_mtime_ns - self._realtime_offset + TICK_NS
        at = len(history) - 1
        while at > 0 and history[at].started_ns > written:
            at -= 1
        # A forked child writes nothing before its exec (microseconds later): a write stamped just before
        # the exec is its program's, the coarse clock having lagged (seen under load: 2 in 200 downloads).
        chosen, following = history[at], history[at + 1] if at + 1 < len(history) else None
        if (chosen.exe_file == (0, 0) and following is not None and following.key.start_ns == chosen.key.start_ns
                and following.started_ns <= written + FORK_EXEC_SLACK_NS):  # fmt: skip
            at += 1
        while at > 0 and history[at].exe_file == (st.st_dev, st.st_ino):
            at -= 1
        return history[at]

    def lineage(self, record: Record, stop_at: int) -> tuple[list[ProcessRef], int]:
        """Ancestors as they were when each child started, up to `stop_at` (a container's init) or out of the
        process's PID namespace; with the pid where the chain went on beyond what the sensor saw (an ancestor
        older than the sensor: the caller reads it from /proc), else 0."""
        lineage: list[ProcessRef] = []
        parent_key = record.parent
        while parent_key.tgid > 1 and len(lineage) < MAX_LINEAGE:
            parent = self.records.get(parent_key)
            if parent is None:
                return lineage, parent_key.tgid
            if record.pid_ns and parent.pid_ns != record.pid_ns:
                break  # the chain left the container (runc, conmon, the runtime's daemon)
            info = parent.info
            lineage.append(ProcessRef(pid=info.pid, comm=info.comm, exe=info.exe, args=info.args))
            if info.pid == stop_at:
                break
            parent_key = parent.parent
        return lineage, 0
