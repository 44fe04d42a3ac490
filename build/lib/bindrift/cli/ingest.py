"""`bindrift ingest`: add bindrift's analysis to another sensor's events (Falco, Tetragon, Tracee, auditd)."""

from __future__ import annotations

import signal
import sys
import threading
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, BinaryIO, cast

import typer

from bindrift.cli.common import DbOption, open_store

if TYPE_CHECKING:
    from bindrift.cli.ingest_analysis import IngestAnalyser
    from bindrift.schema.external_event import ExternalEvent
    from bindrift.schema.finding import Finding
    from bindrift.sensors.ingest.common import Adapter


class Source(StrEnum):
    """The tools `--from` accepts."""

    falco = "falco"
    tetragon = "tetragon"
    tracee = "tracee"
    auditd = "auditd"


def _echo(finding: Finding) -> None:
    import msgspec

    sys.stdout.buffer.write(msgspec.json.encode(finding) + b"\n")
    sys.stdout.buffer.flush()


class _Run:
    """One adapter feeding one analyser; safe to call from the HTTP server's worker threads."""

    def __init__(self, adapter: Adapter, analyser: IngestAnalyser) -> None:
        self.adapter, self.analyser = adapter, analyser
        self.lock = threading.Lock()
        self.failures = 0

    def events(self, events: list[ExternalEvent]) -> None:
        import logging

        for event in events:
            try:
                for finding in self.analyser.handle(event):
                    _echo(finding)
            except Exception:  # one event or a store hiccup must not end the input; the log keeps the trace
                self.failures += 1
                logging.getLogger(__name__).exception("event on %s not analysed", ascii(event.path[:300]))

    def lines(self, lines: list[bytes]) -> tuple[int, int]:
        from bindrift.sensors.ingest.reader import feed_lines, finish

        with self.lock:
            kept, rejected = self.adapter.stats.kept, self.adapter.stats.rejected
            self.events(feed_lines(self.adapter, lines))
            self.events(finish(self.adapter))
            return self.adapter.stats.kept - kept, self.adapter.stats.rejected - rejected

    def summary(self) -> str:
        s, a = self.adapter.stats, self.analyser
        return (f"bindrift ingest: {s.lines} lines read, {s.kept} events kept, {s.rejected} rejected; "
                f"{a.full} analysed in full, {a.findings} findings ({a.event_only} from the event alone)"
                + (f", {self.failures} events failed" if self.failures else ""))  # fmt: skip


def _listen_address(text: str) -> tuple[str, int]:
    """HOST:PORT, or a bare PORT on the loopback address."""
    host, _, port = text.rpartition(":")
    host = host or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def ingest(
    source: Annotated[Source, typer.Option("--from", help="The tool that wrote the events.")],
    input_file: Annotated[str, typer.Argument(metavar="[FILE|-]", help="Events file (default: stdin).")] = "-",
    db: DbOption = None,
    listen: Annotated[
        str, typer.Option(help="Serve HTTP on [HOST:]PORT instead (Falco http_output, Falcosidekick webhook).")
    ] = "",
    node_name: Annotated[str, typer.Option(help="Node name for events that do not name theirs.")] = "",
    cluster: Annotated[str, typer.Option(help="Cluster name in findings.")] = "",
) -> None:
    """Read another sensor's exec and write events (JSON lines, or audit log lines) from a file, stdin or
    HTTP; files reachable on this node get bindrift's full analysis, the rest a finding from the event alone
    when the tool says the binary drifted. Findings go to the store and, as JSON lines, to stdout."""
    import socket

    from bindrift.analysis.intel.intel_set import IntelSet, Kind
    from bindrift.cli.ingest_analysis import IngestAnalyser
    from bindrift.config import load_settings
    from bindrift.findings.pipeline import FindingsPipeline
    from bindrift.findings.severity import SeverityPolicy
    from bindrift.sensors.ingest.reader import make_adapter, read_events

    address = _listen_address(listen) if listen else None
    store = open_store(db)
    try:
        pipeline = FindingsPipeline(store, SeverityPolicy(load_settings().severity))
        intel = IntelSet([(path, cast("Kind", kind)) for path, kind in store.intel_sources()])
        analyser = IngestAnalyser(pipeline, intel, node=node_name or socket.gethostname(), cluster=cluster)
        run = _Run(make_adapter(source.value), analyser)
        if address is not None:
            _serve(run, *address)
        else:
            stream: BinaryIO
            with sys.stdin.buffer if input_file == "-" else open(input_file, "rb") as stream:
                try:
                    for event in read_events(stream, run.adapter):
                        run.events([event])
                except KeyboardInterrupt:
                    pass  # stopped by hand: the summary still tells what was read
    except OSError as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        store.close()
    print(run.summary(), file=sys.stderr, flush=True)


def _serve(run: _Run, host: str, port: int) -> None:
    import uvicorn

    from bindrift.sensors.ingest.http import make_app

    # uvicorn shuts down gracefully on SIGINT / SIGTERM, then re-raises the signal under the handlers it found:
    # these let the command go on to print its summary.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: None)
    config = uvicorn.Config(make_app(run.lines), host=host, port=port, log_level="warning", access_log=False)
    print(f"bindrift: listening on http://{host}:{port}/", file=sys.stderr, flush=True)
    uvicorn.Server(config).run()
