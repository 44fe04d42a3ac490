"""Content work off the agent's loop: triage and hashing of written ELF files (and of those the startup
sweep finds) run on a worker thread, behind a bounded queue, so that a burst of large files never holds up
the events of other containers. Each file is still bounded (header triage, at most a 64 MiB hash); what
does not fit in the queue is dropped, counted, and raised as *Coverage degraded* by the loop."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from bindrift.analysis.hashing import sha256_fd_bounded
from bindrift.analysis.intel.intel_set import IntelSet
from bindrift.analysis.triage import triage
from bindrift.detectors.drift import budget_evidence
from bindrift.detectors.suspicious_binary import suspicious_binary
from bindrift.schema.finding import Detection, Evidence, ProcessInfo, Resource

log = logging.getLogger(__name__)
MAX_PENDING = 256  # files waiting for triage; each holds a descriptor


@dataclass(frozen=True, slots=True)
class Job:
    """An ELF file to triage: its descriptor (owned by the job), path, resource, writer and extra evidence."""

    fd: int
    path: str
    resource: Resource
    writer: ProcessInfo | None
    notes: list[Evidence]


@dataclass(frozen=True, slots=True)
class Done:
    """A triaged file: its detection (None: nothing suspicious) and its still open descriptor, for the
    evidence copy (the receiver closes it)."""

    detection: Detection | None
    fd: int


class ContentWorker:
    """One worker thread; `fileno()` is readable while results wait (for the loop's selector)."""

    def __init__(self, intel: IntelSet) -> None:
        self.intel = intel
        self.dropped = 0
        self._jobs: queue.Queue[Job | None] = queue.Queue(MAX_PENDING)
        self._done: queue.SimpleQueue[Done] = queue.SimpleQueue()
        self._ready = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="bindrift-content", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self._ready

    def submit(self, job: Job) -> bool:
        """Queue a file; False (descriptor closed, counted) when the queue is full."""
        try:
            self._jobs.put_nowait(job)
            return True
        except queue.Full:
            os.close(job.fd)
            self.dropped += 1
            return False

    def results(self) -> list[Done]:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._ready)
        found = []
        while True:
            try:
                found.append(self._done.get_nowait())
            except queue.Empty:
                return found

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                detection = self._triage(job)
            except Exception:  # one file must not stop the worker; the log keeps the trace
                log.exception("triage of %r failed", job.path)
                detection = None
            self._done.put(Done(detection, job.fd))
            os.eventfd_write(self._ready, 1)

    def _triage(self, job: Job) -> Detection | None:
        report = triage(job.fd, label=job.path, compute_hash=False)  # bounded: head and tail of a huge file
        digest = sha256_fd_bounded(job.fd)
        report.sha256 = digest.sha256 or None
        intel = self.intel.lookup(digest.sha256) if digest.sha256 else []
        detection = suspicious_binary(report, job.resource, datetime.now(UTC), "agent", writer=job.writer,
                                      intel=intel)  # fmt: skip
        if detection is None:
            return None
        return msgspec.structs.replace(detection, evidence=[*detection.evidence, *budget_evidence(digest), *job.notes])

    def close(self) -> None:
        """Stop after the file in hand; descriptors still queued or unread are closed."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                os.close(job.fd)
        self._jobs.put(None)
        self._thread.join(timeout=5)
        for done in self.results():
            os.close(done.fd)
        os.close(self._ready)
