"""Forked workers without a pool framework, for batches of paths: results come back in input order.

`jobs - 1` children are forked once the modules are loaded (and whatever the parent loaded, package
records included, is shared); the caller is a worker too. Each child has a task pipe and a result pipe:
a batch is sent as its paths (NUL-separated file-system bytes, so any file name passes), a result comes
back as a length-prefixed frame that the child encoded itself. A child gets a batch while it has fewer
than `WINDOW` in flight and their paths fit in its task pipe (so sending never blocks, and a child
blocked on a full result pipe cannot deadlock the parent); otherwise the caller triages the batch
itself, and collects the results that are ready after each one (so children never wait for it long).
Results wait in order, at most `PENDING` batches per process. Children end with `os._exit` (no
inherited buffer is flushed twice); one that dies early raises RuntimeError.
"""

from __future__ import annotations

import os
import select
import signal
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from bindrift.sensors.targets import ScanError

Result = TypeVar("Result")

WINDOW = 2
PENDING = 8
FRAME = 8
PIPE_BYTES = 1 << 20


class _Child:
    """A forked worker: its pid, the pipe ends the parent holds, what it has in flight."""

    def __init__(self, pid: int, tasks: int, results: int, capacity: int) -> None:
        self.pid = pid
        self.tasks = tasks
        self.results = results
        self.capacity = capacity
        self.in_flight: deque[int] = deque()  # bytes of each batch sent and not yet answered
        self.received: deque[bytes] = deque()  # results read and not yet handed on

    def takes(self, task: bytes) -> bool:
        return len(self.in_flight) < WINDOW and sum(self.in_flight) + FRAME + len(task) <= self.capacity

    def send(self, task: bytes) -> None:
        _write_all(self.tasks, len(task).to_bytes(FRAME, "little") + task)
        self.in_flight.append(FRAME + len(task))

    def receive(self) -> None:
        """Read the next result (blocking until the child has written it)."""
        size = int.from_bytes(_read_exactly(self, FRAME), "little")
        self.received.append(_read_exactly(self, size))
        self.in_flight.popleft()

    def next_result(self) -> bytes:
        if not self.received:
            self.receive()
        return self.received.popleft()


class _Done(Generic[Result]):
    __slots__ = ("value",)

    def __init__(self, value: Result) -> None:
        self.value = value


def ordered_batches(
    batches: Iterator[list[str] | ScanError],
    jobs: int,
    work: Callable[[list[str]], Result],
    encode: Callable[[Result], bytes],
    decode: Callable[[bytes], Result],
) -> Iterator[Result | ScanError]:
    """`work(batch)` for each batch, in input order, over this process and `jobs - 1` forked children;
    a ScanError passes through in its place."""
    children: list[_Child] = []
    try:
        for _ in range(jobs - 1):
            children.append(_fork(children, work, encode))
        pending: deque[_Done[Result | ScanError] | _Child] = deque()
        for batch in batches:
            if isinstance(batch, ScanError):
                pending.append(_Done(batch))
            else:
                task = b"\0".join(map(os.fsencode, batch))
                child = next((c for c in children if c.takes(task)), None)
                if child is not None:
                    child.send(task)
                    pending.append(child)
                else:
                    pending.append(_Done(work(batch)))
                    _collect(children)
            while pending and (_ready(pending[0]) or len(pending) > PENDING * jobs):
                yield _resolve(pending.popleft(), decode)
        while pending:
            yield _resolve(pending.popleft(), decode)
    finally:
        for child in children:
            os.close(child.tasks)
            os.close(child.results)
            _reap(child)


def _resolve(entry: _Done[Result | ScanError] | _Child, decode: Callable[[bytes], Result]) -> Result | ScanError:
    return entry.value if isinstance(entry, _Done) else decode(entry.next_result())


def _ready(entry: _Done[Result | ScanError] | _Child) -> bool:
    return isinstance(entry, _Done) or bool(entry.received)


def _collect(children: list[_Child]) -> None:
    """Read the results the children have ready, so that they can be sent more."""
    waiting = [c for c in children if c.in_flight]
    while waiting:
        ready = {fd for fd in select.select([c.results for c in waiting], [], [], 0)[0]}
        waiting = [c for c in waiting if c.results in ready]
        for child in waiting:
            child.receive()
        waiting = [c for c in waiting if c.in_flight]


def _fork(siblings: list[_Child], work: Callable[[list[str]], Result], encode: Callable[[Result], bytes]) -> _Child:
    task_read, task_write = os.pipe2(os.O_CLOEXEC)
    result_read, result_write = os.pipe2(os.O_CLOEXEC)
    capacity = _enlarge(task_write)
    _enlarge(result_write)
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            for fd in (task_write, result_read, *(end for s in siblings for end in (s.tasks, s.results))):
                os.close(fd)
            _serve(task_read, result_write, work, encode)
            status = 0
        finally:
            os._exit(status)
    os.close(task_read)
    os.close(result_write)
    return _Child(pid, task_write, result_read, capacity)


def _serve(tasks: int, results: int, work: Callable[[list[str]], Result], encode: Callable[[Result], bytes]) -> None:
    """The child's loop: each task's result written back, until the parent closes the task pipe."""
    reader = os.fdopen(tasks, "rb")
    while header := reader.read(FRAME):
        task = reader.read(int.from_bytes(header, "little"))
        payload = encode(work([os.fsdecode(path) for path in task.split(b"\0")]))
        _write_all(results, len(payload).to_bytes(FRAME, "little") + payload)


def _enlarge(fd: int) -> int:
    """The pipe's capacity, raised to `PIPE_BYTES` where the system allows it."""
    import fcntl

    try:
        return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:  # over /proc/sys/fs/pipe-max-size: the default capacity only means fewer batches sent
        return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(child: _Child, size: int) -> bytes:
    parts = []
    while size:
        part = os.read(child.results, min(size, PIPE_BYTES))
        if not part:
            raise RuntimeError(f"scan worker {child.pid} ended before writing its results")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _reap(child: _Child) -> None:
    """Wait for a child whose task pipe is closed: it ends once it has nothing in flight; one that still
    has (the caller stopped reading) is killed."""
    if child.in_flight:
        os.kill(child.pid, signal.SIGKILL)
    os.waitpid(child.pid, 0)
