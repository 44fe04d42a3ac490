"""Where the agent's findings go besides the store: stdout, a webhook (through the store's outbox),
syslog, and a Prometheus textfile."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from bindrift.schema.finding import Finding
from bindrift.sinks.exports.metrics import Metrics
from bindrift.sinks.exports.syslog import SyslogSender
from bindrift.sinks.exports.webhook import SINK, WebhookSender
from bindrift.sinks.store.sql_store import SqlStore

log = logging.getLogger(__name__)
METRICS_EVERY_S = 5.0


class AgentOutputs:
    """Fan-out of stored findings; `tick()` runs the periodic work (webhook retries, metrics file)."""

    def __init__(self, store: SqlStore, *, webhook: str = "", syslog: str = "", metrics_file: str = "",
                 echo: Callable[[Finding], None] | None = None) -> None:  # fmt: skip
        self.webhook = WebhookSender(store, webhook, retries=1, backoff_s=0.2) if webhook else None
        self.syslog = _syslog(syslog) if syslog else None
        self.metrics = Metrics()
        self.metrics_file = metrics_file
        self.echo = echo
        self._written = 0.0
        self._lost = (0, 0)
        self._bursts = 0
        self._skipped: dict[str, int] = {}
        self.process_source = "proc_connector"

    def set_process_source(self, source: str) -> None:
        """Where process context comes from (`ebpf` or `procfs`), for the metrics and the drops' label."""
        self.metrics.process_context.labels(source).set(1)
        self.process_source = "ebpf" if source == "ebpf" else "proc_connector"

    @property
    def outbox(self) -> tuple[str, ...]:
        """Sinks queued in the finding's own transaction."""
        return (SINK,) if self.webhook else ()

    def finding(self, finding: Finding, latency_s: float) -> None:
        self.metrics.record_finding(finding)
        self.metrics.observe_latency(latency_s)
        if self.echo is not None:
            self.echo(finding)
        if self.syslog is not None:
            try:
                self.syslog.send(finding)
            except OSError as exc:
                log.warning("syslog delivery failed: %s", exc)
        if self.webhook is not None:
            self.webhook.drain()

    def tick(self, proc_lost: int, fanotify_overflows: int, bursts: int, skipped: dict[str, int] | None = None) -> None:
        """Count what was lost and (`skipped`, by reason: totals so far) what the agent chose not to read."""
        for reason, total in (skipped or {}).items():
            if total > self._skipped.get(reason, 0):
                self.metrics.record_drop("agent", reason, total - self._skipped.get(reason, 0))
                self._skipped[reason] = total
        new_proc, new_fan = proc_lost - self._lost[0], fanotify_overflows - self._lost[1]
        if bursts > self._bursts:
            self.metrics.bursts.inc(bursts - self._bursts)
            self._bursts = bursts
        if new_proc > 0:
            self.metrics.record_drop(self.process_source, "ring_full" if self.process_source == "ebpf" else "enobufs",
                                     new_proc)  # fmt: skip
        if new_fan > 0:
            self.metrics.record_drop("fanotify", "queue_overflow", new_fan)
        self._lost = (proc_lost, fanotify_overflows)
        now = time.monotonic()
        if now - self._written < METRICS_EVERY_S:
            return
        self._written = now
        if self.webhook is not None:
            self.webhook.drain()  # retry what failed earlier
        self.write_metrics()

    def write_metrics(self) -> None:
        """Replace the metrics file atomically (also when the agent stops)."""
        if self.metrics_file:
            temporary = f"{self.metrics_file}.tmp"
            with open(temporary, "wb") as fh:
                fh.write(self.metrics.render())
            os.replace(temporary, self.metrics_file)


def _syslog(target: str) -> SyslogSender:
    address, _, protocol = target.partition("/")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or protocol not in ("", "udp", "tcp"):
        raise ValueError(f"--syslog wants HOST:PORT or HOST:PORT/tcp, not {target!r}")
    return SyslogSender(host, int(port), protocol or "udp")
