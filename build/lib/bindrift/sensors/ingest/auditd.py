"""Raw auditd logs (`type=X msg=audit(<sec>.<ms>:<serial>): k=v …`, optionally after `node=N `). Records
sharing a stamp form one event; a successful execve/execveat SYSCALL record makes it an execution, with
EXECVE (arguments, including `aN[i]` pieces of long ones), CWD, PATH and PROCTITLE joined in.

An event is complete at its EOE record, or once records more than `FLUSH_AFTER_S` newer have arrived (EOE
is not always written), or at the end of the input. auditd has no container field: the analysis maps the
PID to its container through `/proc/PID/cgroup`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

from bindrift.schema.external_event import ExternalEvent, ExternalProcess, FactValue
from bindrift.sensors.ingest.common import IngestStats, MalformedEventError, number

# (arch, syscall) of execve and execveat: x86_64, aarch64, i386 (and x32-less b32 on x86_64).
EXEC_SYSCALLS = {"c000003e": {59, 322}, "c00000b7": {221, 281}, "40000003": {11, 358}}
FLUSH_AFTER_S = 2.0
MAX_PENDING = 1024
MAX_ARGS = 4096
_RECORD = re.compile(rb"^(?:node=(\S+) )?type=(\S+) msg=audit\((\d+)\.(\d+):(\d+)\): ?(.*)$", re.DOTALL)
_FIELD = re.compile(rb'([A-Za-z0-9_\[\]]+)=("[^"]*"|\S*)')
_HEX = re.compile(rb"^(?:[0-9A-F]{2})+$")
_ARG = re.compile(r"^a(\d+)(?:\[(\d+)\])?$")
ENRICHED_SEPARATOR = b"\x1d"


def decode_value(raw: bytes, *, encoded: bool = False) -> str:
    """An audit field value: quoted text, unquoted upper-case hex for an encoded field (`encoded`: exe, comm,
    cwd, name, key, aN — a value with a space, quote, control or non-ASCII byte), or a plain token;
    `(null)` and `(none)` are literal."""
    if raw.startswith(b'"') and raw.endswith(b'"') and len(raw) >= 2:
        return raw[1:-1].decode("utf-8", "replace")
    if encoded and _HEX.match(raw):
        return bytes.fromhex(raw.decode("ascii")).decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _fields(body: bytes) -> dict[str, bytes]:
    body = body.split(ENRICHED_SEPARATOR, 1)[0]  # log_format=ENRICHED: resolved names follow 0x1D
    return {m.group(1).decode("ascii"): m.group(2) for m in _FIELD.finditer(body)}


@dataclass(slots=True)
class _Pending:
    seconds: float
    node: str = ""
    syscall: dict[str, bytes] = field(default_factory=dict)
    args: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    argc: int = 0
    cwd: str = ""
    program: str = ""
    proctitle: list[str] = field(default_factory=list)


class AuditdAdapter:
    """audit.log lines → exec events (grouped by their stamp)."""

    def __init__(self) -> None:
        self.stats = IngestStats()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._newest = 0.0

    def feed(self, line: bytes) -> list[ExternalEvent]:
        match = _RECORD.match(line.rstrip(b"\r\n"))
        if match is None:
            raise MalformedEventError("not an audit record")
        node, kind, sec, msec, serial, body = match.groups()
        stamp = f"{sec.decode()}.{msec.decode()}:{serial.decode()}"
        seconds = int(sec) + int(msec) / 1000
        done: list[ExternalEvent] = []
        if kind == b"EOE":
            pending = self._pending.pop(stamp, None)
            done += self._finish(stamp, pending)
        else:
            pending = self._pending.get(stamp)
            if pending is None:
                pending = self._pending[stamp] = _Pending(seconds, node.decode("utf-8", "replace") if node else "")
            self._add(pending, kind, _fields(body))
        self._newest = max(self._newest, seconds)
        while self._pending:
            oldest_stamp, oldest = next(iter(self._pending.items()))
            if oldest.seconds > self._newest - FLUSH_AFTER_S and len(self._pending) <= MAX_PENDING:
                break
            del self._pending[oldest_stamp]
            done += self._finish(oldest_stamp, oldest)
        return done

    def flush(self) -> list[ExternalEvent]:
        done: list[ExternalEvent] = []
        while self._pending:
            stamp, pending = self._pending.popitem(last=False)
            done += self._finish(stamp, pending)
        return done

    @staticmethod
    def _add(pending: _Pending, kind: bytes, fields: dict[str, bytes]) -> None:
        if kind == b"SYSCALL":
            pending.syscall = fields
        elif kind == b"EXECVE":
            if "argc" in fields:
                pending.argc = number(decode_value(fields["argc"]))
            for key, raw in fields.items():
                found = _ARG.match(key)
                if found is not None and int(found.group(1)) < MAX_ARGS:
                    index, piece = int(found.group(1)), int(found.group(2) or 0)
                    pending.args.setdefault(index, []).append((piece, decode_value(raw, encoded=True)))
        elif kind == b"CWD":
            pending.cwd = decode_value(fields.get("cwd", b""), encoded=True)
        elif kind == b"PATH" and fields.get("item") == b"0":
            pending.program = decode_value(fields.get("name", b""), encoded=True)
        elif kind == b"PROCTITLE":
            raw = fields.get("proctitle", b"")
            if _HEX.match(raw):
                pending.proctitle = [p.decode("utf-8", "replace") for p in bytes.fromhex(raw.decode()).split(b"\0")]
            else:
                pending.proctitle = [decode_value(raw, encoded=True)]

    def _finish(self, stamp: str, pending: _Pending | None) -> list[ExternalEvent]:
        """The exec event of a complete record group, or nothing (not an exec, or it failed)."""
        if pending is None or not pending.syscall:
            return []
        sc = pending.syscall
        arch, syscall = decode_value(sc.get("arch", b"")), number(decode_value(sc.get("syscall", b"-1")), -1)
        if syscall not in EXEC_SYSCALLS.get(arch, set()) or decode_value(sc.get("success", b"")) != "yes":
            return []
        args = ["".join(text for _piece, text in sorted(pending.args[i])) for i in sorted(pending.args)]
        args = args or [a for a in pending.proctitle if a]
        exe = decode_value(sc.get("exe", b""), encoded=True)
        program = pending.program if pending.program.startswith("/") else exe
        facts: dict[str, FactValue] = {
            "stamp": stamp, "arch": arch, "syscall": syscall, "auid": number(decode_value(sc.get("auid", b"-1")), -1),
            "key": decode_value(sc.get("key", b""), encoded=True), "argc": pending.argc,
            "tty": decode_value(sc.get("tty", b"")),
        }  # fmt: skip
        if pending.program and pending.program != exe:
            facts["path_name"] = pending.program
        process = ExternalProcess(
            pid=number(decode_value(sc.get("pid", b"0"))), comm=decode_value(sc.get("comm", b""), encoded=True),
            exe=exe, args=args, cwd=pending.cwd, uid=number(decode_value(sc.get("uid", b"-1")), -1),
        )  # fmt: skip
        parent = ExternalProcess(pid=number(decode_value(sc.get("ppid", b"0"))))
        return [ExternalEvent(
            tool="auditd", kind="exec", time_ns=int(stamp.partition(":")[0].replace(".", "")) * 1_000_000,
            path=exe or program, process=process, parents=[parent] if parent.pid else [], node=pending.node,
            source_event=f"SYSCALL {syscall}", facts=facts,
        )]  # fmt: skip
