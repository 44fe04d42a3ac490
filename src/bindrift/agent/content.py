"""Content work off the agent's loop: everything that reads a file's content — triage and hashing of written
ELF files (and of those the startup sweep finds), the layer comparison of an executed file, and the evidence
copy — runs on worker threads, so that one large file never holds up the events of other containers.

Each file is bounded (header triage, at most a 64 MiB hash per file read, a 64 MiB evidence copy). The
queue is bounded too (MAX_PENDING files, MAX_PER_CONTAINER of any one container) and served by two threads,
one file per container in turn and one at a time per container: a container executing or writing large
files in a loop waits behind itself, and its file in hand never holds up another container's. What does
not fit is dropped, counted by kind and container, and raised as *Coverage degraded* by the loop."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from bindrift.analysis.hashing import sha256_fd_bounded
from bindrift.analysis.intel.intel_set import IntelSet
from bindrift.analysis.triage import triage
from bindrift.detectors.drift import budget_evidence
from bindrift.detectors.suspicious_binary import suspicious_binary
from bindrift.response.evidence import Blob
from bindrift.schema.finding import Detection, Evidence, ProcessInfo, Resource

log = logging.getLogger(__name__)
MAX_PENDING = 4096  # files waiting; each holds a descriptor (the agent lifts its descriptor limit)
MAX_PER_CONTAINER = 1024
WORKERS = 2  # a second container's file never waits for one container's file in hand
# copy(fd, sha256, container id): the evidence copy of a detection's file (None: not captured)
Capture = Callable[[int, str, str], Blob | None]


@dataclass(frozen=True, slots=True)
class Job:
    """A file's content work: `analyse(fd)` runs on the worker (the detection, or None: nothing to report),
    the detection's file is copied into the evidence store there too, then `finish(detection, blob)` runs on
    the loop; `abandon()` runs there instead when the analysis failed. `fd` is owned by the job; `container`
    ("" for the host) is whose turn it takes; `kind` names the work in the drop counts (`write`, `exec`,
    `evidence`)."""

    fd: int
    container: str
    kind: str
    analyse: Callable[[int], Detection | None]
    finish: Callable[[Detection | None, Blob | None], None]
    abandon: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Done:
    """A job's result; `failed` when its analysis raised (logged): `abandon`, not `finish`, is called then."""

    job: Job
    detection: Detection | None
    blob: Blob | None
    failed: bool = False


def triage_written(fd: int, path: str, resource: Resource, writer: ProcessInfo | None, notes: list[Evidence],
                   intel: IntelSet) -> Detection | None:  # fmt: skip
    """*Suspicious binary* for an ELF file (bounded: head and tail of a huge file, a 64 MiB hash)."""
    report = triage(fd, label=path, compute_hash=False)
    digest = sha256_fd_bounded(fd)
    report.sha256 = digest.sha256 or None
    found = intel.lookup(digest.sha256) if digest.sha256 else []
    detection = suspicious_binary(report, resource, datetime.now(UTC), "agent", writer=writer, intel=found)
    if detection is None:
        return None
    return msgspec.structs.replace(detection, evidence=[*detection.evidence, *budget_evidence(digest), *notes])


class ContentWorker:
    """WORKERS threads serving each container's queue in turn, a container's files one at a time (in order),
    so that one container's file in hand — a 64 MiB hash, a 64 MiB copy on a slow disk — never holds up
    another container's. `fileno()` is readable while results wait (for the loop's selector). `capture`
    (set once evidence is on) copies a detection's file."""

    def __init__(self) -> None:
        self.capture: Capture | None = None
        self.dropped = 0
        self.dropped_kinds: Counter[str] = Counter()
        self.dropped_containers: Counter[str] = Counter()
        self._queues: dict[str, deque[Job]] = {}  # in turn order: the container served next comes first
        self._busy: set[str] = set()  # containers whose file is in a worker's hands
        self._pending = 0
        self._closing = False
        self._lock = threading.Condition()
        self._done: queue.SimpleQueue[Done] = queue.SimpleQueue()
        self._ready = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._threads = [threading.Thread(target=self._run, name=f"bindrift-content-{n}", daemon=True)
                         for n in range(WORKERS)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def fileno(self) -> int:
        return self._ready

    def room(self, container: str) -> bool:
        """Whether a job of `container` would be taken now."""
        with self._lock:
            return self._pending < MAX_PENDING and len(self._queues.get(container, ())) < MAX_PER_CONTAINER

    def submit(self, job: Job) -> bool:
        """Queue a job; False (its descriptor closed, the drop counted) when there is no room for it."""
        with self._lock:
            waiting = self._queues.get(job.container)
            if self._pending >= MAX_PENDING or (waiting is not None and len(waiting) >= MAX_PER_CONTAINER):
                self.count_drop(job.kind, job.container)
                os.close(job.fd)
                return False
            if waiting is None:
                waiting = self._queues[job.container] = deque()
            waiting.append(job)
            self._pending += 1
            self._lock.notify()
            return True

    def count_drop(self, kind: str, container: str) -> None:
        """A file whose content work was not done for want of room (here, or in a caller's own bound)."""
        self.dropped += 1
        self.dropped_kinds[kind] += 1
        self.dropped_containers[container] += 1

    def results(self) -> list[Done]:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._ready)
        found = []
        while True:
            try:
                found.append(self._done.get_nowait())
            except queue.Empty:
                return found

    def _next(self, finished: str | None) -> Job | None:
        """The first waiting job of the first container in turn order with no file in another worker's hands
        (None once closing); `finished`: the container whose file this worker has just handed back."""
        with self._lock:
            if finished is not None:
                self._busy.discard(finished)
                self._lock.notify_all()
            while True:
                if self._closing:
                    return None
                container = next((c for c in self._queues if c not in self._busy), None)
                if container is not None:
                    break
                self._lock.wait()
            waiting = self._queues.pop(container)
            job = waiting.popleft()
            if waiting:
                self._queues[container] = waiting  # to the end: every other container's turn comes first
            self._pending -= 1
            self._busy.add(container)
            return job

    def _run(self) -> None:
        finished: str | None = None
        while (job := self._next(finished)) is not None:
            finished = job.container
            try:
                detection = job.analyse(job.fd)
                capture = self.capture
                blob = capture(job.fd, detection.file.sha256, job.container) if detection and capture else None
                done = Done(job, detection, blob)
            except Exception:  # one file must not stop the worker; the log keeps the trace
                log.exception("content work (%s) failed", job.kind)
                done = Done(job, None, None, failed=True)
            finally:
                os.close(job.fd)
            self._done.put(done)
            os.eventfd_write(self._ready, 1)

    def close(self) -> None:
        """Stop after the file in hand; descriptors still queued are closed."""
        with self._lock:
            self._closing = True
            for waiting in self._queues.values():
                for job in waiting:
                    os.close(job.fd)
            self._queues.clear()
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        os.close(self._ready)
