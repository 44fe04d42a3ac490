"""One ingest run: an input adapter feeding the analysis, the findings going to the local pipeline or the bus,
every line accounted for (kept, rejected with a reason, ignored by kind) in the summary and the metrics."""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING, BinaryIO

import msgspec

if TYPE_CHECKING:
    from bindrift.ingest.analyser import IngestAnalyser
    from bindrift.schema.external_event import ExternalEvent
    from bindrift.schema.finding import Finding
    from bindrift.sensors.ingest.common import Adapter, IngestStats

log = logging.getLogger(__name__)
EXIT_OK, EXIT_NOTHING_READ, EXIT_WRONG_FORMAT = 0, 1, 2
SHOWN_KINDS = 8


def echo_finding(finding: Finding) -> None:
    """A stored finding as one JSON line on stdout."""
    sys.stdout.buffer.write(msgspec.json.encode(finding) + b"\n")
    sys.stdout.buffer.flush()


class IngestRun:
    """One adapter feeding one analyser (or none: `--check` only reads and counts)."""

    def __init__(self, adapter: Adapter, analyser: IngestAnalyser | None) -> None:
        self.adapter, self.analyser = adapter, analyser
        self.parse_lock = threading.Lock()  # the adapter's state (auditd groups) is one stream's
        self.failures = 0
        self.dead_lettered = 0  # of the failures: detections the store refused, set aside with their reason
        self.wrong_format = ""
        self.dropped = 0  # events parsed but not analysed: still queued when the run was stopped
        self.refused = 0  # events parsed but answered 503 (the analysis was behind): the sender retries them

    @property
    def stats(self) -> IngestStats:
        return self.adapter.stats

    def analyse(self, events: list[ExternalEvent]) -> None:
        """The findings of `events`, echoed; a failing event is counted and logged, never fatal."""
        analyser = self.analyser
        if analyser is None:
            return
        for event in events:
            try:
                for finding in analyser.handle(event):
                    echo_finding(finding)
            except Exception:  # one event or a store hiccup must not end the input; the log keeps the trace
                self.failures += 1
                log.exception("event on %s not analysed", ascii(event.path[:300]))

    def parse(self, lines: list[bytes]) -> list[ExternalEvent]:
        """One request's lines (HTTP) → events; WrongFormatError when they are plainly another tool's."""
        from bindrift.sensors.ingest.reader import feed_lines, finish

        with self.parse_lock:
            return feed_lines(self.adapter, lines, check=True) + finish(self.adapter)

    def read(self, stream: BinaryIO) -> None:
        """Every line of `stream`, analysed as it comes; a wrong format ends the run (recorded for the exit)."""
        from bindrift.sensors.ingest.common import WrongFormatError
        from bindrift.sensors.ingest.reader import read_events

        events = read_events(stream, self.adapter)
        try:
            if self.analyser is None:
                for _event in events:
                    pass
            else:
                for event in events:
                    self.analyse([event])
        except WrongFormatError as exc:
            self.wrong_format = str(exc)

    def exit_status(self) -> int:
        """2 for another tool's input, 1 when lines were read but none could be (all rejected), else 0."""
        s = self.stats
        if self.wrong_format:
            return EXIT_WRONG_FORMAT
        if s.lines and s.rejected == s.lines:
            return EXIT_NOTHING_READ
        return EXIT_OK

    def summary(self) -> str:
        """What was read and what became of it, every line accounted for; attacker-chosen kinds escaped."""
        s, a = self.stats, self.analyser
        text = (f"bindrift ingest: {s.lines} lines read, {s.kept} events kept, {s.rejected} rejected, "
                f"{s.ignored_lines} ignored")  # fmt: skip
        if self.adapter.grouped:
            text += f" ({s.kept_lines} lines make the kept events)"
        if a is not None:
            text += (f"; {a.full} analysed in full, {a.detections} findings ({a.event_only} from the event alone)"
                     + (f", {self.failures} events failed" if self.failures else "")
                     + (f" ({self.dead_lettered} set aside: bindrift findings dead-letters)" if self.dead_lettered
                        else "")
                     + (f", {self.dropped} events not analysed (stopped)" if self.dropped else "")
                     + (f", {self.refused} events refused (busy)" if self.refused else ""))  # fmt: skip
        for title, counts in (("rejected", s.reasons), ("ignored", s.ignored)):
            if counts:
                ranked = sorted(counts.items(), key=lambda item: -item[1])
                shown = ", ".join(f"{ascii(kind)[1:-1]} {n}" for kind, n in ranked[:SHOWN_KINDS])
                more = f", {len(ranked) - SHOWN_KINDS} more kinds" if len(ranked) > SHOWN_KINDS else ""
                text += f"\n  {title}: {shown}{more}"
        if self.wrong_format:
            text += f"\nbindrift ingest: error: {self.wrong_format}"
        elif self.exit_status() == EXIT_NOTHING_READ:
            text += f"\nbindrift ingest: error: none of the {s.lines} lines could be read as {self.adapter.tool} events"
        return text
