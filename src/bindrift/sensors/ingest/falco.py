"""Falco alerts (`json_output: true`, one object per line) and the same JSON as Falco's `http_output` or
Falcosidekick forward it. Only the `output_fields` keys bindrift uses are decoded; the rest is skipped.

Exec: `evt.type` execve/execveat, an `evt.arg.flags` / `proc.is_exe_*` field (only exec events carry
them), or one of Falco's default rules built on `spawned_process`. Write: `evt.type` open/openat/openat2/
creat with a file `fd.name`, or a default rule built on `open_write`. Everything else is filtered.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bindrift.schema.external_event import ExternalEvent, ExternalProcess, FactValue, Tool, ToolVerdict
from bindrift.sensors.ingest.common import (
    IngestStats,
    MalformedEventError,
    cached_label,
    container_id,
    number,
    rfc3339_ns,
    signed64,
    text,
)

EXEC_TYPES = frozenset({"execve", "execveat"})
WRITE_TYPES = frozenset({"open", "openat", "openat2", "creat"})
# Falco default rules (falco_rules.yaml, incubating and sandbox rule files) whose condition starts from
# `spawned_process` / `open_write`: their alerts are executions / writes even without `evt.type`.
EXEC_RULES = frozenset({
    "Drop and execute new binary in container", "Terminal shell in container", "Run shell untrusted",
    "Netcat Remote Code Execution in Container", "Launch Suspicious Network Tool in Container",
    "Launch Package Management Process in Container", "Launch Ingress Remote File Copy Tools in Container",
    "Launch Remote File Copy Tools in Container", "Execution from /dev/shm", "Fileless execution via memfd_create",
    "Search Private Keys or Passwords", "Find AWS Credentials", "Linux Kernel Module Injection Detected",
    "Debugfs Launched in Privileged Container", "System user interactive", "Launch Disallowed Container",
})  # fmt: skip
WRITE_RULES = frozenset({
    "Write below binary dir", "Write below monitored dir", "Write below etc", "Write below root",
    "Write below rpm database", "Schedule Cron Jobs", "Detect release_agent File Container Escapes",
})  # fmt: skip
UPPER_RULE = "Drop and execute new binary in container"
MEMFD_RULE = "Fileless execution via memfd_create"

Num = int | str | None  # older Falco wrote `<NA>` where a number was missing
Flag = bool | str | None


def _f(name: str) -> Any:
    return msgspec.field(name=name, default=None)


class _Fields(msgspec.Struct, frozen=True, gc=False):
    evt_type: str | None = _f("evt.type")
    evt_time: Num = _f("evt.time")
    evt_arg_flags: str | None = _f("evt.arg.flags")
    evt_is_open_write: Flag = _f("evt.is_open_write")
    evt_is_open_exec: Flag = _f("evt.is_open_exec")
    fd_name: str | None = _f("fd.name")
    fd_is_upper_layer: Flag = _f("fd.is_upper_layer")
    exepath: str | None = _f("proc.exepath")
    exe: str | None = _f("proc.exe")
    name: str | None = _f("proc.name")
    cmdline: str | None = _f("proc.cmdline")
    pid: Num = _f("proc.pid")
    vpid: Num = _f("proc.vpid")
    cwd: str | None = _f("proc.cwd")
    ppid: Num = _f("proc.ppid")
    pname: str | None = _f("proc.pname")
    pexepath: str | None = _f("proc.pexepath")
    aname2: str | None = _f("proc.aname[2]")
    aname3: str | None = _f("proc.aname[3]")
    aname4: str | None = _f("proc.aname[4]")
    apid2: Num = _f("proc.apid[2]")
    apid3: Num = _f("proc.apid[3]")
    apid4: Num = _f("proc.apid[4]")
    upper: Flag = _f("proc.is_exe_upper_layer")
    lower: Flag = _f("proc.is_exe_lower_layer")
    writable: Flag = _f("proc.is_exe_writable")
    memfd: Flag = _f("proc.is_exe_from_memfd")
    ctime_to_start: Num = _f("proc.exe_ino.ctime_duration_proc_start")
    ctime_to_pidns: Num = _f("proc.exe_ino.ctime_duration_pidns_start")
    user_name: str | None = _f("user.name")
    user_uid: Num = _f("user.uid")
    loginuid: Num = _f("user.loginuid")
    container_id: str | None = _f("container.id")
    container_full_id: str | None = _f("container.full_id")
    container_name: str | None = _f("container.name")
    image: str | None = _f("container.image")
    repository: str | None = _f("container.image.repository")
    tag: str | None = _f("container.image.tag")
    digest: str | None = _f("container.image.digest")
    namespace: str | None = _f("k8s.ns.name")
    pod: str | None = _f("k8s.pod.name")


class _Alert(msgspec.Struct, frozen=True, gc=False):
    rule: str = ""
    priority: str = ""
    time: str = ""
    hostname: str = ""
    source: str | None = None  # absent before Falco 0.26; Falcosidekick defaults it to syscall
    uuid: str = ""
    output_fields: _Fields | None = None


_DECODER = msgspec.json.Decoder(_Alert)
# Structural keys: a `"` inside a JSON string value is always escaped, so `,"key":` or `{"key":` can only be
# a key. Falco writes compact JSON; any other spacing is left to the full decode.
_TYPE_KEYS = (b',"evt.type":"', b'{"evt.type":"')
_WRITE_KEY = b'"evt.is_open_write":'
_WRITE_TYPES = frozenset(t.encode() for t in WRITE_TYPES)
_UNDECIDED_TYPES = frozenset(t.encode() for t in EXEC_TYPES) | {b"", b"<NA>"}
NOT_FOR_WRITING = " (not for writing)"
_LABELS: dict[bytes, str] = {}


def _filtered_raw(line: bytes) -> str:
    """The kind to count when the raw bytes plainly say bindrift never keeps the line: an `evt.type` other than
    an exec or an open (connect, read, dup2…), or an open that is not for writing; '' otherwise. Such lines,
    most of a busy node's alerts, are counted without being decoded; any doubt leaves the decision to the
    full decode."""
    at = line.find(_TYPE_KEYS[0])
    if at < 0 and (at := line.find(_TYPE_KEYS[1])) < 0:
        return ""
    start = at + len(_TYPE_KEYS[0])
    end = line.find(b'"', start, start + 64)
    if end < 0:
        return ""
    value = line[start:end]
    if value in _WRITE_TYPES:  # Falco sorts the keys: evt.is_open_write comes just before evt.type
        key = line.rfind(_WRITE_KEY, 0, at)
        if key < 0:
            key = line.find(_WRITE_KEY, end)
        if key > 0 and line[key - 1] in b"{," and line.startswith(b"false", key + len(_WRITE_KEY)):
            return _label(value, NOT_FOR_WRITING)
        return ""
    return _label(value, "") if value not in _UNDECIDED_TYPES and b"\\" not in value else ""


def _label(evt_type: bytes, suffix: str) -> str:
    """`evt.type=X` (and why an open is not kept), cached: a few dozen types cover a node's alerts."""
    key = evt_type + suffix.encode()
    # The cache looked at first: no closure made for the label of every ignored alert (the hot path).
    return _LABELS.get(key) or cached_label(
        _LABELS, key, lambda: f"evt.type={evt_type.decode('utf-8', 'replace')}{suffix}"
    )


