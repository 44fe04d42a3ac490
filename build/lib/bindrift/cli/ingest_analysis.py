"""Another sensor's exec and write events → bindrift's own analysis → findings.

When the file is reachable on this node — in a running container found by the event's id (or, for auditd,
by the process's cgroup), or through a live host process's root — it gets the agent's analysis: triage
(*Suspicious binary*) and, for executions in a container, the layer comparison (*Added* / *Modified
Binary Executed*). Otherwise a finding is made only when the tool itself said the file drifted, and its
`event-only` evidence says so, naming the tool and the field.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from collections import OrderedDict
from datetime import UTC, datetime

from bindrift.analysis.intel.intel_set import IntelSet
from bindrift.analysis.safe_open import open_in_root
from bindrift.analysis.triage import triage
from bindrift.context.containers import ContainerContext, ContainerDiscovery
from bindrift.detectors.drift import classify_exec
from bindrift.detectors.suspicious_binary import suspicious_binary
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.external_event import ExternalEvent, ExternalProcess, FactValue
from bindrift.schema.finding import Category, Detection, Evidence, FileInfo, Finding, ProcessInfo, ProcessRef, Resource
from bindrift.schema.triage import TriageReport
from bindrift.sensors.runtime.process_table import ingress_tool

log = logging.getLogger(__name__)
RESYNC_S = 1.0
MAX_CGROUP = 64 * 1024
CGROUP_ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])")
MAX_REMEMBERED = 100_000
MAX_TRIAGED = 4096
EVENT_ONLY: dict[str, Category] = {"upper-layer": "Added Binary Executed", "memfd": "Fileless execution"}
DRIFT_MEANING = {
    "upper-layer": "it is not part of the image (a copy-up of an unchanged image file would say the same)",
    "memfd": "it ran from memory", "dropped-executable": "it was written after the container started",
}  # fmt: skip


def process_info(process: ExternalProcess, parents: list[ExternalProcess], exe: str = "") -> ProcessInfo:
    """The tool's process in bindrift's shape (its ancestors as the lineage)."""
    return ProcessInfo(
        pid=process.pid, ppid=parents[0].pid if parents else 0, comm=process.comm,
        exe=process.exe or exe, args=list(process.args), user=process.user, uid=process.uid, cwd=process.cwd,
        lineage=[ProcessRef(pid=p.pid, comm=p.comm, exe=p.exe, args=list(p.args)) for p in parents],
        downloaded_by=ingress_tool(process.comm, process.args),
    )  # fmt: skip


def _observed(event: ExternalEvent) -> datetime:
    try:
        return datetime.fromtimestamp(event.time_ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return datetime.now(UTC)


class IngestAnalyser:
    """Turns each external event into zero or more stored findings (source `ingest:<tool>`)."""

    def __init__(self, pipeline: FindingsPipeline, intel: IntelSet, *, node: str, cluster: str = "") -> None:
        self.pipeline, self.intel, self.node, self.cluster = pipeline, intel, node, cluster
        self.containers: dict[str, ContainerContext] = {}
        self.discovery = ContainerDiscovery()
        self.synced_at = float("-inf")
        # (container id or "host", path) → the writer, and whether the tool saw an executable dropped there
        self.writes: OrderedDict[tuple[str, str], tuple[ProcessInfo, ExternalEvent]] = OrderedDict()
        self.triaged: OrderedDict[tuple[str, int, int, int, int, int], TriageReport] = OrderedDict()
        self.findings = self.full = self.event_only = 0

    def handle(self, event: ExternalEvent) -> list[Finding]:
        """Analyse one event; returns the findings stored for it."""
        container = self._container(event)
        scope = container.id if container else event.container_id or "host"
        process = process_info(event.process, event.parents, event.path if event.kind == "exec" else "")
        if event.kind == "write":
            self._remember((scope, event.path), process, event)
            writer: ProcessInfo | None = process
            written: ExternalEvent | None = None
        else:
            writer, written = self.writes.get((scope, event.path), (None, None))
        dropped = written if written is not None and written.verdict.drift else None
        resource = self._resource(event, container, written)
        fd, why = self._open(event, container)
        if fd is None:
            detection = self._event_only(event, resource, process, writer, dropped, why)
            detections = [detection] if detection is not None else []
            self.event_only += len(detections)
        else:
            try:
                detections = self._analyse(fd, event, container, resource, process, writer)
            finally:
                os.close(fd)
            self.full += 1
        found = [self.pipeline.process(d) for d in detections]
        self.findings += len(found)
        return found

    def _remember(self, key: tuple[str, str], writer: ProcessInfo, event: ExternalEvent) -> None:
        self.writes.pop(key, None)
        self.writes[key] = (writer, event)
        if len(self.writes) > MAX_REMEMBERED:
            self.writes.popitem(last=False)

    def _container(self, event: ExternalEvent) -> ContainerContext | None:
        """The running container the event happened in: by its id (a 12-character prefix is enough), or
        for a tool without container ids, by the live process's cgroup."""
        if event.container_id:
            return self._by_id(event.container_id)
        if event.tool != "auditd" or event.process.pid <= 0:
            return None
        try:
            with open(f"/proc/{event.process.pid}/cgroup", "rb") as fh:
                cgroup = fh.read(MAX_CGROUP).decode("ascii", "replace")
        except OSError:
            return None
        found = CGROUP_ID.search(cgroup)  # the runtimes name a container's cgroup after its 64-hex id
        return self._by_id(found.group(1)) if found else None

    def _by_id(self, wanted: str) -> ContainerContext | None:
        for attempt in (False, True):
            self._sync(force=attempt)
            found = next((c for cid, c in self.containers.items() if cid.startswith(wanted)), None)
            if found is not None:
                return found
        return None

    def _sync(self, *, force: bool) -> None:
        """Read the running containers once, and again (at most once a second) when `force`d by a miss."""
        if self.synced_at == float("-inf") or (force and time.monotonic() - self.synced_at >= RESYNC_S):
            self.containers = self.discovery.running()
            self.synced_at = time.monotonic()

    def _open(self, event: ExternalEvent, container: ContainerContext | None) -> tuple[int | None, str]:
        """A descriptor on the event's file, opened inside the right root with no escape, or (None, why)."""
        if not event.path.startswith("/"):
            return None, f"the event gives no absolute path ({event.path!r})"
        if container is not None:
            root = f"/proc/{container.init_pid}/root"
        elif event.container_id:
            return None, f"container {event.container_id} is not running on this node"
        elif event.process.pid > 0:
            root = f"/proc/{event.process.pid}/root"
        else:
            return None, "the event names neither a container nor a host process"
        try:
            root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            return None, f"{root} cannot be opened ({exc.strerror}): the process is gone"
        try:
            if container is None and not _same_file(os.fstat(root_fd), os.stat("/")):
                return None, (
                    f"process {event.process.pid} runs in another root: its PID was reused, or it is in "
                    "a container not found here"
                )
            return open_in_root(root_fd, event.path), ""
        except OSError as exc:
            return None, f"{event.path} cannot be opened in {root} ({exc.strerror})"
        finally:
            os.close(root_fd)

    def _resource(self, event: ExternalEvent, container: ContainerContext | None,
                  written: ExternalEvent | None) -> Resource:  # fmt: skip
        """The container's context where it runs here, else what the event (or the write before it) said."""
        c, w = container, written or event
        return Resource(
            node=event.node or w.node or self.node, cluster=self.cluster,
            namespace=(c.namespace if c else "") or event.namespace or w.namespace,
            pod=(c.pod if c else "") or event.pod or w.pod, container_id=c.id if c else event.container_id,
            container_name=(c.container_name if c else "") or event.container_name or w.container_name,
            image=(c.image if c else "") or event.image or w.image,
            image_digest=(c.image_digest if c else "") or event.image_digest or w.image_digest,
            runtime=c.runtime if c else "",
        )  # fmt: skip

    def _triage(self, fd: int, path: str) -> TriageReport:
        st = os.fstat(fd)
        key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        report = self.triaged.get(key)
        if report is None:
            report = triage(fd, label=path)
            self.triaged[key] = report
            if len(self.triaged) > MAX_TRIAGED:
                self.triaged.popitem(last=False)
        return report

    def _analyse(self, fd: int, event: ExternalEvent, container: ContainerContext | None, resource: Resource,
                 process: ProcessInfo, writer: ProcessInfo | None) -> list[Detection]:  # fmt: skip
        """The agent's analysis on the reachable file."""
        observed, source = _observed(event), f"ingest:{event.tool}"
        reported = _reported(event)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        detections = []
        report = self._triage(fd, event.path)
        found = suspicious_binary(report, resource, observed, source, writer=writer,
                                  intel=self.intel.lookup(report.sha256) if report.sha256 else [])  # fmt: skip
        if found is not None:
            detections.append(Detection(
                category=found.category, observed_at=observed, resource=resource, file=found.file, source=source,
                process=process if event.kind == "exec" else None, writer=writer,
                evidence=[*found.evidence, reported], intel=found.intel,
            ))  # fmt: skip
        if event.kind == "exec" and container is not None:
            verdict = classify_exec(fd, event.path, container.upper, container.lowers, container.started)
            if verdict.category is not None:
                evidence = list(verdict.evidence)
                if writer is not None:
                    summary = f"written by {writer.exe or writer.comm} (pid {writer.pid}), as reported by {event.tool}"
                    evidence.append(Evidence("writer", summary, {"pid": writer.pid, "exe": writer.exe}))
                detections.append(Detection(
                    category=verdict.category, observed_at=observed, resource=resource, source=source,
                    file=FileInfo(path=event.path, sha256=verdict.sha256, size=os.fstat(fd).st_size),
                    process=process, writer=writer, evidence=[*evidence, reported],
                    intel=self.intel.lookup(verdict.sha256),
                ))  # fmt: skip
        return detections

    def _event_only(self, event: ExternalEvent, resource: Resource, process: ProcessInfo, writer: ProcessInfo | None,
                    dropped: ExternalEvent | None, why: str) -> Detection | None:  # fmt: skip
        """A finding from the event alone, when the tool itself says the executed file drifted."""
        if event.kind != "exec":
            return None
        said = event if event.verdict.drift in EVENT_ONLY else dropped
        if said is None:
            return None
        category = EVENT_ONLY.get(said.verdict.drift, "Added Binary Executed")
        path = event.path or event.process.exe
        meaning = DRIFT_MEANING[said.verdict.drift]
        summary = (f"{path or 'the executable'} is not reachable on this node ({why}): this finding rests on the "
                   f"{said.tool} event alone, whose {said.verdict.field} says {meaning}")  # fmt: skip
        values: dict[str, FactValue] = {"tool": said.tool, "field": said.verdict.field, "rule": said.verdict.rule,
                                        "reason": why}  # fmt: skip
        return Detection(
            category=category, observed_at=_observed(event), resource=resource, source=f"ingest:{event.tool}",
            file=FileInfo(path=path, sha256=event.sha256), process=process, writer=writer,
            evidence=[Evidence("event-only", summary, values), _reported(event)],
            intel=self.intel.lookup(event.sha256) if event.sha256 else [],
        )  # fmt: skip


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _reported(event: ExternalEvent) -> Evidence:
    """What the tool reported, with its raw fields."""
    verdict = event.verdict
    summary = f"reported by {event.tool}: {event.source_event}" + (f" ({verdict.priority})" if verdict.priority else "")
    values = {"tool": event.tool, "event": event.source_event, "rule": verdict.rule, "priority": verdict.priority,
              "sha256": event.sha256 or None, **event.facts}  # fmt: skip
    return Evidence("reported", summary, values)
