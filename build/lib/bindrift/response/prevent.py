"""Inline prevention: a fanotify content-class group per container with `FAN_OPEN_EXEC_PERM`, answered
`FAN_DENY` (the exec fails with EPERM inside the container) for binaries a `prevent` or `block` policy
covers, `FAN_ALLOW` for everything else.

It fails open. Every decision has a deadline (default 100 ms): one not reached in time is allowed and
reported as *Prevention degraded*. If the agent dies, the kernel closes the groups and releases every
waiting exec. Image binaries are cheap: a cache keyed by (container, device, inode, mtime, ctime, size),
and the classifier checks upper-layer presence before hashing anything.

Events are read and answered on a thread of their own, and decisions run on a small worker pool, so a
deadline is kept while a large file is still being hashed. The agent runs this in a process of its own
(`bindrift.cli.prevent_worker`), so its own work never holds the interpreter lock an answer needs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import selectors
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import msgspec

from bindrift.findings.severity import SeverityPolicy
from bindrift.response.policy import in_scope, strictest
from bindrift.schema.finding import MALICIOUS, Category, Detection, Evidence, FileInfo, ProcessInfo, Resource
from bindrift.schema.response import ResponsePolicy
from bindrift.schema.severity import at_least
from bindrift.sensors.runtime.fanotify import FAN_OPEN_EXEC_PERM, FanEvent, FanotifyGroup

log = logging.getLogger(__name__)
DEFAULT_DEADLINE_S = 0.1
CACHE_SIZE = 65_536
WORKERS = 2
SWITCH_INTERVAL_S = 0.0002
ANSWER_NICE = -10
C = TypeVar("C")
# classify(fd, path, pid, container): the drift detection for an executed file, with triage and
# intelligence filled in, or None for an image binary (or an unchanged copy-up).
Classifier = Callable[[int, str, int, C], Detection | None]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What prevention reports to the agent: an exec denied (with the policy, and `fd`, a descriptor of the
    file for the evidence, which the receiver closes), or one allowed because no decision was reached in
    time (`prevented` False, category Prevention degraded, no descriptor)."""

    detection: Detection
    prevented: bool
    policy_id: str = ""
    fd: int = -1


@dataclass(frozen=True, slots=True)
class _Decision:
    allow: bool
    detection: Detection | None = None
    policy_id: str = ""


ALLOW = _Decision(True)


def permission_group(root: str) -> FanotifyGroup:
    """A content-class group holding every exec on the file system of `root` (a container's
    `/proc/<init>/root`). Raises OSError when the mark cannot be placed."""
    group = FanotifyGroup(FAN_OPEN_EXEC_PERM, permission=True)
    try:
        group.mark_filesystem(root)
    except OSError:
        group.close()
        raise
    return group


def harmful(detection: Detection) -> bool:
    """Known-malicious, or an incompatible architecture, a tampered packer or a header anomaly (medium+)."""
    if detection.intel:
        return True
    return any(
        check.category == "tampered-packer"
        or (check.category in ("incompatible-architecture", "header-anomaly") and at_least(check.severity, "medium"))
        for check in detection.file.triage
    )


def _respond(group: FanotifyGroup, fd: int, allow: bool) -> None:
    try:
        group.respond(fd, allow)
    except OSError as exc:  # the group was closed (container ended): the kernel has released the exec
        log.warning("fanotify response not written: %s", exc)


@dataclass(slots=True)
class _Group(Generic[C]):
    group: FanotifyGroup
    container: C
    resource: Resource


@dataclass(slots=True, eq=False)
class _Pending(Generic[C]):
    """An exec waiting for its decision; `answered` once either the decision or the deadline answered it."""

    event: FanEvent
    watched: _Group[C]
    deadline: float
    answered: bool = False


