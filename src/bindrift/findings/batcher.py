"""Detections that arrive one at a time (an input adapter's stream), stored in batches through the pipeline:
one transaction per `size` detections, or `linger_s` after the first one waiting, whichever comes first (a
timer flushes a stream that went quiet). A batch the store refuses is split in halves until the detection that
still fails stands alone; it is set aside as a dead letter (findings/dead_letter.py) and the rest is stored."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bindrift.bus.stream import message_id
from bindrift.findings.dead_letter import describe, encode, set_aside, store_bisected

if TYPE_CHECKING:
    from bindrift.findings.pipeline import FindingsPipeline
    from bindrift.schema.finding import Detection, Finding

log = logging.getLogger(__name__)


class DetectionBatcher:
    """`add` detections; each stored finding is handed to `on_stored`; `close` stores what is still waiting.
    `failures` counts the detections not stored, `dead_lettered` those of them set aside with their reason."""

    def __init__(self, pipeline: FindingsPipeline, on_stored: Callable[[Finding], None], *, size: int = 256,
                 linger_s: float = 0.05) -> None:  # fmt: skip
        self.pipeline, self.on_stored, self.size, self.linger_s = pipeline, on_stored, size, linger_s
        self.pending: list[Detection] = []
        self.failures = self.dead_lettered = 0
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def add(self, detection: Detection) -> None:
        with self._lock:
            self.pending.append(detection)
            if len(self.pending) >= self.size:
                self._flush()
            elif self._timer is None:
                self._timer = threading.Timer(self.linger_s, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def close(self) -> None:
        self.flush()

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self.pending = self.pending, []
        if not batch:
            return
        stored: list[Finding] = []

        def store(part: Sequence[Detection]) -> None:
            stored.extend(self.pipeline.process_batch(part))

        for detection, exc in store_bisected(batch, store):
            self.failures += 1
            log.error("detection of %s not stored: %s", ascii(detection.file.path[:300]), describe(exc))
            body = encode(detection)
            try:
                set_aside(self.pipeline, detection, body, message_id(body), describe(exc), 1, "local")
                self.dead_lettered += 1
            except Exception:  # the store refuses even that: the loss is counted and logged
                log.exception("the dead letter of %s could not be stored either", ascii(detection.file.path[:300]))
        for finding in stored:
            self.on_stored(finding)