def _flag(value: Flag) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    return None


def _kind(rule: str, fields: _Fields) -> tuple[str, str]:
    """("exec" or "write", ""), or ("", the kind of alert ignored)."""
    evt_type = text(fields.evt_type)
    if evt_type in EXEC_TYPES:
        return "exec", ""
    if evt_type in WRITE_TYPES:
        if _flag(fields.evt_is_open_write) is False:
            return "", _label(evt_type.encode(), NOT_FOR_WRITING)
        return ("write", "") if text(fields.fd_name).startswith("/") else ("", f"evt.type={evt_type} (no file path)")
    if evt_type:
        return "", _label(evt_type.encode(), "")
    if text(fields.evt_arg_flags).startswith("EXE_") or fields.upper is not None or fields.memfd is not None:
        return "exec", ""
    if rule in EXEC_RULES:
        return "exec", ""
    if rule in WRITE_RULES and text(fields.fd_name).startswith("/"):
        return "write", ""
    return "", f"rule={rule} (neither an exec nor a write)"


def _verdict(rule: str, priority: str, fields: _Fields) -> ToolVerdict:
    flags = fields.evt_arg_flags or ""
    memfd, upper = fields.memfd, fields.upper
    if memfd is True or memfd == "true":
        return ToolVerdict(rule, priority, "memfd", "proc.is_exe_from_memfd=true")
    if "EXE_FROM_MEMFD" in flags:
        return ToolVerdict(rule, priority, "memfd", f"evt.arg.flags={flags}")
    if upper is True or upper == "true":
        return ToolVerdict(rule, priority, "upper-layer", "proc.is_exe_upper_layer=true")
    if "EXE_UPPER_LAYER" in flags:
        return ToolVerdict(rule, priority, "upper-layer", f"evt.arg.flags={flags}")
    if rule == UPPER_RULE:
        return ToolVerdict(rule, priority, "upper-layer", f"rule={UPPER_RULE}")
    if rule == MEMFD_RULE:
        return ToolVerdict(rule, priority, "memfd", f"rule={MEMFD_RULE}")
    return ToolVerdict(rule, priority)


