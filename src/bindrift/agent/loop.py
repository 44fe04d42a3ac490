"""The node agent's loop: kernel sensors → container context → triage and drift analysis → detectors →
findings pipeline → store."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import selectors
import socket
import stat
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import msgspec

from bindrift.agent import sweep
from bindrift.agent.content import ContentWorker, Job, triage_written
from bindrift.agent.coverage import (
    content_dropped,
    coverage_degraded,
    degraded,
    discovery_failed,
    last_path,
    sensor_unavailable,
    sweep_cut_short,
)
from bindrift.agent.outputs import AgentOutputs
from bindrift.agent.response import AgentResponse
from bindrift.agent.watches import RETRY_S, Attachment, Route, Watches, mount_values
from bindrift.agent.written import WrittenFiles
from bindrift.analysis.hashing import sha256_fd_bounded
from bindrift.analysis.intel.intel_set import IntelSet, Kind
from bindrift.analysis.safe_open import open_in_root
from bindrift.config import load_settings
from bindrift.context.containers import STATE_ROOTS, ContainerContext, ContainerDiscovery
from bindrift.detectors.drift import (
    DriftVerdict,
    UntouchedFiles,
    budget_evidence,
    classify_exec,
    classify_mount_exec,
    deleted_evidence,
    in_upper_layer,
    script_evidence,
    written_during_life,
)
from bindrift.detectors.exec_paths import unusual_exec
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.findings.severity import SeverityPolicy
from bindrift.response.evidence import Blob
from bindrift.response.prevent import Outcome
from bindrift.schema.finding import Detection, Evidence, FileInfo, Finding, ProcessInfo, Resource, ResponseAction
from bindrift.sensors.ebpf.feed import Mode, open_feed
from bindrift.sensors.runtime.fanotify import FAN_CLOSE_WRITE, FAN_OPEN_EXEC, FanEvent, raise_descriptor_limit
from bindrift.sensors.runtime.marks import DEFAULT_MAX_MARKS
from bindrift.sensors.runtime.proc_connector import ProcConnector
from bindrift.sensors.runtime.process_pacing import ProcessPacing
from bindrift.sensors.runtime.process_table import ProcessTable
from bindrift.sinks.store.sql_store import SqlStore

log = logging.getLogger(__name__)
SYNC_EVERY_S = 0.25
# An exec is reported once the kernel says it completed (the process then shows its new program), or
# after this long: fanotify reports the open of the executable while execve is still running.
EXEC_SETTLE_S = 0.2
# Libraries are mapped by the dynamic loader after the exec: a process's maps are read this long after.
LIBRARY_SCAN_AFTER_S = 0.1
MAX_MAPS = 4 * 2**20
# File events are read on a timer, not as each arrives: a listener waiting on a fanotify queue is woken for
# every event, and those wake-ups are most of what watching costs a writer (bench/README.md, measured).
DRAIN_EVERY_S = 0.01
MAX_READS_PER_DRAIN = 64
DRAIN_BUDGET_S = 0.05  # file events handled per drain at most this long (a backlog must not starve discovery)
MAX_BLOBS_PENDING = 1_000
GC_THRESHOLD = 20_000  # allocations between young-generation collections (Python's default: 700)
MAX_SHARING = 1_024  # execs sharing one queued comparison at most (more are dropped and counted)
SWEEP_STEP_S = 0.002  # startup sweep work per loop pass (the loop passes at least every DRAIN_EVERY_S)


class Agent:
    """Watches every running container (and host paths), turning what happens into stored findings."""

    def __init__(self, store: SqlStore | None, *, node: str = "", cluster: str = "", host_paths: tuple[str, ...] = (),
                 outputs: AgentOutputs | None = None, publish: Callable[[Detection], None] | None = None,
                 batch_process_events: bool = False, max_marks: int = DEFAULT_MAX_MARKS,
                 state_roots: tuple[tuple[str, str], ...] = (), process_sensor: Mode = "auto") -> None:  # fmt: skip
        self.outputs = outputs
        # Distributed mode (no store): detections go to `publish` (the bus); the central workers make the findings.
        self.publish = publish
        self.pipeline = None
        if store is not None:
            self.pipeline = FindingsPipeline(store, SeverityPolicy(load_settings().severity),
                                             outbox=outputs.outbox if outputs else ())  # fmt: skip
        self.intel = IntelSet([(path, cast(Kind, kind)) for path, kind in store.intel_sources()] if store else [])
        self.response: AgentResponse | None = None
        self.blobs: dict[str, Blob] = {}  # evidence captured at detection time, until its finding is stored
        self.node, self.cluster = node or socket.gethostname(), cluster
        self.table = ProcessTable()
        self.selector = selectors.DefaultSelector()
        # Process context captured in the kernel (eBPF), else the proc connector and /proc (stated in the log,
        # the metrics and every finding's process.context_source).
        self.kernel_feed, fallback = open_feed(process_sensor, self.table)
        self.proc: ProcConnector | None = None
        if self.kernel_feed is not None:
            self.selector.register(self.kernel_feed, selectors.EVENT_READ, "ebpf")
            print("bindrift: process context from the eBPF sensor", file=sys.stderr, flush=True)
        else:
            self.proc = ProcConnector()
            print(f"bindrift: process context from procfs (fallback: {fallback})", file=sys.stderr, flush=True)
        if outputs is not None:
            outputs.set_process_source(self.kernel_feed.source if self.kernel_feed else "procfs")
        # Process events as they come while the node is quiet, in batches during an exec burst
        # (process_pacing.py); with batch_process_events, always with the file events, every DRAIN_EVERY_S.
        self.pacing = ProcessPacing(batch_only=batch_process_events)
        self.waiting_on_proc = False
        self._follow_pacing()
        self.next_drain = 0.0
        self.discovery = ContainerDiscovery(STATE_ROOTS + state_roots)
        self.discovery_reported: dict[str, str] = {}
        self.discovery_seen: dict[str, str] = {}
        raise_descriptor_limit()
        self.watches = Watches(max_marks)
        self.refused = 0  # events on files that are not regular: never read
        self.sweeps: dict[str, sweep.Sweep] = {}
        self.content = ContentWorker()
        self.selector.register(self.content, selectors.EVENT_READ, "content")
        self.dropped_reported = 0
        self.unavailable_reported = ""
        self.written = WrittenFiles()
        self.lost_reported = 0
        self.errors = 0
        self.pending_execs: dict[int, tuple[Detection, float]] = {}
        # (container, path, deleted, device, inode, ctime, size) of a file whose exec comparison is queued →
        # the other pids that ran it meanwhile: they get its result, not a comparison each
        self.exec_sharing: dict[tuple[str, str, bool, int, int, int, int], list[int]] = {}
        self.namespaces: dict[str, str] = {}  # container → its PID namespace
        self.by_namespace: dict[str, str] = {}  # PID namespace → container (one lookup per exec)
        self.library_scans: dict[int, tuple[ContainerContext, float]] = {}
        self.untouched = UntouchedFiles()
        self.libraries_seen: set[tuple[str, str, int]] = set()
        for path in host_paths:
            self.watches.watch_host_path(path)
            print(f"bindrift: watching {path}", file=sys.stderr, flush=True)

    def attach_response(self, response: AgentResponse) -> None:
        """Evidence capture, block policies and prevention (before `run`)."""
        self.response = response
        if response.evidence is not None:  # copies made on the content worker, beside the analysis
            self.content.capture = response.evidence.capture
        if response.prevention is not None:
            self.selector.register(response.prevention, selectors.EVENT_READ, "prevention")
            print(f"bindrift: prevention process {response.prevention.pid}", file=sys.stderr, flush=True)

    def sync_containers(self) -> None:
        """Start watching new containers, retry those whose marks failed, let go of ended ones. One container
        that cannot be read or marked never stops the others: it is reported as *Coverage degraded*."""
        unavailable = self.watches.open()
        if unavailable != self.unavailable_reported and unavailable:
            log.error("no fanotify group: %s (retried every %.2f s)", unavailable, SYNC_EVERY_S)
            self._emit(sensor_unavailable(self._resource(None), unavailable))
        elif self.unavailable_reported and not unavailable:
            print("bindrift: fanotify group open: attaching every container now", file=sys.stderr, flush=True)
        self.unavailable_reported = unavailable
        # Containers are discovered and attached even with no group: each is then reported as not watched.
        current = self.discovery.running()
        now = time.monotonic()
        self._report_discovery_errors()
        for cid, container in current.items():
            if cid not in self.watches.attached:
                self._attach(container, now)
        for container in self.watches.due_retries(now):
            if container.id in current:
                self._attach(current[container.id], now)
        unreadable = {Path(state_dir).name for state_dir in self.discovery.errors}
        for cid in [k for k in self.watches.attached if k not in current and k not in unreadable]:
            self.watches.detach(cid)
            self.sweeps.pop(cid, None)
            namespace = self.namespaces.pop(cid, "")
            if self.by_namespace.get(namespace) == cid:
                del self.by_namespace[namespace]
            self.untouched.forget(cid)
            if self.response is not None and self.response.prevention is not None:
                self.response.prevention.unwatch(cid)
            print(f"bindrift: container {cid} ended", file=sys.stderr, flush=True)

    def _attach(self, container: ContainerContext, now: float) -> None:
        cid = container.id
        try:
            attachment = self.watches.attach(container, now)
        except Exception as exc:  # an unexpected error attaching one container: reported, retried
            log.exception("cannot watch container %s", cid)
            attachment = self.watches.attached.setdefault(cid, Attachment(container))
            attachment.failures, attachment.retry_at = {"/": f"{type(exc).__name__}: {exc}"}, now + RETRY_S
        if not attachment.announced and "/" not in attachment.failures:
            attachment.announced = True
            try:
                namespace = os.readlink(f"/proc/{container.init_pid}/ns/pid")
            except OSError:
                namespace = ""
            self.namespaces[cid] = namespace
            if namespace:
                self.by_namespace[namespace] = cid
            watched = ", ".join(m.mountpoint for m in container.mounts if m.mountpoint not in attachment.failures)
            print(f"bindrift: watching container {cid} ({container.runtime}): {watched}", file=sys.stderr,
                  flush=True)  # fmt: skip
            self.sweeps[cid] = sweep.start(container)
            prevention = self.response.prevention if self.response is not None else None
            if prevention is not None and prevention.covers(self._resource(container)):
                prevention.watch(cid, container, self._resource(container))  # it says when the marks are placed
        failed = frozenset(attachment.failures.items())
        if failed and failed != attachment.reported and os.path.exists(f"/proc/{container.init_pid}"):
            self._emit(coverage_degraded(self._resource(container), attachment.failures))
        attachment.reported = failed  # a container that ended while being attached has nothing to report

    def _report_discovery_errors(self) -> None:
        """A container that discovery could not read in two passes in a row (one may catch a runtime
        rewriting its state): Coverage degraded, once per distinct error."""
        for state_dir, error in self.discovery.errors.items():
            if self.discovery_seen.get(state_dir) == error and self.discovery_reported.get(state_dir) != error:
                log.warning("cannot read container %s: %s", state_dir, error)
                self._emit(discovery_failed(self._resource(None), state_dir, error))
                self.discovery_reported[state_dir] = error
        self.discovery_seen = dict(self.discovery.errors)
        self.discovery_reported = {k: v for k, v in self.discovery_reported.items() if k in self.discovery_seen}

    def run(self, duration: float = 0.0) -> None:
        """Process events until `duration` seconds have passed (forever when 0)."""
        deadline = time.monotonic() + duration if duration else None
        next_sync = 0.0
        # Every event makes short-lived objects: with Python's default thresholds a collection ran every few
        # hundred events and walked the process table's tens of thousands of records. What start-up made
        # (modules, the store's mappings) is frozen out of collections; young objects are collected less often.
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, 20, 20)
        while deadline is None or time.monotonic() < deadline:
            try:
                next_sync = self._iteration(next_sync)
            except Exception:  # the agent must outlive a bad event or a store hiccup; the log keeps the trace
                self.errors += 1
                log.exception("agent loop iteration failed")
                time.sleep(0.1)

    def _iteration(self, next_sync: float) -> float:
        """One pass: due exec reports and library scans, periodic work, process events as they come, and the
        file events every DRAIN_EVERY_S. Returns when the periodic work is next due."""
        self._flush_execs(time.monotonic() - EXEC_SETTLE_S)
        self._scan_libraries(time.monotonic() - LIBRARY_SCAN_AFTER_S)
        if self.sweeps:
            self._sweep()
        if time.monotonic() >= next_sync:
            self.sync_containers()
            self._check_coverage()
            if self.outputs is not None:
                skipped = {"not_regular_file": self.refused, "content_queue_full": self.content.dropped,
                           "unrouted": self.watches.unrouted,
                           "writer_record_evicted_elf": self.written.evicted["elf"],
                           "writer_record_evicted_other": self.written.evicted["other"]}  # fmt: skip
                self.outputs.tick(self._process_lost(), self.watches.overflows, self.pacing.bursts, skipped)
            next_sync = time.monotonic() + SYNC_EVERY_S
        due = min(self.next_drain, next_sync, self.pacing.next_read or next_sync)
        timeout = max(0.0, due - time.monotonic())
        ready = self.selector.select(timeout=timeout) if self.selector.get_map() else _sleep(timeout)
        if any(key.data in (None, "ebpf") for key, _mask in ready) or self.pacing.due(time.monotonic()):
            self._process_events()
        if any(key.data == "content" for key, _mask in ready):
            self._content_done()
        prevention = self.response.prevention if self.response is not None else None
        if prevention is not None and any(key.data == "prevention" for key, _mask in ready):
            for outcome in prevention.drain():
                self._emit_outcome(outcome)
            if not prevention.alive:
                self.selector.unregister(prevention)
        if time.monotonic() >= self.next_drain:
            self._drain()
            self.next_drain = time.monotonic() + DRAIN_EVERY_S
        return next_sync

    def _drain(self) -> None:
        """Every file event queued since the last drain."""
        # Process events first, always: a writer such as `cp` must be in the table before its close-write
        # is looked at, and it may be gone from /proc a moment later.
        self._process_events()
        deadline = time.monotonic() + DRAIN_BUDGET_S
        for _ in range(MAX_READS_PER_DRAIN):
            events = self.watches.read()
            if not events:
                break
            if self.kernel_feed is not None:  # read after the file events: every exec before them is in the
                self._process_events()  # ring by now, so their writer is known exactly
            for event in events:
                self._handle(event)
            if time.monotonic() >= deadline:
                break  # the rest waits in the kernel's queue: discovery and coverage checks run meanwhile

    def _follow_pacing(self) -> None:
        """Wake on the proc connector, or not, as the pacing says."""
        if self.proc is None:
            return
        if self.pacing.waiting and not self.waiting_on_proc:
            self.selector.register(self.proc, selectors.EVENT_READ, None)
        elif not self.pacing.waiting and self.waiting_on_proc:
            self.selector.unregister(self.proc)
        self.waiting_on_proc = self.pacing.waiting

    def _process_lost(self) -> int:
        return self.kernel_feed.lost if self.kernel_feed is not None else self.proc.lost if self.proc else 0

    def _process_events(self) -> None:
        if self.kernel_feed is not None:
            for exec_event in self.kernel_feed.read():
                self._on_process_exec(exec_event.image.tgid, True)
            return
        assert self.proc is not None
        execs = 0
        for event in self.proc.read():
            if event.kind == "exec":
                execs += 1
                # a process already gone has nothing left to look at
                self._on_process_exec(event.pid, self.table.on_exec(event.pid))
            elif event.kind == "fork":
                self.table.on_fork(event.pid, event.parent)
            elif event.kind == "comm":
                self.table.on_comm(event.pid, event.comm)
            else:
                self.table.on_exit(event.pid)
        self.pacing.read(execs, time.monotonic())
        self._follow_pacing()

    def _on_process_exec(self, pid: int, alive: bool) -> None:
        """An exec completed: its pending finding is due; unusual ways of executing are checked; its libraries
        are looked at a moment later."""
        if pid in self.pending_execs:
            self._flush_exec(pid)
        elif alive:
            self._check_unusual_exec(pid)
        container = self._container_of(pid) if alive and self.namespaces else None
        if container is not None:
            self.library_scans.pop(pid, None)  # to the end: the queue is kept in time order
            self.library_scans[pid] = (container, time.monotonic())

    def _handle(self, event: FanEvent) -> None:
        """Decide from the event's descriptor: only a regular file is looked at, a deleted one included (its
        path is read only for an ELF file written or a file executed)."""
        path = f"descriptor of pid {event.pid}"
        try:
            st = os.fstat(event.fd)
            if not stat.S_ISREG(st.st_mode):
                self.refused += 1  # a FIFO, a device: never read
                return
            route = self.watches.route(event.fd, st.st_dev)
            if route is None:
                return
            if event.mask & FAN_CLOSE_WRITE:
                self._on_write(route, event, st)
            if event.mask & FAN_OPEN_EXEC:
                path, deleted = last_path(event.path, st)
                if self.proc is not None:  # the eBPF sensor captures the executable itself
                    self.table.note_exe(event.pid, path)
                if route.container is not None:
                    self._on_exec(route, event, st, path, deleted)
        except OSError as exc:
            log.warning("event on %r not analysed: %s", path, exc)
        except Exception:  # the agent must outlive one bad event or a store hiccup; the log keeps the trace
            self.errors += 1
            log.exception("event on %r not analysed", path)
        finally:
            os.close(event.fd)

    def _resource(self, container: ContainerContext | None) -> Resource:
        if container is None:
            return Resource(node=self.node, cluster=self.cluster)
        return Resource(
            node=self.node, cluster=self.cluster, namespace=container.namespace, pod=container.pod,
            container_id=container.id, container_name=container.container_name, image=container.image,
            image_digest=container.image_digest, runtime=container.runtime,
        )  # fmt: skip

    def _process(self, pid: int, container: ContainerContext | None) -> ProcessInfo | None:
        return self.table.get(pid, container.init_pid if container else 0) if pid > 0 else None

    def _on_write(self, route: Route, event: FanEvent, st: os.stat_result) -> None:
        container = route.container
        scope = container.id if container else route.label
        if os.pread(event.fd, 4, 0) != b"\x7fELF":
            # Most writes: the writer remembered cheaply (no path, no lineage walk through /proc), for a script
            # run later.
            self.written.note(st, scope, self.table.peek(event.pid), elf=False)
            return
        path, deleted = last_path(event.path, st)
        if event.pid > 0:
            writer = self.table.writer(event.pid, path, st, container.init_pid if container else 0)
        else:
            writer = self.table.peek(event.pid)
        self.written.note(st, scope, writer, elf=True)
        notes = deleted_evidence(path, deleted)
        if route.on_volume and route.mount is not None:
            notes.append(Evidence("mount", f"written on {route.mount.kind} mount {route.mount.mountpoint}",
                                  mount_values(route.mount)))  # fmt: skip
        self._triage_elf(event.fd, path, container, writer, notes)

    def _triage_elf(self, fd: int, path: str, container: ContainerContext | None, writer: ProcessInfo | None,
                    notes: list[Evidence]) -> None:  # fmt: skip
        """*Suspicious binary* for an ELF file, triaged on the content worker (a duplicate of `fd` goes)."""
        resource, intel = self._resource(container), self.intel

        def analyse(job_fd: int) -> Detection | None:
            return triage_written(job_fd, path, resource, writer, notes, intel)

        self.content.submit(Job(os.dup(fd), container.id if container else "", "write", analyse, self._emit_found))

    def _emit_found(self, detection: Detection | None, blob: Blob | None) -> None:
        if detection is not None:
            self._emit(detection, blob)

    def _content_done(self) -> None:
        """What the content worker has finished: each job's findings, in the order it finished them."""
        for done in self.content.results():
            try:
                if done.failed:
                    self.errors += 1
                    if done.job.abandon is not None:
                        done.job.abandon()
                    continue
                done.job.finish(done.detection, done.blob)
            except Exception:  # the agent must outlive one bad result or a store hiccup; the log keeps the trace
                self.errors += 1
                log.exception("content result (%s) not handled", done.job.kind)

    def _sweep(self) -> None:
        """A few milliseconds of the startup sweep: ELF files present before the container was watched."""
        for cid, current in list(self.sweeps.items()):
            if not self.content.room(cid):
                continue  # the sweep waits for the content worker rather than dropping what it finds
            found, done = sweep.step(current, SWEEP_STEP_S)
            for item in found:
                try:
                    note = Evidence("sweep", f"{item.path} was present before watching (startup sweep)",
                                    {"present_before_watching": True, "mountpoint": item.mountpoint})  # fmt: skip
                    self._triage_elf(item.fd, item.path, current.container, None, [note])
                finally:
                    os.close(item.fd)
            if not done:
                return
            del self.sweeps[cid]
            print(f"bindrift: swept container {cid} ({current.visited} entries)", file=sys.stderr, flush=True)
            if current.cut_short:
                self._emit(sweep_cut_short(self._resource(current.container), sweep.MAX_ENTRIES))

    def _on_exec(self, route: Route, event: FanEvent, st: os.stat_result, path: str, deleted: bool) -> None:
        """An exec of a file in a watched container: untouched image files are known on the loop (a lookup in
        the upper layer, then remembered); the content comparison and the evidence copy run on the worker."""
        container = route.container
        assert container is not None
        if self.untouched.untouched(container.id, path, st):
            return
        compare: Callable[[int], DriftVerdict]
        if route.on_volume and route.mount is not None:
            seen, mount = self.written.get(st, container.id) is not None, mount_values(route.mount)
            if not written_during_life(st, container.started, seen_written=seen):
                self.untouched.remember(container.id, path, st, time.time_ns())
                return

            def compare(fd: int) -> DriftVerdict:
                return classify_mount_exec(fd, path, mount, container.started, seen_written=seen, deleted=deleted)

        else:
            if not deleted and not in_upper_layer(container.upper, path):
                self.untouched.remember(container.id, path, st, time.time_ns())
                return

            def compare(fd: int) -> DriftVerdict:
                return classify_exec(fd, path, container.upper, container.lowers, container.started, deleted=deleted)

        # Execs of the same unchanged file while its comparison waits share that comparison's result.
        identity = (container.id, path, deleted, st.st_dev, st.st_ino, st.st_ctime_ns, st.st_size)
        sharing = self.exec_sharing.get(identity)
        if sharing is not None:
            if len(sharing) < MAX_SHARING:
                sharing.append(event.pid)
            else:
                self.content.count_drop("exec", container.id)
            return
        written = self.written.get(st, container.id)
        writer, written_at = (written.writer, written.at) if written is not None else (None, None)
        resource, intel, pid = self._resource(container), self.intel, event.pid

        def analyse(fd: int) -> Detection | None:
            verdict = compare(fd)
            if verdict.category is None:
                return None
            return _exec_detection(fd, path, st.st_size, verdict, resource, pid, writer, written_at, intel)

        def finish(detection: Detection | None, blob: Blob | None) -> None:
            self._exec_classified(container.id, path, st, pid, detection, blob)
            for other in self.exec_sharing.pop(identity, []):
                again = None if detection is None else msgspec.structs.replace(
                    detection, observed_at=datetime.now(UTC), process=ProcessInfo(pid=other))  # fmt: skip
                self._exec_classified(container.id, path, st, other, again, blob)

        def abandon() -> None:
            self.exec_sharing.pop(identity, None)

        self.exec_sharing[identity] = []
        if not self.content.submit(Job(os.dup(event.fd), container.id, "exec", analyse, finish, abandon)):
            del self.exec_sharing[identity]

    def _exec_classified(self, cid: str, path: str, st: os.stat_result, pid: int, detection: Detection | None,
                         blob: Blob | None) -> None:  # fmt: skip
        """An executed file compared on the worker: the image's own is remembered, drift waits for the kernel
        to say the exec completed (or EXEC_SETTLE_S)."""
        if detection is None:
            self.untouched.remember(cid, path, st, time.time_ns())
            return
        self._keep_blob(blob)
        if pid <= 0:
            self._emit(detection)
            return
        self.pending_execs.pop(pid, None)  # to the end: the queue is kept in time order
        self.pending_execs[pid] = (detection, time.monotonic())
        known = self.table.peek(pid)
        if known is not None and known.exe == path:  # the exec completed before this result came back
            self._flush_exec(pid)

    def _flush_exec(self, pid: int) -> None:
        """Emit a pending exec finding with the process as it is after the exec."""
        detection, _since = self.pending_execs.pop(pid)
        container = self._watched(detection.resource.container_id)
        process = self._process(pid, container) or detection.process
        self._emit(msgspec.structs.replace(detection, process=process))

    def _flush_execs(self, older_than: float) -> None:
        for pid in _due(self.pending_execs, older_than):
            if self.proc is not None:  # captured in the kernel, the exec is already in the table
                self.table.on_exec(pid)
            self._flush_exec(pid)

    def _container_of(self, pid: int) -> ContainerContext | None:
        """The watched container whose PID namespace the process is in."""
        namespace = self.table.namespace(pid)
        cid = self.by_namespace.get(namespace) if namespace else None
        attached = self.watches.attached.get(cid) if cid else None
        return attached.container if attached is not None else None

    def _mount_watched(self, container: ContainerContext, path: str) -> bool:
        """Whether the mount holding `path` (the deepest listed) is marked in the container."""
        attached = self.watches.attached.get(container.id)
        mounts = [m for m in container.mounts if path.startswith(m.mountpoint.rstrip("/") + "/")]
        deepest = max(mounts, key=lambda m: len(m.mountpoint), default=None)
        return attached is not None and deepest is not None and deepest.mountpoint not in attached.failures

    def _watched(self, cid: str) -> ContainerContext | None:
        attached = self.watches.attached.get(cid) if cid else None
        return attached.container if attached is not None else None

    def _check_unusual_exec(self, pid: int) -> None:
        """Loader-started, /dev/shm and memfd executions in a container (fanotify does not see them as an
        exec of an upper-layer file)."""
        process = self.table.peek(pid)  # every exec on the node passes here: no lineage walk unless needed
        if process is None or not process.exe:
            return
        found = unusual_exec(process.exe, process.args, "/")
        container = self._container_of(pid) if found else None
        if found is None or container is None:
            return
        kind, program = found
        if kind == "shm" and self._mount_watched(container, program):
            return  # seen through its mount's mark, with the writer and mount in the evidence
        if kind == "loader":  # rare: only now is the working directory read, for a relative program
            try:
                cwd = process.cwd or os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                cwd = "/"
            kind, program = unusual_exec(process.exe, process.args, cwd) or found
        try:
            if kind == "loader":
                root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    fd = open_in_root(root, program)
                finally:
                    os.close(root)
            else:
                fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            st: os.stat_result | None = os.fstat(fd)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):  # a device, a FIFO run through the loader: never read
            self.refused += 1
            os.close(fd)
            return
        process = self._process(pid, container) or process
        writer = self._writer_of(st, container.id)
        resource, intel = self._resource(container), self.intel

        def analyse(job_fd: int) -> Detection | None:
            return _unusual_detection(job_fd, kind, program, container, resource, process, writer, intel)

        self.content.submit(Job(fd, container.id, "exec", analyse, self._emit_found))

    def _scan_libraries(self, older_than: float) -> None:
        """*Added Library Loaded*: files mapped executable by a container process that are not in its image."""
        for pid in _due(self.library_scans, older_than):
            container, _at = self.library_scans.pop(pid)
            if self.kernel_feed is not None and self.table.ended(pid):
                continue  # the kernel said it exited: nothing left to read in /proc
            for path, map_range in _executable_mappings(pid):
                self._check_library(container, pid, path, map_range)

    def _check_library(self, container: ContainerContext, pid: int, path: str, map_range: str) -> None:
        try:
            fd = os.open(f"/proc/{pid}/map_files/{map_range}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            st = os.fstat(fd)
            key = (container.id, path, st.st_ino)
            added = key not in self.libraries_seen and os.pread(fd, 4, 0) == b"\x7fELF"
            if added:
                self.libraries_seen.add(key)
            # the image's own library (not in the upper layer) has nothing to compare
            added = added and in_upper_layer(container.upper, path)
        except OSError:
            added = False
        if not added:
            os.close(fd)
            return
        writer = self._writer_of(st, container.id)
        resource, process, intel = self._resource(container), self._process(pid, container), self.intel

        def analyse(job_fd: int) -> Detection | None:
            verdict = classify_exec(job_fd, path, container.upper, container.lowers, container.started)
            if verdict.category is None:
                return None
            return Detection(
                category="Added Library Loaded", observed_at=datetime.now(UTC), resource=resource,
                file=FileInfo(path=path, sha256=verdict.sha256, size=os.fstat(job_fd).st_size), source="agent",
                process=process, writer=writer,
                evidence=[*verdict.evidence, Evidence("mapping", f"mapped executable by pid {pid}", {"pid": pid})],
                intel=intel.lookup(verdict.sha256),
            )  # fmt: skip

        self.content.submit(Job(fd, container.id, "exec", analyse, self._emit_found))

    def _check_coverage(self) -> None:
        if self.content.dropped > self.dropped_reported:
            kinds, containers = dict(self.content.dropped_kinds), dict(self.content.dropped_containers)
            self._emit(content_dropped(self._resource(None), self.content.dropped - self.dropped_reported, kinds,
                                       containers))  # fmt: skip
            self.dropped_reported = self.content.dropped
        lost = self._process_lost() + self.watches.overflows
        if lost > self.lost_reported:
            self._emit(degraded(self._resource(None), "sensor-queues", "loss",
                                f"{lost - self.lost_reported} sensor queue overflow(s) or lost message(s)",
                                {"process_events_lost": self._process_lost(), "total_lost": lost,
                                 "process_sensor": "ebpf" if self.kernel_feed else "procfs"}))  # fmt: skip
            self.lost_reported = lost
        evidence = self.response.responder.housekeeping(self._resource(None)) if self.response is not None else None
        if evidence is not None:
            self._emit(evidence)

    def _keep_blob(self, blob: Blob | None) -> None:
        """An evidence copy made on the content worker, kept until its finding is stored."""
        if blob is not None:
            if len(self.blobs) >= MAX_BLOBS_PENDING:
                self.blobs.pop(next(iter(self.blobs)))
            self.blobs[blob.sha256] = blob

    def _emit_outcome(self, outcome: Outcome) -> None:
        """A prevented exec (with its process as it was when it tried) or a Prevention degraded report."""
        detection = outcome.detection
        pid = detection.process.pid if detection.process else 0
        container = self._watched(detection.resource.container_id)
        writer = None
        if outcome.fd >= 0:  # the denied file's own descriptor
            with contextlib.suppress(OSError):
                writer = self._writer_of(os.fstat(outcome.fd), detection.resource.container_id or "")
        detection = msgspec.structs.replace(
            detection, process=self._process(pid, container) or detection.process, writer=writer
        )
        prevented = None
        if outcome.prevented:
            prevented = ResponseAction("prevent", f"policy:{outcome.policy_id}", datetime.now(UTC),
                                       detail=f"execution of {detection.file.path} denied (EPERM)",
                                       values={"pid": pid, "policy": outcome.policy_id})  # fmt: skip
        if outcome.fd < 0 or self.content.capture is None:
            if outcome.fd >= 0:
                os.close(outcome.fd)
            self._emit(detection, None, prevented)
            return
        denied = detection  # the denied file, copied for the evidence on the content worker

        def finish(_found: Detection | None, blob: Blob | None) -> None:
            self._emit(denied, blob, prevented)

        if not self.content.submit(Job(outcome.fd, denied.resource.container_id, "evidence", lambda _fd: denied,
                                       finish)):  # fmt: skip
            self._emit(denied, None, prevented)  # no room: reported without its copy (the drop is counted)

    def _writer_of(self, st: os.stat_result, cid: str) -> ProcessInfo | None:
        written = self.written.get(st, cid)
        return written.writer if written is not None else None

    def _emit(self, detection: Detection, blob: Blob | None = None, prevented: ResponseAction | None = None) -> None:
        if self.pipeline is None:
            assert self.publish is not None, "an agent needs a store or a bus"
            self.publish(detection)
            return
        started = time.monotonic()
        finding = self.pipeline.process(detection)
        if self.response is not None:
            self.response.responder.on_finding(finding, blob or self.blobs.pop(detection.file.sha256, None), prevented)
        if self.outputs is not None:
            self.outputs.finding(finding, time.monotonic() - started)

    def close(self) -> None:
        if self.response is not None and self.response.prevention is not None:
            self.response.prevention.close()
        self.content.close()
        self.watches.close()
        if self.proc is not None:
            self.proc.close()
        if self.kernel_feed is not None:
            self.kernel_feed.close()
        self.selector.close()


def _exec_detection(fd: int, path: str, size: int, verdict: DriftVerdict, resource: Resource, pid: int,
                    writer: ProcessInfo | None, written_at: datetime | None, intel: IntelSet) -> Detection:  # fmt: skip
    """*Added* / *Modified Binary Executed* (or *Added Script Executed*, run through its `#!` line) from the
    verdict of the executed file behind `fd`, of `size` bytes when its event was read (on the content worker)."""
    category, evidence = verdict.category, list(verdict.evidence)
    assert category is not None
    script = script_evidence(fd, path)
    if script is not None:  # run through its #! line: a script, not a binary
        category = "Added Script Executed"
        evidence.append(script)
    if writer is not None and written_at is not None:
        evidence.append(Evidence("writer", f"written by {writer.exe or writer.comm} (pid {writer.pid}) at "
                                 f"{written_at.isoformat()}", {"pid": writer.pid, "exe": writer.exe}))  # fmt: skip
    return Detection(
        category=category, observed_at=datetime.now(UTC), resource=resource,
        file=FileInfo(path=path, sha256=verdict.sha256, size=size), source="agent",
        process=ProcessInfo(pid=pid), writer=writer, evidence=evidence,
        intel=intel.lookup(verdict.sha256) if verdict.sha256 else [],
    )  # fmt: skip


def _unusual_detection(fd: int, kind: str, program: str, container: ContainerContext, resource: Resource,
                       process: ProcessInfo, writer: ProcessInfo | None,
                       intel: IntelSet) -> Detection | None:  # fmt: skip
    """The finding of a loader-started, /dev/shm or memfd execution (on the content worker)."""
    evidence: list[Evidence]
    if kind == "loader":
        verdict = classify_exec(fd, program, container.upper, container.lowers, container.started)
        if verdict.category is None:
            return None
        category, sha, evidence = verdict.category, verdict.sha256, list(verdict.evidence)
        summary = f"executed through the dynamic loader {process.exe}: the kernel saw only the loader run"
        evidence.append(Evidence("loader", summary, {"loader": process.exe, "program": program}))
    else:
        digest = sha256_fd_bounded(fd)  # a memfd can be as large and sparse as any file
        sha = digest.sha256
        category = "Fileless execution" if kind == "memfd" else "Added Binary Executed"
        where = "from memory (memfd): no file exists" if kind == "memfd" else "from /dev/shm, a tmpfs outside the image"
        evidence = [Evidence(kind, f"{program} executed {where}", {"exe": process.exe}), *budget_evidence(digest)]
    return Detection(
        category=category, observed_at=datetime.now(UTC), resource=resource,
        file=FileInfo(path=program, sha256=sha, size=os.fstat(fd).st_size), source="agent", process=process,
        writer=writer, evidence=evidence, intel=intel.lookup(sha) if sha else [],
    )  # fmt: skip


def _due(queue: Mapping[int, tuple[object, float]], older_than: float) -> list[int]:
    """The keys of a queue kept in time order (oldest first) whose time is at or before `older_than`: only
    those are looked at, not the whole queue (thousands of entries in an exec storm, on every wake-up)."""
    due = []
    for key, (_value, at) in queue.items():
        if at > older_than:
            break
        due.append(key)
    return due


def _sleep(seconds: float) -> list[tuple[selectors.SelectorKey, int]]:
    """What an empty selector's select would do (epoll refuses to wait on nothing)."""
    time.sleep(seconds)
    return []


def _executable_mappings(pid: int) -> list[tuple[str, str]]:
    """(container path, address range) of each file a process maps executable, main program excluded."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read(MAX_MAPS).splitlines()
    except OSError:
        return []
    found: dict[str, str] = {}
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and "x" in fields[1] and fields[5].startswith("/") and not fields[5].endswith(")"):
            found.setdefault(fields[5], fields[0])
    try:
        main = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        main = ""
    return [(path, span) for path, span in found.items() if path != main]


def print_finding(finding: Finding) -> None:
    """Each stored finding as a JSON line on stdout."""
    sys.stdout.buffer.write(msgspec.json.encode(finding) + b"\n")
    sys.stdout.buffer.flush()
