"""Loads the committed BPF object, attaches its programs and reads its ring buffer.

`EbpfUnavailableError` says why the sensor cannot run here (no kernel BTF, no libbpf, no CAP_BPF / CAP_PERFMON,
a kernel too old for the programs): the agent then falls back to the proc connector and says so."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from bindrift.sensors.ebpf.events import Event, decode
from bindrift.sensors.ebpf.ring import RingReader

OBJECT = Path(__file__).with_name("process.bpf.o")
KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")
# The kernel wakes a reader once per this many records; the agent also reads on its own timer, so a quiet
# node's few events wait at most that long, and an exec storm costs a wake-up per 64 records, not per one.
WAKE_EVERY = 64


class EbpfUnavailableError(Exception):
    """The sensor cannot run on this node; the message says why."""


class _Counters(ctypes.Structure):
    _fields_ = [("dropped", ctypes.c_uint64), ("submitted", ctypes.c_uint64)]


class EbpfSensor:
    """The process sensor, attached. `read()` returns the events recorded since the last read, in order;
    `dropped` counts records the kernel could not queue (a full ring), `malformed` those that decoded to
    nothing."""

    def __init__(self, path: Path = OBJECT, wake_every: int = WAKE_EVERY) -> None:
        if not KERNEL_BTF.exists():
            raise EbpfUnavailableError("the kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE cannot relocate")
        from bindrift.sensors.ebpf.libbpf import Libbpf, LibbpfError

        try:
            self.bpf = Libbpf()
        except OSError as exc:
            raise EbpfUnavailableError(f"libbpf.so.1 cannot be loaded ({exc})") from None
        self.links: list[int] = []
        self.ring: RingReader | None = None
        self.events_fd = -1
        self.malformed = 0
        self.obj = 0
        try:
            self.obj = self.bpf.pointer("bpf_object__open_file", str(path).encode(), None)
            rodata = self.bpf.pointer("bpf_object__find_map_by_name", self.obj, b".rodata")
            size = ctypes.c_size_t()
            constants = self.bpf.pointer("bpf_map__initial_value", rodata, ctypes.byref(size))
            ctypes.c_uint32.from_address(constants).value = os.getpid()  # settings.self_tgid; .wake_every (u64 at 8)
            ctypes.c_uint64.from_address(constants + 8).value = max(1, wake_every)
            self.bpf.call("bpf_object__load", self.obj)
            program = self.bpf.lib.bpf_object__next_program(self.obj, None)
            while program:
                self.links.append(self.bpf.pointer("bpf_program__attach", program))
                program = self.bpf.lib.bpf_object__next_program(self.obj, program)
            # The counters are read from the kernel's map (libbpf 1.1 maps global data to the kernel's copy
            # only for skeletons: the object's own copy stays at its initial value).
            self.bss_fd = self.bpf.call("bpf_map__fd", self.bpf.pointer("bpf_object__find_map_by_name", self.obj,
                                                                         b".bss"))  # fmt: skip
            events = self.bpf.pointer("bpf_object__find_map_by_name", self.obj, b"events")
            self.events_fd = self.bpf.call("bpf_map__fd", events)
            self.ring = RingReader(self.events_fd, self.bpf.call("bpf_map__max_entries", events))
        except LibbpfError as exc:
            why = self.bpf.messages[-3:]
            self.close()
            hint = " (needs CAP_BPF and CAP_PERFMON, or root)" if exc.errno in (errno.EPERM, errno.EACCES) else ""
            raise EbpfUnavailableError(f"{exc.strerror}{hint}; libbpf: {' | '.join(why) or '-'}") from None

    def fileno(self) -> int:
        """The ring's map: it turns readable when the kernel wakes readers (every WAKE_EVERY records)."""
        return self.events_fd

    def read(self) -> list[Event]:
        """Every record queued since the last read (bounded by the ring's size), decoded."""
        if self.ring is None:
            return []
        events = []
        for record in self.ring.read():
            event = decode(record)
            if event is None:
                self.malformed += 1
            else:
                events.append(event)
        return events

    @property
    def dropped(self) -> int:
        counters, key = _Counters(), ctypes.c_uint32(0)
        if self.bpf.lib.bpf_map_lookup_elem(self.bss_fd, ctypes.byref(key), ctypes.byref(counters)) != 0:
            return 0
        return int(counters.dropped)

    def close(self) -> None:
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        for link in self.links:
            self.bpf.lib.bpf_link__destroy(link)
        self.links = []
        if self.obj:
            self.bpf.lib.bpf_object__close(self.obj)
            self.obj = 0