def _facts(uuid: str, f: _Fields) -> dict[str, FactValue]:
    """The raw fields kept as evidence: those present, wrapped durations turned back into signed ones."""
    facts: dict[str, FactValue] = {}
    if f.evt_arg_flags:
        facts["evt.arg.flags"] = f.evt_arg_flags
    if f.upper is not None and (flag := _flag(f.upper)) is not None:
        facts["proc.is_exe_upper_layer"] = flag
    if f.lower is not None and (flag := _flag(f.lower)) is not None:
        facts["proc.is_exe_lower_layer"] = flag
    if f.writable is not None and (flag := _flag(f.writable)) is not None:
        facts["proc.is_exe_writable"] = flag
    if f.memfd is not None and (flag := _flag(f.memfd)) is not None:
        facts["proc.is_exe_from_memfd"] = flag
    if f.fd_is_upper_layer is not None and (flag := _flag(f.fd_is_upper_layer)) is not None:
        facts["fd.is_upper_layer"] = flag
    if f.evt_is_open_exec is not None and (flag := _flag(f.evt_is_open_exec)) is not None:
        facts["evt.is_open_exec"] = flag
    if type(f.ctime_to_start) is int:
        facts["proc.exe_ino.ctime_duration_proc_start"] = signed64(f.ctime_to_start)
    if type(f.ctime_to_pidns) is int:
        facts["proc.exe_ino.ctime_duration_pidns_start"] = signed64(f.ctime_to_pidns)
    if type(f.loginuid) is int:
        facts["user.loginuid"] = f.loginuid
    if uuid:
        facts["uuid"] = uuid
    return facts


def _parents(fields: _Fields) -> list[ExternalProcess]:
    """Nearest first; `<NA>` is already None here."""
    pname, pexepath, ppid = fields.pname or "", fields.pexepath or "", fields.ppid
    parents = [ExternalProcess(_int(ppid), 0, pname, pexepath)] if pname or pexepath or ppid else []
    if not fields.aname2:
        return parents
    for name, pid in ((fields.aname2, fields.apid2), (fields.aname3, fields.apid3), (fields.aname4, fields.apid4)):
        if not name:
            break
        parents.append(ExternalProcess(_int(pid), 0, name))
    return parents


def _without_na(fields: _Fields) -> _Fields:
    missing = {name: None for name in fields.__struct_fields__ if getattr(fields, name) == "<NA>"}
    return msgspec.structs.replace(fields, **missing) if missing else fields


def _int(value: Num, default: int = 0) -> int:
    if value is None:
        return default
    return value if type(value) is int else number(value, default)


class FalcoAdapter:
    """Falco JSON alerts → exec and write events."""

    tool: Tool = "falco"
    grouped = False

    def __init__(self) -> None:
        self.stats = IngestStats()

    def feed(self, line: bytes) -> list[ExternalEvent]:
        if ignored := _filtered_raw(line):
            self.stats.ignore(ignored)
            return []
        try:
            alert = _DECODER.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedEventError("not a Falco alert", str(exc)) from exc
        fields = alert.output_fields
        if fields is None:
            raise MalformedEventError("Falco alert without output_fields")
        # Older Falco wrote `<NA>` for a missing value: the same as null. (`<` alone is found with memchr, 20
        # times faster than the 4-byte search, and is rare in an alert.)
        if b"<" in line and b"<NA>" in line:
            fields = _without_na(fields)
        if alert.source not in (None, "syscall"):
            self.stats.ignore(f"source={alert.source}")
            return []
        kind, ignored = _kind(alert.rule, fields)
        if not kind:
            self.stats.ignore(ignored)
            return []
        return [_convert(alert, fields, kind)]

    def flush(self) -> list[ExternalEvent]:
        return []


def _convert(alert: _Alert, f: _Fields, kind: str) -> ExternalEvent:
    if type(f.evt_time) is int:
        time_ns = f.evt_time
    elif alert.time:
        time_ns = rfc3339_ns(alert.time)
    else:
        raise MalformedEventError("Falco alert without evt.time or time")
    argv0 = f.exe or ""
    exe = f.exepath or (argv0 if argv0.startswith("/") else "")
    cmdline = f.cmdline
    args = cmdline.split(" ") if cmdline else []
    pid, vpid, uid = f.pid, f.vpid, f.user_uid
    # Positional, as ExternalProcess declares them: pid, vpid, comm, exe, args, cwd, user, uid (3x cheaper).
    process = ExternalProcess(
        pid if type(pid) is int else _int(pid), vpid if type(vpid) is int else _int(vpid), f.name or "", exe,
        args, f.cwd or "", f.user_name or "", uid if type(uid) is int else _int(uid, -1),
    )  # fmt: skip
    image = f.image or (f"{f.repository}:{f.tag}" if f.repository and f.tag else f.repository or "")
    rule = alert.rule
    # Positional: five times cheaper than keywords for this 18-field struct, at a rate of 100,000s a second.
    return ExternalEvent(
        "falco", "exec" if kind == "exec" else "write", time_ns,  # tool, kind, time_ns
        exe if kind == "exec" else f.fd_name or "", process, _parents(f),  # path, process, parents
        alert.hostname, container_id(f.container_full_id or f.container_id), f.container_name or "",  # node, ids
        image, f.digest or "", f.pod or "", f.namespace or "",  # image, image_digest, pod, namespace
        "", b"", _verdict(rule, alert.priority, f),  # sha256, header (the analysis fills them), verdict
        f"rule: {rule}" if rule else f.evt_type or "", _facts(alert.uuid, f),  # source_event, facts
    )  # fmt: skip
