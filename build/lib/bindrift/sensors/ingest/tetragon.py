"""Tetragon's JSON export (one `GetEventsResponse` per line, protojson: snake_case keys, uint64 values as
strings, zero values omitted). `process_exec` is an execution; a `process_kprobe` on
`security_file_permission` with MAY_WRITE in its mask, or on a truncate hook, is a write of its file
argument. Other event types are filtered."""

from __future__ import annotations

import shlex

import msgspec

from bindrift.schema.external_event import ExternalEvent, ExternalProcess, FactValue, ToolVerdict
from bindrift.sensors.ingest.common import IngestStats, MalformedEventError, container_id, number, rfc3339_ns

MAY_WRITE = 2
WRITE_HOOKS = frozenset({"security_file_truncate", "security_path_truncate"})
PERMISSION_HOOK = "security_file_permission"
Num = int | str | None  # uint64s arrive as decimal strings


class _Image(msgspec.Struct, frozen=True, gc=False):
    id: str = ""
    name: str = ""


class _Container(msgspec.Struct, frozen=True, gc=False):
    id: str = ""
    name: str = ""
    image: _Image | None = None
    pid: Num = None


class _Pod(msgspec.Struct, frozen=True, gc=False):
    namespace: str = ""
    name: str = ""
    container: _Container | None = None


class _Inode(msgspec.Struct, frozen=True, gc=False):
    number: Num = None
    links: Num = None


class _ExeFile(msgspec.Struct, frozen=True, gc=False):
    inode: _Inode | None = None
    path: str = ""


class _BinaryProperties(msgspec.Struct, frozen=True, gc=False):
    file: _ExeFile | None = None


class _Process(msgspec.Struct, frozen=True, gc=False):
    exec_id: str = ""
    pid: Num = None
    uid: Num = None
    auid: Num = None
    cwd: str = ""
    binary: str = ""
    arguments: str = ""
    start_time: str = ""
    docker: str = ""
    in_init_tree: bool | None = None
    pod: _Pod | None = None
    binary_properties: _BinaryProperties | None = None


class _Exec(msgspec.Struct, frozen=True, gc=False):
    process: _Process | None = None
    parent: _Process | None = None
    ancestors: list[_Process] = msgspec.field(default_factory=list)


class _PathArg(msgspec.Struct, frozen=True, gc=False):
    path: str = ""


class _KprobeArg(msgspec.Struct, frozen=True, gc=False):
    file_arg: _PathArg | None = None
    path_arg: _PathArg | None = None
    int_arg: Num = None


class _Kprobe(msgspec.Struct, frozen=True, gc=False):
    process: _Process | None = None
    parent: _Process | None = None
    ancestors: list[_Process] = msgspec.field(default_factory=list)
    function_name: str = ""
    policy_name: str = ""
    args: list[_KprobeArg] = msgspec.field(default_factory=list)


class _Response(msgspec.Struct, frozen=True, gc=False):
    process_exec: _Exec | None = None
    process_kprobe: _Kprobe | None = None
    node_name: str = ""
    time: str = ""


_DECODER = msgspec.json.Decoder(_Response)


def _args(process: _Process) -> list[str]:
    """argv: the binary, then `arguments` (one string, argv[0] excluded, quoted where an argument has spaces)."""
    try:
        rest = shlex.split(process.arguments)
    except ValueError:
        rest = process.arguments.split()
    return [process.binary, *rest] if process.binary else rest


def _process(process: _Process) -> ExternalProcess:
    container = process.pod.container if process.pod else None
    return ExternalProcess(
        pid=number(process.pid), vpid=number(container.pid) if container else 0,
        comm=process.binary.rsplit("/", 1)[-1], exe=process.binary, args=_args(process), cwd=process.cwd,
        uid=number(process.uid, -1),
    )  # fmt: skip


def _written_path(kprobe: _Kprobe) -> str:
    paths = [arg.file_arg.path if arg.file_arg else arg.path_arg.path if arg.path_arg else "" for arg in kprobe.args]
    path = next((p for p in paths if p), "")
    if kprobe.function_name in WRITE_HOOKS:
        return path
    if kprobe.function_name == PERMISSION_HOOK:
        masks = [number(arg.int_arg) for arg in kprobe.args if arg.int_arg is not None]
        return path if masks and masks[0] & MAY_WRITE else ""
    return ""


class TetragonAdapter:
    """Tetragon JSON events → exec and write events."""

    def __init__(self) -> None:
        self.stats = IngestStats()

    def feed(self, line: bytes) -> list[ExternalEvent]:
        try:
            response = _DECODER.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedEventError(f"not a Tetragon event: {exc}") from exc
        found: _Exec | _Kprobe
        if response.process_exec is not None:
            found = response.process_exec
            kind, path, function = "exec", found.process.binary if found.process else "", ""
        elif response.process_kprobe is not None:
            found = response.process_kprobe
            kind, path, function = "write", _written_path(found), found.function_name
        else:
            return []
        process = found.process
        if process is None:
            raise MalformedEventError("Tetragon event without its process")
        if not path:
            return []
        when = response.time or process.start_time
        if not when:
            raise MalformedEventError("Tetragon event without a time")
        return [self._event(response, kind, path, function, process, found.parent, found.ancestors, when)]

    def _event(self, response: _Response, kind: str, path: str, function: str, process: _Process,
               parent: _Process | None, ancestors: list[_Process], when: str) -> ExternalEvent:  # fmt: skip
        pod = process.pod or _Pod()
        container = pod.container or _Container()
        image = container.image or _Image()
        links = process.binary_properties.file.inode.links if (
            process.binary_properties and process.binary_properties.file and process.binary_properties.file.inode
        ) else None  # fmt: skip
        memory_only = kind == "exec" and links is not None and number(links, -1) == 0
        facts: dict[str, FactValue] = {"exec_id": process.exec_id}
        if process.in_init_tree is not None:
            facts["in_init_tree"] = process.in_init_tree
        if links is not None:
            facts["binary_properties.file.inode.links"] = number(links)
        if function:
            facts["function_name"] = function
        return ExternalEvent(
            tool="tetragon", kind="exec" if kind == "exec" else "write", time_ns=rfc3339_ns(when), path=path,
            process=_process(process), parents=[_process(p) for p in (parent, *ancestors) if p is not None],
            node=response.node_name, container_id=container_id(container.id or process.docker),
            container_name=container.name, image=image.name,
            image_digest=image.id.partition("@")[2] if "@" in image.id else "", pod=pod.name,
            namespace=pod.namespace,
            verdict=ToolVerdict(drift="memfd", field="binary_properties.file.inode.links=0") if memory_only
            else ToolVerdict(),
            source_event="process_exec" if kind == "exec" else f"process_kprobe {function}", facts=facts,
        )  # fmt: skip

    def flush(self) -> list[ExternalEvent]:
        return []
