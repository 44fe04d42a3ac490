"""When the agent reads the proc connector: as each event comes while the node is quiet, in batches during
an exec burst.

Read as they come, process events wake the agent two or three times per exec, and an exec is also read from
/proc at once: at 1,700 execs a second that cost an exec-heavy workload 10-15% (bench/README.md). Read in
batches, a process that exits before its batch is gone from /proc and is named by its executable only. So
events are read as they come (a `cp` in an attacker's one-liner is read in full) until a window of
WINDOW_S holds BURST_EXECS execs; from then on, every BATCH_S until a window is quiet again.
"""

from __future__ import annotations

WINDOW_S = 0.01
BURST_EXECS = 10  # in WINDOW_S: 1,000 execs a second (a container start or `podman exec` is about 8 in 50 ms)
BATCH_S = 0.002


class ProcessPacing:
    """`waiting` says whether to wake on the socket; otherwise `next_read` says when to read the batch.
    With `batch_only`, the caller reads with its own periodic work and `next_read` stays 0."""

    def __init__(self, *, batch_only: bool = False) -> None:
        self.batch_only = batch_only
        self.burst = batch_only
        self.next_read = 0.0
        self.window_start = 0.0
        self.window_execs = 0
        self.bursts = 0  # times a burst began, for the metrics and tests

    @property
    def waiting(self) -> bool:
        return not self.burst

    def due(self, now: float) -> bool:
        """A batch read is due."""
        return self.burst and not self.batch_only and now >= self.next_read

    def read(self, execs: int, now: float) -> None:
        """After a read of the socket that held `execs` exec events."""
        if self.batch_only:
            return
        if now - self.window_start >= WINDOW_S:  # a window ended: a burst goes on while windows stay busy
            if self.burst and self.window_execs < BURST_EXECS:
                self.burst = False
            self.window_start, self.window_execs = now, 0
        self.window_execs += execs
        if not self.burst and self.window_execs >= BURST_EXECS:
            self.burst = True
            self.bursts += 1
        self.next_read = now + BATCH_S if self.burst else 0.0
