"""Raw auditd logs (`type=X msg=audit(<sec>.<ms>:<serial>): k=v …`, optionally after `node=N `). Records
sharing a stamp form one event; a successful execve/execveat SYSCALL record makes it an execution, with
EXECVE (arguments, including `aN[i]` pieces of long ones), CWD, PATH and PROCTITLE joined in.

An event is complete at its EOE record, or once records more than `FLUSH_AFTER_S` newer have arrived (EOE
is not always written; looked for every `EXPIRY_STEP` of the log's time, the groups due then completed
together, oldest first), or at the end of the input. auditd has no container field: the analysis maps the
PID to its container through `/proc/PID/cgroup`.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable

from bindrift.schema.external_event import ExternalEvent, ExternalProcess, FactValue, Tool, ToolVerdict
from bindrift.sensors.ingest.common import IngestStats, MalformedEventError, cached_label, number

# (arch, syscall) of execve and execveat: x86_64, aarch64, i386 (and x32-less b32 on x86_64).
EXEC_SYSCALLS = {"c000003e": {59, 322}, "c00000b7": {221, 281}, "40000003": {11, 358}}
_EXECS = frozenset((arch.encode(), number) for arch, numbers in EXEC_SYSCALLS.items() for number in numbers)
FLUSH_AFTER_S = 2.0
EXPIRY_STEP = 0.25  # without EOE, a look for due groups at every new stamp cost 8% of the adapter's time
MAX_PENDING = 1024
MAX_ARGS = 4096
# The header only: the body is read (`_fields`) for the records of an exec, never for the others.
_RECORD = re.compile(rb"(?:node=(\S+) )?type=(\S+) msg=audit\(((\d+\.\d+):\d+)\): ?")
_SYSCALL = re.compile(rb"arch=([0-9a-f]+) syscall=(\d+)(?: success=(yes|no))?")
_FIELD = re.compile(rb'([A-Za-z0-9_\[\]]+)=("[^"]*"|\S*)')
# The records of an exec: each field bindrift uses found by one regex, with findall (no Match objects).
_ARGS = re.compile(rb'(?<![\w\[\]])a(\d{1,4})(?:\[(\d{1,4})\])?=(?:"([^"]*)"|(\S*))')
_ARGC = re.compile(rb"(?<!\w)argc=(\d+)")
_CWD = re.compile(rb'cwd=("[^"]*"|\S*)')
_PATH = re.compile(rb'item=(\d+) name=("[^"]*"|\S*)')
_PROCTITLE = re.compile(rb'proctitle=("[^"]*"|\S*)')
_HEX = re.compile(rb"^(?:[0-9A-F]{2})+$")
# A SYSCALL record as the kernel writes it (audit_log_exit), each value read as `_FIELD` reads it: an unquoted
# one (V) must not start with a quote, a possibly quoted one (Q) is matched atomically, quoted first.
SYSCALL_KEYS = (b"arch", b"syscall", b"success", b"ppid", b"pid", b"auid", b"uid", b"tty", b"comm", b"exe", b"key")
_SYSCALL_LAYOUT = re.compile(
    rb"arch=(V) syscall=(V)(?: success=(V) exit=V)? a0=V a1=V a2=V a3=V items=V ppid=(V) pid=(V) auid=(V) uid=(V) "
    rb"gid=V euid=V suid=V fsuid=V egid=V sgid=V fsgid=V tty=(V) ses=V comm=(Q) exe=(Q)(?: subj=V)? key=(Q)"
    .replace(b"V", rb'(?!")\S*').replace(b"Q", rb'(?>"[^"]*"|\S*)')
)  # fmt: skip
ENRICHED_SEPARATOR = b"\x1d"
_GROUPED = frozenset({b"SYSCALL", b"EXECVE", b"CWD", b"PATH", b"PROCTITLE", b"EOE"})
FAILED_EXEC = "SYSCALL exec failed"
NO_SYSCALL = "records without their SYSCALL"
_LABELS: dict[bytes, str] = {}
_NO_VERDICT = ToolVerdict()


def decode_value(raw: bytes, *, encoded: bool = False) -> str:
    """An audit field value: quoted text, unquoted upper-case hex for an encoded field (`encoded`: exe, comm,
    cwd, name, key, aN — a value with a space, quote, control or non-ASCII byte), or a plain token;
    `(null)` and `(none)` are literal."""
    if raw.startswith(b'"') and raw.endswith(b'"') and len(raw) >= 2:
        return raw[1:-1].decode("utf-8", "replace")
    if encoded and _HEX.match(raw):
        return bytes.fromhex(raw.decode("ascii")).decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _fields(body: bytes) -> dict[bytes, bytes]:
    enriched = body.find(ENRICHED_SEPARATOR)  # log_format=ENRICHED: resolved names follow 0x1D
    return dict(_FIELD.findall(body if enriched < 0 else body[:enriched]))


def _syscall_fields(body: bytes) -> tuple[bytes | None, ...]:
    """The fields of a SYSCALL record that an exec event uses (SYSCALL_KEYS, None when absent), as `_fields`
    reads them: from one match of the kernel's layout (6x cheaper than reading all thirty), else `_fields`."""
    enriched = body.find(ENRICHED_SEPARATOR)
    layout = _SYSCALL_LAYOUT.fullmatch(body if enriched < 0 else body[:enriched])
    if layout is None:
        fields = _fields(body)
        return tuple(fields.get(key) for key in SYSCALL_KEYS) if fields else ()
    return layout.groups()


