"""Falco alerts (`json_output: true`, one object per line) and the same JSON as Falco's `http_output` or
Falcosidekick forward it. Only the `output_fields` keys bindrift uses are decoded; the rest is skipped.

Exec: `evt.type` execve/execveat, an `evt.arg.flags` / `proc.is_exe_*` field (only exec events carry
them), or one of Falco's default rules built on `spawned_process`. Write: `evt.type` open/openat/openat2/
creat with a file `fd.name`, or a default rule built on `open_write`. Everything else is filtered.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bindrift.schema.external_event import Drift, ExternalEvent, ExternalProcess, FactValue, ToolVerdict
from bindrift.sensors.ingest.common import (
    IngestStats,
    MalformedEventError,
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


class _KindFields(msgspec.Struct, frozen=True, gc=False):
    """The `output_fields` that decide whether an alert is an execution or a write."""

    evt_type: str | None = _f("evt.type")
    evt_arg_flags: str | None = _f("evt.arg.flags")
    evt_is_open_write: Flag = _f("evt.is_open_write")
    fd_name: str | None = _f("fd.name")
    upper: Flag = _f("proc.is_exe_upper_layer")
    memfd: Flag = _f("proc.is_exe_from_memfd")


class _Head(msgspec.Struct, frozen=True, gc=False):
    """What the fast path decodes to filter a line (about 4x cheaper than the full decode)."""

    rule: str = ""
    source: str | None = None
    output_fields: _KindFields | None = None


_DECODER = msgspec.json.Decoder(_Alert)
_HEAD = msgspec.json.Decoder(_Head)


def _flag(value: Flag) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    return None


def _kind(rule: str, fields: _KindFields | _Fields) -> str:
    evt_type = text(fields.evt_type)
    if evt_type in EXEC_TYPES:
        return "exec"
    if evt_type in WRITE_TYPES:
        return "write" if text(fields.fd_name).startswith("/") and _flag(fields.evt_is_open_write) is not False else ""
    if evt_type:
        return ""
    if text(fields.evt_arg_flags).startswith("EXE_") or fields.upper is not None or fields.memfd is not None:
        return "exec"
    if rule in EXEC_RULES:
        return "exec"
    if rule in WRITE_RULES and text(fields.fd_name).startswith("/"):
        return "write"
    return ""


def _verdict(alert: _Alert, fields: _Fields) -> ToolVerdict:
    flags = fields.evt_arg_flags or ""
    drift: Drift = ""
    field = ""
    if fields.memfd is True or fields.memfd == "true":
        drift, field = "memfd", "proc.is_exe_from_memfd=true"
    elif "EXE_FROM_MEMFD" in flags:
        drift, field = "memfd", f"evt.arg.flags={flags}"
    elif fields.upper is True or fields.upper == "true":
        drift, field = "upper-layer", "proc.is_exe_upper_layer=true"
    elif "EXE_UPPER_LAYER" in flags:
        drift, field = "upper-layer", f"evt.arg.flags={flags}"
    elif alert.rule == UPPER_RULE:
        drift, field = "upper-layer", f"rule={UPPER_RULE}"
    elif alert.rule == MEMFD_RULE:
        drift, field = "memfd", f"rule={MEMFD_RULE}"
    return ToolVerdict(rule=alert.rule, priority=alert.priority, drift=drift, field=field)


def _facts(alert: _Alert, f: _Fields) -> dict[str, FactValue]:
    """The raw fields kept as evidence: those present, wrapped durations turned back into signed ones."""
    facts: dict[str, FactValue] = {}
    if f.evt_arg_flags:
        facts["evt.arg.flags"] = f.evt_arg_flags
    for key, value in (
        ("proc.is_exe_upper_layer", f.upper),
        ("proc.is_exe_lower_layer", f.lower),
        ("proc.is_exe_writable", f.writable),
        ("proc.is_exe_from_memfd", f.memfd),
        ("fd.is_upper_layer", f.fd_is_upper_layer),
        ("evt.is_open_exec", f.evt_is_open_exec),
    ):
        if value is not None and (flag := _flag(value)) is not None:
            facts[key] = flag
    if isinstance(f.ctime_to_start, int):
        facts["proc.exe_ino.ctime_duration_proc_start"] = signed64(f.ctime_to_start)
    if isinstance(f.ctime_to_pidns, int):
        facts["proc.exe_ino.ctime_duration_pidns_start"] = signed64(f.ctime_to_pidns)
    if isinstance(f.loginuid, int):
        facts["user.loginuid"] = f.loginuid
    if alert.uuid:
        facts["uuid"] = alert.uuid
    return facts


def _parents(fields: _Fields) -> list[ExternalProcess]:
    parents = []
    pname, pexepath = text(fields.pname), text(fields.pexepath)
    if pname or pexepath or fields.ppid:
        parents.append(ExternalProcess(pid=number(fields.ppid), comm=pname, exe=pexepath))
    if fields.aname2 is None:
        return parents
    for name, pid in ((fields.aname2, fields.apid2), (fields.aname3, fields.apid3), (fields.aname4, fields.apid4)):
        if not text(name):
            break
        parents.append(ExternalProcess(pid=number(pid), comm=text(name)))
    return parents


def _without_na(fields: _Fields | None) -> _Fields | None:
    if fields is None:
        return None
    missing = {name: None for name in fields.__struct_fields__ if getattr(fields, name) == "<NA>"}
    return msgspec.structs.replace(fields, **missing) if missing else fields


def _int(value: Num, default: int = 0) -> int:
    return value if isinstance(value, int) else number(value, default)


class FalcoAdapter:
    """Falco JSON alerts → exec and write events."""

    def __init__(self) -> None:
        self.stats = IngestStats()

    def feed(self, line: bytes) -> list[ExternalEvent]:
        try:
            head = _HEAD.decode(line)
            if head.output_fields is None:
                raise MalformedEventError("Falco alert without output_fields")
            kind = _kind(head.rule, head.output_fields) if head.source in (None, "syscall") else ""
            if not kind:
                return []
            alert = _DECODER.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedEventError(f"not a Falco alert: {exc}") from exc
        if b"<NA>" in line:  # older Falco wrote it for a missing value: the same as null
            alert = msgspec.structs.replace(alert, output_fields=_without_na(alert.output_fields))
        return [self._convert(alert, kind)]

    @staticmethod
    def _convert(alert: _Alert, kind: str) -> ExternalEvent:
        f = alert.output_fields
        if f is None:
            raise MalformedEventError("Falco alert without output_fields")
        if isinstance(f.evt_time, int):
            time_ns = f.evt_time
        elif alert.time:
            time_ns = rfc3339_ns(alert.time)
        else:
            raise MalformedEventError("Falco alert without evt.time or time")
        argv0 = f.exe or ""
        exe = f.exepath or (argv0 if argv0.startswith("/") else "")
        cmdline = f.cmdline or ""
        process = ExternalProcess(
            pid=_int(f.pid), vpid=_int(f.vpid), comm=f.name or "", exe=exe, args=cmdline.split(" ") if cmdline else [],
            cwd=f.cwd or "", user=f.user_name or "", uid=_int(f.user_uid, -1),
        )  # fmt: skip
        image = f.image or (f"{f.repository}:{f.tag}" if f.repository and f.tag else f.repository or "")
        return ExternalEvent(
            tool="falco", kind="exec" if kind == "exec" else "write", time_ns=time_ns,
            path=exe if kind == "exec" else f.fd_name or "", process=process, parents=_parents(f),
            node=alert.hostname, container_id=container_id(f.container_full_id or f.container_id),
            container_name=f.container_name or "", image=image, image_digest=f.digest or "", pod=f.pod or "",
            namespace=f.namespace or "", verdict=_verdict(alert, f),
            source_event=f"rule: {alert.rule}" if alert.rule else f.evt_type or "", facts=_facts(alert, f),
        )  # fmt: skip

    def flush(self) -> list[ExternalEvent]:
        return []
