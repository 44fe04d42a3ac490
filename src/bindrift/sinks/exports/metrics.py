"""Prometheus metrics: findings by category and severity, events, drops, detection latency."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

from bindrift.schema.finding import Finding

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The bindrift metric families in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry or CollectorRegistry()
        self.findings = Counter("bindrift_findings", "Findings raised or repeated", ["category", "severity"],
                                registry=self.registry)  # fmt: skip
        self.events = Counter("bindrift_events", "Sensor events processed", ["source", "kind"], registry=self.registry)
        self.dropped = Counter("bindrift_events_dropped", "Sensor events lost (queue overflow, read errors)",
                               ["source", "reason"], registry=self.registry)  # fmt: skip
        self.bursts = Counter("bindrift_process_event_bursts", "Exec bursts through which process events were read "
                              "in batches (a process gone within a batch is named by its executable only)",
                              registry=self.registry)  # fmt: skip
        self.process_context = Gauge("bindrift_process_context", "1 for where process context comes from: ebpf "
                                     "(captured in the kernel) or procfs (the fallback)", ["source"],
                                     registry=self.registry)  # fmt: skip
        self.latency = Histogram("bindrift_detection_latency_seconds", "From the sensor event to the stored finding",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip

    def record_finding(self, finding: Finding) -> None:
        self.findings.labels(finding.category, finding.severity).inc()

    def record_event(self, source: str, kind: str) -> None:
        self.events.labels(source, kind).inc()

    def record_drop(self, source: str, reason: str, count: int = 1) -> None:
        self.dropped.labels(source, reason).inc(count)

    def observe_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)

    def render(self) -> bytes:
        """The text exposition format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