def _label(key: bytes, make: Callable[[], str]) -> str:
    """A cached counting label (a node writes a few dozen record types and syscalls)."""
    return cached_label(_LABELS, key, make)


class _Pending:
    """The records of one stamp gathered so far: the fields bindrift uses of each."""

    __slots__ = ("argc", "args", "cwd", "lines", "node", "proctitle", "program", "seconds", "syscall")

    def __init__(self, seconds: float, node: str = "") -> None:
        self.seconds, self.node = seconds, node
        self.lines = self.argc = 0
        self.syscall: tuple[bytes | None, ...] = ()  # SYSCALL_KEYS' values, once the SYSCALL record is read
        self.args: dict[int, list[tuple[int, str]]] = {}
        self.cwd = self.program = ""
        self.proctitle = b""  # raw: decoded only when no EXECVE record gave the arguments


def _number(raw: bytes | None, default: int) -> int:
    """A numeric field: its token read at once, else as `decode_value` and `number` read it (quoted, odd)."""
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return number(decode_value(raw), default)


def _proctitle(raw: bytes) -> list[str]:
    """The command line of a PROCTITLE value: hex of NUL-separated arguments, or one quoted string."""
    if _HEX.match(raw):
        return [p.decode("utf-8", "replace") for p in bytes.fromhex(raw.decode()).split(b"\0")]
    return [decode_value(raw, encoded=True)]


