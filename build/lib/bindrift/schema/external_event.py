"""Events from another sensor (Falco, Tetragon, Tracee, auditd), normalised: what the input adapters hand to
the analysis. Only executions and file writes are kept; the tool's own verdict travels with them."""

from __future__ import annotations

from typing import Literal

import msgspec

Tool = Literal["falco", "tetragon", "tracee", "auditd"]
EventKind = Literal["exec", "write"]
# What the tool itself concluded about the file: its executable sits in the container's upper layer (Falco),
# it ran from memory (Falco memfd flags, Tetragon's zero-link inode), or a signature saw it dropped (Tracee).
Drift = Literal["", "upper-layer", "memfd", "dropped-executable"]
FactValue = str | int | bool | None


class ExternalProcess(msgspec.Struct, frozen=True, gc=False):
    """A process as the tool reported it. `pid` is the host PID (0 when the tool does not give it)."""

    pid: int = 0
    vpid: int = 0
    comm: str = ""
    exe: str = ""
    args: list[str] = msgspec.field(default_factory=list)
    cwd: str = ""
    user: str = ""
    uid: int = -1


class ToolVerdict(msgspec.Struct, frozen=True, gc=False):
    """The tool's own reading of the event: the rule or signature that fired and what it says about the file.
    `field` names the tool field (and value) behind `drift`, e.g. `proc.is_exe_upper_layer=true`."""

    rule: str = ""
    priority: str = ""
    drift: Drift = ""
    field: str = ""


class ExternalEvent(msgspec.Struct, frozen=True, gc=False):
    """One execution or file write reported by another sensor.

    `path` is the executed program or the written file, as seen inside the process's root (the container's
    file system). `container_id` is lower-case hex without a runtime prefix, possibly a 12-character prefix
    (Falco); empty for a host process. `parents` lists ancestors, nearest first. `facts` keeps the raw tool
    fields worth showing as evidence (wrapped unsigned durations already turned back into signed numbers).
    """

    tool: Tool
    kind: EventKind
    time_ns: int
    path: str
    process: ExternalProcess
    parents: list[ExternalProcess] = msgspec.field(default_factory=list)
    node: str = ""
    container_id: str = ""
    container_name: str = ""
    image: str = ""
    image_digest: str = ""
    pod: str = ""
    namespace: str = ""
    sha256: str = ""
    header: bytes = b""
    verdict: ToolVerdict = msgspec.field(default_factory=ToolVerdict)
    source_event: str = ""
    facts: dict[str, FactValue] = msgspec.field(default_factory=dict)
