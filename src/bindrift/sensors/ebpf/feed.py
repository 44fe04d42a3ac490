"""The agent's choice of process sensor (`--process-sensor auto|ebpf|procfs`) and the eBPF sensor feeding
the process table: the loop polls `fileno()` and calls `read()` with its file events."""

from __future__ import annotations

import logging
from typing import Literal

from bindrift.sensors.ebpf.events import ExecEvent
from bindrift.sensors.ebpf.sensor import EbpfSensor, EbpfUnavailableError
from bindrift.sensors.runtime.process_table import ProcessTable

log = logging.getLogger(__name__)
Mode = Literal["auto", "ebpf", "procfs"]


class KernelProcessFeed:
    """The eBPF sensor's events applied to `table` as they are read."""

    source = "ebpf"

    def __init__(self, table: ProcessTable) -> None:
        self.sensor = EbpfSensor()
        self.table = table

    def fileno(self) -> int:
        return self.sensor.fileno()

    def read(self) -> list[ExecEvent]:
        """Apply what the kernel recorded since the last read; the execs among it, in order."""
        return self.table.apply(self.sensor.read())

    @property
    def lost(self) -> int:
        """Records dropped by the kernel (a full ring) or malformed."""
        return self.sensor.dropped + self.sensor.malformed

    def close(self) -> None:
        self.sensor.close()


def open_feed(mode: Mode, table: ProcessTable) -> tuple[KernelProcessFeed | None, str]:
    """The eBPF feed, or None with the reason the proc connector is used instead. `ebpf` insists: it raises
    EbpfUnavailableError where `auto` falls back."""
    if mode == "procfs":
        return None, "procfs chosen (--process-sensor procfs)"
    try:
        return KernelProcessFeed(table), ""
    except EbpfUnavailableError as exc:
        if mode == "ebpf":
            raise
        return None, f"eBPF sensor unavailable: {exc}"
