"""`ingest --listen`: the HTTP input (sensors/ingest/http.py) in front of one analysis thread. Requests only
parse and queue; the analysis takes the queued events one by one, so no request holds anything for long and
SIGTERM stops the run after the event in hand (what is still queued is counted as not analysed)."""

from __future__ import annotations

import logging
import queue
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bindrift.ingest.metrics import IngestMetrics
    from bindrift.ingest.run import IngestRun
    from bindrift.schema.external_event import ExternalEvent
    from bindrift.sensors.ingest.http import Limits
    from bindrift.sinks.api.auth import TokenSet

log = logging.getLogger(__name__)
QUEUED_REQUESTS = 8  # requests' worth of events waiting for the analysis: at most 8 × Limits.max_lines events
QUEUE_WAIT_S = 2.0
RETRY_AFTER_S = 5
STOP_POLL_S = 0.1
GRACE_S = 2


class IngestServer:
    """Parses each request's lines, queues its events, and analyses them on one thread."""

    def __init__(self, run: IngestRun, metrics: IngestMetrics, *, queued_requests: int = QUEUED_REQUESTS) -> None:
        self.run, self.metrics = run, metrics
        self.queue: queue.Queue[list[ExternalEvent]] = queue.Queue(maxsize=queued_requests)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._analyse, name="bindrift-ingest-analysis", daemon=True)

    def consume(self, lines: list[bytes]) -> tuple[int, dict[str, object]]:
        """One request: 202 with its counts once its events are queued; 400 for nothing readable or another
        tool's format; 503 with Retry-After when the analysis is too far behind."""
        from bindrift.sensors.ingest.common import WrongFormatError

        stats = self.run.stats
        before = (stats.kept, stats.rejected, stats.ignored_lines)
        try:
            events = self.run.parse(lines)
        except WrongFormatError as exc:
            return 400, {"error": str(exc)}
        kept, rejected, ignored = (now - then for now, then in zip(
            (stats.kept, stats.rejected, stats.ignored_lines), before, strict=True))  # fmt: skip
        answer: dict[str, object] = {"kept": kept, "rejected": rejected, "ignored": ignored}
        if not lines or (rejected and rejected == len(lines)):
            return 400, answer
        if events and not self._put(events):
            self.run.refused += len(events)
            return 503, {**answer, "error": "the analysis is behind: retry later", "retry_after": RETRY_AFTER_S}
        return 202, answer

    def _put(self, events: list[ExternalEvent]) -> bool:
        """Queues `events`, waiting up to QUEUE_WAIT_S for room (but never past a stop)."""
        waited = 0.0
        while not self.stop.is_set() and waited < QUEUE_WAIT_S:
            try:
                self.queue.put(events, timeout=STOP_POLL_S)
                return True
            except queue.Full:
                waited += STOP_POLL_S
        return False

    def _analyse(self) -> None:
        while not self.stop.is_set():
            try:
                events = self.queue.get(timeout=STOP_POLL_S)
            except queue.Empty:
                continue
            for done, event in enumerate(events):
                if self.stop.is_set():
                    self.run.dropped += len(events) - done
                    break
                self.run.analyse([event])

    def serve(self, host: str, port: int, tokens: TokenSet, limits: Limits) -> None:
        """Until SIGINT / SIGTERM; then the analysis stops after its current event."""
        import uvicorn

        from bindrift.sensors.ingest.http import make_app

        # uvicorn shuts down on SIGINT / SIGTERM, then re-raises the signal under the handlers it found: these
        # let the command go on to print its summary.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda _signum, _frame: None)
        app = make_app(self.consume, tokens, limits, self.metrics.render)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=GRACE_S)  # fmt: skip
        self.thread.start()
        print(f"bindrift: listening on http://{host}:{port}/", file=sys.stderr, flush=True)
        try:
            uvicorn.Server(config).run()
        finally:
            self.stop.set()
            self.thread.join(timeout=30)
            while not self.queue.empty():
                self.run.dropped += len(self.queue.get_nowait())
