"""Prometheus view of an ingest run: the same counters as the summary, read from the run when scraped (the
hot loop only increments plain integers)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from bindrift.ingest.run import IngestRun


class IngestCollector(Collector):
    """bindrift_ingest_* families of one run."""

    def __init__(self, run: IngestRun) -> None:
        self.run = run

    def collect(self) -> Iterator[Metric]:
        run, s = self.run, self.run.stats
        tool = run.adapter.tool
        lines = CounterMetricFamily("bindrift_ingest_lines", "Input lines read, by outcome", labels=["tool", "outcome"])
        lines.add_metric([tool, "kept"], s.kept_lines)
        lines.add_metric([tool, "rejected"], s.rejected)
        lines.add_metric([tool, "ignored"], s.ignored_lines)
        yield lines
        events = CounterMetricFamily("bindrift_ingest_events_kept", "Exec and write events kept", labels=["tool"])
        events.add_metric([tool], s.kept)
        yield events
        rejected = CounterMetricFamily("bindrift_ingest_rejected_lines", "Lines rejected, by reason",
                                       labels=["tool", "reason"])  # fmt: skip
        for reason, n in s.reasons.items():
            rejected.add_metric([tool, reason], n)
        yield rejected
        ignored = CounterMetricFamily("bindrift_ingest_ignored_lines", "Lines ignored, by kind",
                                      labels=["tool", "kind"])  # fmt: skip
        for kind, n in s.ignored.items():
            ignored.add_metric([tool, kind], n)
        yield ignored
        analyser = run.analyser
        if analyser is not None:
            found = CounterMetricFamily("bindrift_ingest_detections", "Detections made, by analysis",
                                        labels=["tool", "analysis"])  # fmt: skip
            found.add_metric([tool, "event-only"], analyser.event_only)
            found.add_metric([tool, "full"], analyser.detections - analyser.event_only)
            yield found
        failed = CounterMetricFamily("bindrift_ingest_failed_events", "Events whose analysis failed", labels=["tool"])
        failed.add_metric([tool], run.failures)
        yield failed
        aside = CounterMetricFamily("bindrift_ingest_dead_lettered", "Detections the store refused, set aside with "
                                    "their reason (bindrift findings dead-letters)", labels=["tool"])  # fmt: skip
        aside.add_metric([tool], run.dead_lettered)
        yield aside
        unanalysed = CounterMetricFamily("bindrift_ingest_unanalysed_events", "Events parsed but not analysed",
                                         labels=["tool", "why"])  # fmt: skip
        unanalysed.add_metric([tool, "stopped"], run.dropped)
        unanalysed.add_metric([tool, "busy"], run.refused)
        yield unanalysed


class IngestMetrics:
    """A registry holding the run's collector, rendered with `extra` registries (the bus publisher's)."""

    def __init__(self, run: IngestRun, extra: list[CollectorRegistry] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(IngestCollector(run))
        self.extra = extra or []

    def render(self) -> bytes:
        return b"".join(generate_latest(registry) for registry in (self.registry, *self.extra))

    def write(self, path: str) -> None:
        """Replace a textfile-collector file atomically."""
        temporary = f"{path}.tmp"
        with open(temporary, "wb") as fh:
            fh.write(self.render())
        os.replace(temporary, path)
