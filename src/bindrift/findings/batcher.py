"""Detections that arrive one at a time (an input adapter's stream), stored in batches through the pipeline:
one transaction per `size` detections, or `linger_s` after the first one waiting, whichever comes first (a
timer flushes a stream that went quiet). A batch the store refuses is stored detection by detection, so only
the bad one fails."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bindrift.findings.pipeline import FindingsPipeline
    from bindrift.schema.finding import Detection, Finding

log = logging.getLogger(__name__)


class DetectionBatcher:
    """`add` detections; each stored finding is handed to `on_stored`; `close` stores what is still waiting."""

    def __init__(self, pipeline: FindingsPipeline, on_stored: Callable[[Finding], None], *, size: int = 256,
                 linger_s: float = 0.05) -> None:  # fmt: skip
        self.pipeline, self.on_stored, self.size, self.linger_s = pipeline, on_stored, size, linger_s
        self.pending: list[Detection] = []
        self.failures = 0
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
        try:
            stored = self.pipeline.process_batch(batch)
        except Exception:  # one bad detection must not take its batch with it
            stored = []
            for detection in batch:
                try:
                    stored.append(self.pipeline.process(detection))
                except Exception:
                    self.failures += 1
                    log.exception("detection of %s not stored", ascii(detection.file.path[:300]))
        for finding in stored:
            self.on_stored(finding)
