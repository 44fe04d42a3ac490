"""Running the node agent until SIGTERM, SIGINT or its duration: standalone (a store, its outputs, response and
optionally the API beside it) or distributed (detections published to the bus through a disk spool).

SIGTERM is taken over before anything is built, so a pod deleted while the agent starts stops it cleanly.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from bindrift.agent.loop import Agent
    from bindrift.agent.outputs import AgentOutputs
    from bindrift.schema.finding import Detection
    from bindrift.sinks.store.sql_store import SqlStore


class AgentSetupError(ValueError):
    """An option the agent cannot start with (a bad policy file, an output address, eBPF required but absent)."""


class BackgroundServer(Protocol):
    should_exit: bool


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """What every agent is given: where it runs, what it watches, how it reads process context."""

    node: str
    cluster: str
    host_paths: tuple[str, ...]
    duration: float
    batch_process_events: bool
    max_marks: int
    state_roots: tuple[tuple[str, str], ...]
    process_sensor: str
    metrics_file: str


@dataclass(frozen=True, slots=True)
class LocalOutputs:
    """A standalone agent's outputs and response: exports, policies, the evidence store and its budget."""

    webhook: str
    syslog: str
    policy: str
    evidence_dir: str
    evidence_max_mb: int
    evidence_total_mb: int
    evidence_min_free_mb: int
    evidence_container_mb_per_hour: int
    evidence_retention_days: int
    prevent_deadline_s: float


def _stop_on_sigterm() -> None:
    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _agent(settings: AgentSettings, store: SqlStore | None, outputs: AgentOutputs | None = None,
           publish: Callable[[Detection], None] | None = None) -> Agent:  # fmt: skip
    from bindrift.agent.loop import Agent
    from bindrift.sensors.ebpf.feed import Mode
    from bindrift.sensors.ebpf.sensor import EbpfUnavailableError

    try:
        return Agent(store, node=settings.node, cluster=settings.cluster, host_paths=settings.host_paths,
                     outputs=outputs, publish=publish, batch_process_events=settings.batch_process_events,
                     max_marks=settings.max_marks, state_roots=settings.state_roots,
                     process_sensor=cast(Mode, settings.process_sensor))  # fmt: skip
    except EbpfUnavailableError as exc:
        raise AgentSetupError(f"--process-sensor ebpf: {exc}") from exc


def run_standalone(
    open_store: Callable[[], SqlStore],
    settings: AgentSettings,
    outputs: LocalOutputs,
    start_server: Callable[[SqlStore], BackgroundServer] | None = None,
) -> None:
    """The agent storing its findings in the store `open_store()` opens (closed at the end), with
    `start_server(store)` beside it."""
    from bindrift.agent.loop import print_finding
    from bindrift.agent.outputs import AgentOutputs
    from bindrift.agent.response import build_response
    from bindrift.config import load_settings
    from bindrift.response.evidence import EvidenceBudget
    from bindrift.schema.finding import Resource

    _stop_on_sigterm()
    try:
        store = open_store()
    except KeyboardInterrupt:
        return
    server: BackgroundServer | None = None
    agent: Agent | None = None
    sinks: AgentOutputs | None = None
    try:
        try:
            sinks = AgentOutputs(store, webhook=outputs.webhook, syslog=outputs.syslog,
                                 metrics_file=settings.metrics_file, echo=print_finding)  # fmt: skip
        except ValueError as exc:
            raise AgentSetupError(str(exc)) from exc
        if start_server is not None:
            server = start_server(store)
        agent = _agent(settings, store, outputs=sinks)
        budget = EvidenceBudget(
            max_bytes=outputs.evidence_max_mb << 20, max_total_bytes=outputs.evidence_total_mb << 20,
            min_free_bytes=outputs.evidence_min_free_mb << 20,
            container_bytes_per_hour=outputs.evidence_container_mb_per_hour << 20,
            retention=timedelta(days=outputs.evidence_retention_days),
        )  # fmt: skip
        try:
            response = build_response(
                store, Resource(node=agent.node, cluster=agent.cluster), policy_file=outputs.policy,
                evidence_dir=outputs.evidence_dir, evidence_budget=budget,
                on_evidence_skip=lambda reason: sinks.metrics.record_drop("evidence", reason),
                deadline=outputs.prevent_deadline_s, severity=load_settings().severity,
            )  # fmt: skip
        except (ValueError, OSError) as exc:
            raise AgentSetupError(str(exc)) from exc
        agent.attach_response(response)
        print("bindrift: agent started, watching containers of podman, containerd, CRI-O and Docker",
              file=sys.stderr, flush=True)  # fmt: skip
        agent.run(settings.duration)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.should_exit = True
        if agent is not None:
            agent.close()
        if sinks is not None:
            sinks.write_metrics()
        store.close()


def run_distributed(settings: AgentSettings, bus: str, spool: Path, spool_max_mb: int) -> None:
    """The agent publishing its detections to the NATS servers of `bus` through its disk spool."""
    import socket

    from bindrift.bus.publisher import BusPublisher
    from bindrift.bus.spool import Spool
    from bindrift.bus.stream import parse_servers

    _stop_on_sigterm()
    try:
        servers = parse_servers(bus)
        spooled = Spool(spool, max_bytes=spool_max_mb << 20)
    except ValueError as exc:
        raise AgentSetupError(str(exc)) from exc
    node = settings.node or socket.gethostname()
    publisher = BusPublisher(servers, spooled, node, metrics_file=settings.metrics_file)
    agent: Agent | None = None
    try:
        agent = _agent(replace(settings, node=node), None, publish=publisher.publish)
        print(f"bindrift: agent started, publishing to {','.join(servers)}", file=sys.stderr, flush=True)
        agent.run(settings.duration)
    except KeyboardInterrupt:
        pass
    finally:
        if agent is not None:
            agent.close()
        publisher.close()