class AuditdAdapter:
    """audit.log lines → exec events (grouped by their stamp). Every line is counted: the records of a kept
    exec as kept lines, the others ignored by record type or syscall."""

    tool: Tool = "auditd"
    grouped = True

    def __init__(self) -> None:
        self.stats = IngestStats()
        self._pending: OrderedDict[bytes, _Pending] = OrderedDict()
        # stamps whose SYSCALL is not a successful exec → (what to count their records as, seconds)
        self._skipped: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._newest = 0.0
        # no group is due before the newest record reaches this time (-inf: a table is over its bound)
        self._next_expiry = math.inf

    def feed(self, line: bytes) -> list[ExternalEvent]:
        match = _RECORD.match(line)
        if match is None:
            raise MalformedEventError("not an audit record")
        kind, stamp, when = match.group(2, 3, 4)
        seconds = float(when)
        done: list[ExternalEvent] = []
        if kind not in _GROUPED:
            label = _LABELS.get(kind) or _label(kind, lambda: f"type={kind.decode('ascii', 'replace')[:64]}")
            self.stats.ignore(label)
        else:
            skipped = self._skipped.get(stamp)
            if skipped is not None:
                self.stats.ignore(skipped[0])
            elif kind == b"EOE":
                pending = self._pending.pop(stamp, None)
                if pending is None:
                    self.stats.ignore("type=EOE")
                else:
                    pending.lines += 1
                    done += self._finish(stamp, pending)
            else:
                self._group(match, kind, stamp, seconds, line)
        if seconds > self._newest:  # noqa: PLR1730 (max() is a call: 2% of this adapter)
            self._newest = seconds
        if self._newest >= self._next_expiry:  # a group is due, or one of the tables is over its bound
            done += self._expire()
        return done

    def _group(self, match: re.Match[bytes], kind: bytes, stamp: bytes, seconds: float, line: bytes) -> None:
        """Adds a record to its stamp's group; a SYSCALL that is not a successful exec ends the group at once."""
        body_at = match.end()
        if kind == b"SYSCALL" and (head := _SYSCALL.match(line, body_at)) is not None:
            arch, number_, success = head.groups()
            if (arch, int(number_)) not in _EXECS or success != b"yes":
                label = FAILED_EXEC if (arch, int(number_)) in _EXECS else _label(arch + b":" + number_, lambda: (
                    f"SYSCALL syscall={number_.decode()} arch={arch.decode()}"))  # fmt: skip
                pending = self._pending.pop(stamp, None)
                self.stats.ignore(label, 1 + (pending.lines if pending else 0))
                self._skipped[stamp] = (label, seconds)
                self._next_expiry = min(self._next_expiry, seconds + FLUSH_AFTER_S)
                if len(self._skipped) > MAX_PENDING:
                    self._next_expiry = -math.inf
                return
        pending = self._pending.get(stamp)
        if pending is None:
            node = match.group(1)
            pending = self._pending[stamp] = _Pending(seconds, node.decode("utf-8", "replace") if node else "")
            self._next_expiry = min(self._next_expiry, seconds + FLUSH_AFTER_S)
            if len(self._pending) > MAX_PENDING:
                self._next_expiry = -math.inf
        pending.lines += 1
        self._add(pending, kind, line, body_at)

    def _expire(self) -> list[ExternalEvent]:
        """Groups complete by time (no EOE) or by the bound, oldest first."""
        done: list[ExternalEvent] = []
        horizon = self._newest - FLUSH_AFTER_S
        pending = self._pending
        self._next_expiry = math.inf
        while pending:
            stamp, oldest = next(iter(pending.items()))
            if oldest.seconds > horizon and len(pending) <= MAX_PENDING:
                self._next_expiry = oldest.seconds + FLUSH_AFTER_S + EXPIRY_STEP
                break
            del pending[stamp]
            done += self._finish(stamp, oldest)
        skipped = self._skipped
        while skipped:
            stamp, (_, seconds) = next(iter(skipped.items()))
            if seconds > horizon and len(skipped) <= MAX_PENDING:
                self._next_expiry = min(self._next_expiry, seconds + FLUSH_AFTER_S + EXPIRY_STEP)
                break
            del skipped[stamp]
        return done

    def flush(self) -> list[ExternalEvent]:
        done: list[ExternalEvent] = []
        while self._pending:
            stamp, pending = self._pending.popitem(last=False)
            done += self._finish(stamp, pending)
        self._skipped.clear()
        self._next_expiry = math.inf
        return done

    @staticmethod
    def _add(pending: _Pending, kind: bytes, line: bytes, at: int) -> None:
        """Joins the fields bindrift uses of one record (its body starts at `at`) to its exec group."""
        if kind == b"SYSCALL":
            pending.syscall = _syscall_fields(line[at:])
        elif kind == b"EXECVE":
            if (argc := _ARGC.search(line, at)) is not None:
                pending.argc = int(argc.group(1))
            args = pending.args
            for index, piece, quoted, plain in _ARGS.findall(line, at):  # an empty value reads "" either way
                if (number_ := int(index)) < MAX_ARGS:
                    value = decode_value(plain, encoded=True) if plain else quoted.decode("utf-8", "replace")
                    args.setdefault(number_, []).append((int(piece) if piece else 0, value))
        elif kind == b"CWD":
            if (cwd := _CWD.match(line, at)) is not None:
                pending.cwd = decode_value(cwd.group(1), encoded=True)
        elif kind == b"PATH":
            path = _PATH.match(line, at)
            if path is None:
                fields = _fields(line[at:])
                item, name = fields.get(b"item"), fields.get(b"name", b"")
            else:
                item, name = path.groups()
            if item == b"0":
                pending.program = decode_value(name, encoded=True)
        elif kind == b"PROCTITLE" and (title := _PROCTITLE.match(line, at)) is not None:
            pending.proctitle = title.group(1)

    def _finish(self, raw_stamp: bytes, pending: _Pending) -> list[ExternalEvent]:
        """The exec event of a complete record group, or nothing (no SYSCALL record, not an exec, or it failed),
        its lines counted either way."""
        if not pending.syscall:
            self.stats.ignore(NO_SYSCALL, pending.lines)
            return []
        arch_raw, syscall_raw, success, ppid_raw, pid, auid, uid, tty, comm, exe_raw, key = pending.syscall
        arch, syscall = decode_value(arch_raw or b""), _number(syscall_raw, -1)
        execs = EXEC_SYSCALLS.get(arch, ())
        if syscall not in execs or decode_value(success or b"") != "yes":
            self.stats.ignore(FAILED_EXEC if syscall in execs else "SYSCALL not an exec", pending.lines)
            return []
        self.stats.kept_lines += pending.lines
        stamp = raw_stamp.decode("ascii")
        args = [pieces[0][1] if len(pieces) == 1 else "".join(text for _piece, text in sorted(pieces))
                for _index, pieces in sorted(pending.args.items())]  # fmt: skip
        if not args and pending.proctitle:
            args = [a for a in _proctitle(pending.proctitle) if a]
        exe = decode_value(exe_raw or b"", encoded=True)
        program = pending.program if pending.program.startswith("/") else exe
        facts: dict[str, FactValue] = {
            "stamp": stamp, "arch": arch, "syscall": syscall, "auid": _number(auid, -1),
            "key": decode_value(key or b"", encoded=True), "argc": pending.argc, "tty": decode_value(tty or b""),
        }  # fmt: skip
        if pending.program and pending.program != exe:
            facts["path_name"] = pending.program
        # Positional, as ExternalProcess declares them: pid, vpid, comm, exe, args, cwd, user, uid (3x cheaper).
        process = ExternalProcess(_number(pid, 0), 0, decode_value(comm or b"", encoded=True), exe, args, pending.cwd,
                                  "", _number(uid, -1))  # fmt: skip
        ppid = _number(ppid_raw, 0)
        # Positional, in ExternalEvent's order (five times cheaper than keywords for its 18 fields).
        return [ExternalEvent(
            "auditd", "exec", int(stamp.partition(":")[0].replace(".", "")) * 1_000_000, exe or program, process,
            [ExternalProcess(ppid)] if ppid else [], pending.node, "", "", "", "", "", "", "", b"", _NO_VERDICT,
            f"SYSCALL {syscall}", facts,
        )]  # fmt: skip
