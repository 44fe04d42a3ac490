"""Prometheus metrics of the API process: stored findings by severity and state (read from the store at
scrape time) and API requests by route and status, with their latency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from bindrift.sinks.store.sql_store import SqlStore

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _StoredFindings(Collector):
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        from bindrift.sinks.store.sql_store import FindingFilter

        by_severity = GaugeMetricFamily("bindrift_stored_findings", "Active findings in the store by severity",
                                        labels=["severity"])  # fmt: skip
        for severity, count in sorted(self.store.counts_by("severity", FindingFilter(state="active")).items()):
            by_severity.add_metric([severity], count)
        by_state = GaugeMetricFamily("bindrift_stored_findings_by_state", "Findings in the store by state",
                                     labels=["state"])  # fmt: skip
        for state, count in sorted(self.store.counts_by("state").items()):
            by_state.add_metric([state], count)
        yield by_severity
        yield by_state


class ApiMetrics:
    """The API's metric families, in a registry of their own."""

    def __init__(self, store: SqlStore) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StoredFindings(store))
        self.requests = Counter("bindrift_api_requests", "API requests", ["route", "method", "status"],
                                registry=self.registry)  # fmt: skip
        self.latency = Histogram("bindrift_api_request_seconds", "API request latency", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
