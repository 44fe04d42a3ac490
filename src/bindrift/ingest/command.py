"""`bindrift ingest` put together: the adapter, the analysis, where detections go (the local store, or the bus
through the agent's disk spool and publisher), the input (a file, stdin or HTTP), the summary and metrics."""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, cast

from bindrift.schema.external_event import Tool

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from prometheus_client import CollectorRegistry

    from bindrift.bus.publisher import BusPublisher
    from bindrift.findings.batcher import DetectionBatcher
    from bindrift.ingest.run import IngestRun
    from bindrift.sinks.store.sql_store import SqlStore


class IngestOptions(NamedTuple):
    """What the command line chose (a NamedTuple: a dataclass would import `inspect`, a tenth of a `--check`
    run's start-up)."""

    source: Tool
    input_file: str = "-"
    store: SqlStore | None = None  # opened by the command line (its --db, BINDRIFT_DB or the configuration)
    listen: tuple[str, int] | None = None
    node: str = ""
    cluster: str = ""
    bus: str = ""
    spool: str = "/var/lib/bindrift/spool"
    spool_max_mb: int = 64
    check: bool = False
    metrics_file: str = ""
    tokens_file: Path | None = None
    max_request_lines: int = 5000
    max_request_bytes: int = 4 << 20
    rate: float = 20_000.0


def run_ingest(options: IngestOptions) -> int:
    """Runs the command; returns its exit status. ValueError / OSError for a bad option or input."""
    from bindrift.ingest.run import IngestRun, echo_finding
    from bindrift.sensors.ingest.reader import make_adapter

    adapter = make_adapter(options.source)
    if options.check:
        run = IngestRun(adapter, None)
        _read_input(run, options)
        return _finish(run, [], options)
    import socket

    from bindrift.analysis.intel.intel_set import IntelSet, Kind
    from bindrift.ingest.analyser import IngestAnalyser, Sink

    node = options.node or socket.gethostname()
    close: Callable[[], None]
    sink: Sink
    extra: list[CollectorRegistry] = []
    batcher: DetectionBatcher | None = None
    if options.bus:
        publisher = _publisher(options, node)
        sink, close, intel = publisher.publish, publisher.close, IntelSet()  # the workers hold the intelligence
        extra.append(publisher.metrics.registry)
    else:
        from bindrift.config import load_settings
        from bindrift.findings.batcher import DetectionBatcher
        from bindrift.findings.pipeline import FindingsPipeline
        from bindrift.findings.severity import SeverityPolicy

        store = options.store
        if store is None:
            raise ValueError("without --bus the findings need a store")
        close = store.close
        try:
            pipeline = FindingsPipeline(store, SeverityPolicy(load_settings().severity))
            intel = IntelSet([(path, cast("Kind", kind)) for path, kind in store.intel_sources()])
        except BaseException:
            store.close()
            raise
        batcher = DetectionBatcher(pipeline, echo_finding)  # one transaction per batch, not per detection
        sink = batcher.add
        close = _then(batcher, store.close)
    run = IngestRun(adapter, IngestAnalyser(sink, intel, node=node, cluster=options.cluster))
    try:
        if options.listen is not None:
            _serve(run, extra, options)
        else:
            _read_input(run, options)
    finally:
        close()
        if batcher is not None:
            run.failures += batcher.failures
            run.dead_lettered += batcher.dead_lettered
    return _finish(run, extra, options)


def _publisher(options: IngestOptions, node: str) -> BusPublisher:
    """The agent's spool and publisher: detections on disk at once, published in order, committed on the
    stream's acknowledgement (the same guarantees as `watch --bus`)."""
    from pathlib import Path

    from bindrift.bus.publisher import BusPublisher
    from bindrift.bus.spool import Spool
    from bindrift.bus.stream import parse_servers

    servers = parse_servers(options.bus)
    publisher = BusPublisher(servers, Spool(Path(options.spool), max_bytes=options.spool_max_mb << 20), node)
    print(f"bindrift: ingest publishing to {','.join(servers)}", file=sys.stderr, flush=True)
    return publisher


def _read_input(run: IngestRun, options: IngestOptions) -> None:
    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    stream: BinaryIO
    with (
        sys.stdin.buffer if options.input_file == "-" else open(options.input_file, "rb") as stream,
        contextlib.suppress(KeyboardInterrupt),  # stopped: the summary still tells what was read
    ):
        run.read(stream)


def _serve(run: IngestRun, extra: list[CollectorRegistry], options: IngestOptions) -> None:
    from bindrift.ingest.metrics import IngestMetrics
    from bindrift.ingest.server import IngestServer
    from bindrift.sensors.ingest.http import Limits
    from bindrift.sinks.api.auth import load_tokens

    assert options.listen is not None
    tokens = load_tokens(options.tokens_file)
    if not len(tokens):
        raise ValueError("the HTTP input needs tokens: --tokens-file (an `admin NAME SECRET` line per sender) or "
                         "BINDRIFT_ADMIN_TOKEN")  # fmt: skip
    limits = Limits(max_body=options.max_request_bytes, max_lines=options.max_request_lines, rate=options.rate,
                    burst=max(2 * options.rate, options.max_request_lines))  # fmt: skip
    IngestServer(run, IngestMetrics(run, extra)).serve(*options.listen, tokens, limits)


def _finish(run: IngestRun, extra: list[CollectorRegistry], options: IngestOptions) -> int:
    """The metrics file (prometheus-client imported only then) and the summary; the exit status."""
    if options.metrics_file:
        from bindrift.ingest.metrics import IngestMetrics

        IngestMetrics(run, extra).write(options.metrics_file)
    print(run.summary(), file=sys.stderr, flush=True)
    return run.exit_status()


def _then(batcher: DetectionBatcher, close_store: Callable[[], None]) -> Callable[[], None]:
    """Store what is still waiting, then close the store."""

    def close() -> None:
        try:
            batcher.close()
        finally:
            close_store()

    return close