class Prevention(Generic[C]):
    """Permission groups for the watched containers, answered on a background thread."""

    def __init__(self, policies: list[ResponsePolicy], classify: Classifier[C], *,
                 severity: SeverityPolicy | None = None, deadline: float = DEFAULT_DEADLINE_S) -> None:  # fmt: skip
        self.policies = [p for p in policies if p.mode in ("prevent", "block")]
        self.classify = classify
        self.severity = severity or SeverityPolicy()
        self.deadline = deadline
        self.allowed = self.denied = self.degraded = 0
        self.outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._ready = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)  # readable while outcomes wait
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._requests: queue.SimpleQueue[tuple[str, str, _Group[C] | None]] = queue.SimpleQueue()
        self._groups: dict[str, _Group[C]] = {}
        self._pending: list[_Pending[C]] = []
        self._pending_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, int, int, int, int, int], _Decision] = OrderedDict()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake, selectors.EVENT_READ, None)
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="bindrift-decide")
        self._stopping = False
        # A thread waiting for the GIL waits up to the switch interval (5 ms by default) while the agent's
        # loop runs: the answering thread must get it back sooner than any deadline.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._thread = threading.Thread(target=self._run, name="bindrift-prevent", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        """Readable while outcomes are waiting (for the agent's selector)."""
        return self._ready

    def covers(self, resource: Resource) -> bool:
        """Whether a `prevent` or `block` policy may apply in this container (only those are held)."""
        return any(in_scope(p, resource) for p in self.policies)

    def watch(self, key: str, root: str, container: C, resource: Resource) -> None:
        """Hold every exec on the file system of `root` (a container's `/proc/<init>/root`) for a decision.
        Raises OSError when the mark cannot be placed."""
        self.adopt(key, permission_group(root), container, resource)

    def adopt(self, key: str, group: FanotifyGroup, container: C, resource: Resource) -> None:
        """Answer the execs held by `group`, a permission group already marked (see `permission_group`)."""
        self._request("watch", key, _Group(group, container, resource))

    def unwatch(self, key: str) -> None:
        self._request("unwatch", key, None)

    def drain(self) -> list[Outcome]:
        """The outcomes reported since the last call."""
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._ready)
        found = []
        while True:
            try:
                found.append(self.outcomes.get_nowait())
            except queue.Empty:
                return found

    def close(self) -> None:
        """Stop answering; closing the groups lets the kernel allow anything still waiting."""
        self._stopping = True
        os.eventfd_write(self._wake, 1)
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for watched in self._groups.values():
            watched.group.close()
        self._groups.clear()
        self._selector.close()
        os.close(self._wake)
        os.close(self._ready)

    # The answering thread ---------------------------------------------------------------------------

    def _request(self, kind: str, key: str, watched: _Group[C] | None) -> None:
        self._requests.put((kind, key, watched))
        os.eventfd_write(self._wake, 1)

    def _run(self) -> None:
        # Answering an exec is latency-critical, and mostly waiting: run ahead of the agent's own loop.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ANSWER_NICE)
        while not self._stopping:
            try:
                for key, _mask in self._selector.select(timeout=self._until_next_deadline()):
                    if key.data is None:
                        self._take_requests()
                    elif key.data in self._groups:
                        watched = self._groups[key.data]
                        self._answer(key.data, watched, watched.group.read())
                self._expire()
            except Exception:  # never stop answering: an unanswered exec waits until the agent exits
                log.exception("prevention loop iteration failed")
                time.sleep(0.01)

    def _take_requests(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wake)
        while True:
            try:
                kind, key, watched = self._requests.get_nowait()
            except queue.Empty:
                return
            old = self._groups.pop(key, None)
            if old is not None:
                self._selector.unregister(old.group)
                old.group.close()
            if kind == "watch" and watched is not None:
                self._groups[key] = watched
                self._selector.register(watched.group, selectors.EVENT_READ, key)

    def _answer(self, key: str, watched: _Group[C], events: list[FanEvent]) -> None:
        """Answer cached allows at once; hand the rest to the workers, each with its deadline. The loop never
        waits for a decision, so one slow file does not hold up the execs of other files or containers."""
        for event in events:
            if self._cached_allow(key, event):  # the common case, an image binary seen before: no hand-off
                _respond(watched.group, event.fd, True)
                self.allowed += 1
                os.close(event.fd)
                continue
            pending = _Pending(event, watched, time.monotonic() + self.deadline)
            with self._pending_lock:
                self._pending.append(pending)
            future = self._pool.submit(self._decide, key, watched, event)
            future.add_done_callback(functools.partial(self._decided, pending))

    def _until_next_deadline(self) -> float:
        with self._pending_lock:
            first = min((p.deadline for p in self._pending), default=None)
        return 1.0 if first is None else min(1.0, max(0.0, first - time.monotonic()))

    def _expire(self) -> None:
        """Allow every exec whose decision is late, and report it (the worker closes the descriptor)."""
        now = time.monotonic()
        with self._pending_lock:  # held while the descriptor is used: the worker closes it only after
            late = [p for p in self._pending if p.deadline <= now]
            for p in late:
                p.answered = True
                self._pending.remove(p)
                _respond(p.watched.group, p.event.fd, True)
                self.allowed += 1
                self.degraded += 1
                self._report(Outcome(self._degraded(p.watched, p.event), prevented=False))

    def _decided(self, pending: _Pending[C], future: Future[_Decision]) -> None:
        """On a worker, once a decision is made: answer it, unless the deadline already did."""
        event = pending.event
        with self._pending_lock:
            late = pending.answered
            pending.answered = True
            if not late:
                self._pending.remove(pending)
        try:
            if late:
                return
            try:
                decision = future.result()
            except Exception:
                log.exception("prevention decision failed: allowed")
                decision = ALLOW
            _respond(pending.watched.group, event.fd, decision.allow)
            if decision.allow:
                self.allowed += 1
                return
            self.denied += 1
            assert decision.detection is not None
            self._report(Outcome(decision.detection, prevented=True, policy_id=decision.policy_id,
                                 fd=os.dup(event.fd)))  # fmt: skip
        finally:
            os.close(event.fd)

    def _cache_key(self, key: str, event: FanEvent) -> tuple[str, int, int, int, int, int]:
        st = os.fstat(event.fd)
        return (key, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)

    def _cached_allow(self, key: str, event: FanEvent) -> bool:
        try:
            cache_key = self._cache_key(key, event)
        except OSError:
            return False
        with self._cache_lock:
            return self._cache.get(cache_key) is ALLOW

    def _decide(self, key: str, watched: _Group[C], event: FanEvent) -> _Decision:
        cache_key = self._cache_key(key, event)
        with self._cache_lock:
            cached = self._cache.get(cache_key)
        if cached is not None:
            if cached.detection is not None:  # the same denied file again: a new occurrence, a new process
                detection = msgspec.structs.replace(cached.detection, observed_at=datetime.now(UTC),
                                                    process=ProcessInfo(pid=event.pid))  # fmt: skip
                return _Decision(cached.allow, detection, cached.policy_id)
            return cached
        decision = self._evaluate(event, watched)
        with self._cache_lock:
            self._cache[cache_key] = decision
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return decision

    def _evaluate(self, event: FanEvent, watched: _Group[C]) -> _Decision:
        detection = self.classify(event.fd, event.path, event.pid, watched.container)
        if detection is None:
            return ALLOW
        category: Category = MALICIOUS.get(detection.category, detection.category) if detection.intel else \
            detection.category  # fmt: skip
        policy = strictest(self.policies, detection.resource, category, self.severity.severity(category, detection))
        if policy is None or not (policy.drift or harmful(detection)):
            return ALLOW
        denial = Evidence("prevention", f"execution denied (EPERM) by policy {policy.id} ({policy.mode})",
                          {"decision": "deny", "policy": policy.id, "mode": policy.mode})  # fmt: skip
        return _Decision(False, msgspec.structs.replace(detection, evidence=[*detection.evidence, denial]), policy.id)

    def _degraded(self, watched: _Group[C], event: FanEvent) -> Detection:
        ms = round(self.deadline * 1000)
        return Detection(
            category="Prevention degraded", observed_at=datetime.now(UTC), resource=watched.resource,
            file=FileInfo(path=event.path), source="agent", process=ProcessInfo(pid=event.pid),
            evidence=[Evidence("deadline", f"no decision within {ms} ms: the execution was allowed unchecked",
                               {"deadline_ms": ms, "pid": event.pid})],
        )  # fmt: skip

    def _report(self, outcome: Outcome) -> None:
        self.outcomes.put(outcome)
        os.eventfd_write(self._ready, 1)
