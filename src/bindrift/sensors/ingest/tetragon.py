"""Tetragon's JSON export (one `GetEventsResponse` per line, protojson: snake_case keys, uint64 values as
strings, zero values omitted). `process_exec` is an execution; a `process_kprobe` on
`security_file_permission` with MAY_WRITE in its mask, or on a truncate hook, is a write of its file
argument. Other event types are filtered."""

from __future__ import annotations

import re
import shlex

import msgspec

from bindrift.schema.external_event import ExternalEvent, ExternalProcess, FactValue, Tool, ToolVerdict
from bindrift.sensors.ingest.common import (
    IngestStats,
    MalformedEventError,
    cached_label,
    container_id,
    number,
    rfc3339_ns,
)

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


class _PidOnly(msgspec.Struct, frozen=True, gc=False):
    pid: Num = None


class _ParentPod(msgspec.Struct, frozen=True, gc=False):
    container: _PidOnly | None = None


class _Parent(msgspec.Struct, frozen=True, gc=False):
    """A parent or ancestor: what the lineage shows (its image, labels and binary properties left undecoded)."""

    pod: _ParentPod | None = None
    pid: Num = None
    uid: Num = None
    cwd: str = ""
    binary: str = ""
    arguments: str = ""


class _Exec(msgspec.Struct, frozen=True, gc=False):
    process: _Process | None = None
    parent: _Parent | None = None
    ancestors: list[_Parent] = msgspec.field(default_factory=list)


class _PathArg(msgspec.Struct, frozen=True, gc=False):
    path: str = ""


class _KprobeArg(msgspec.Struct, frozen=True, gc=False):
    file_arg: _PathArg | None = None
    path_arg: _PathArg | None = None
    int_arg: Num = None


class _Kprobe(msgspec.Struct, frozen=True, gc=False):
    process: _Process | None = None
    parent: _Parent | None = None
    ancestors: list[_Parent] = msgspec.field(default_factory=list)
    function_name: str = ""
    policy_name: str = ""
    args: list[_KprobeArg] = msgspec.field(default_factory=list)


class _Response(msgspec.Struct, frozen=True, gc=False):
    process_exec: _Exec | None = None
    process_kprobe: _Kprobe | None = None
    node_name: str = ""
    time: str = ""


_DECODER = msgspec.json.Decoder(_Response)
MAX_PROCESSES = 4096
_PROCESSES: dict[tuple[Num, Num, str, str, str, Num], ExternalProcess] = {}
_MEMFD = ToolVerdict(drift="memfd", field="binary_properties.file.inode.links=0")
_NO_VERDICT = ToolVerdict()
_NO_POD, _NO_CONTAINER, _NO_IMAGE = _Pod(), _Container(), _Image()
_KEPT_TYPES = (b"process_exec", b"process_kprobe")
_WORDS = re.compile(r'"([^"]*)"|([^\s"]+)')
_LABELS: dict[bytes, str] = {}
_KPROBE_LABELS: dict[bytes, str] = {}
_EXEC_START = b'{"process_exec":'
_FUNCTION = b'"function_name"'
_FIRST_KEY = re.compile(rb'\s*\{\s*"(process_[a-z_]{1,48})"\s*:')
_EVENT_TYPE = re.compile(rb"process_[a-z_]{1,48}")
_WRITE_CANDIDATES = frozenset(f.encode() for f in (*WRITE_HOOKS, PERMISSION_HOOK))


def _filtered_raw(line: bytes) -> str:
    """The event type to count when the raw bytes plainly say bindrift never keeps the line, '' when in doubt.
    protojson writes the event first (`{"process_exit":{…`), so the first key names it (the decode refuses a
    line whose first key is another event type than the one it finds); a kprobe's `"function_name"` key (a
    `"` inside a string is escaped), when it is the line's only one, names a hook that is not a write."""
    if not line.startswith(b'{"process_') or line.startswith(_EXEC_START):
        return ""
    end = line.find(b'"', 10, 64)
    if end < 0 or line[end + 1 : end + 2] != b":":
        return ""
    key = line[2:end]
    label = _LABELS.get(key)  # only event types already found ignorable are cached
    if label is not None:
        return label
    if key == b"process_kprobe":
        return _kprobe_raw(line)
    if key in _KEPT_TYPES or _EVENT_TYPE.fullmatch(key) is None:  # as the decode's label (`_FIRST_KEY`) reads it
        return ""
    return cached_label(_LABELS, key, lambda: key.decode("ascii"))


def _kprobe_raw(line: bytes) -> str:
    """`process_kprobe <function>` for a hook that is neither a write nor the permission check, else ''."""
    at = line.find(_FUNCTION)
    start = at + len(_FUNCTION) + 2
    if at < 0 or line[at - 1 : at] not in (b"{", b",") or line[start - 2 : start] != b':"':
        return ""
    if line.find(_FUNCTION, start) >= 0:  # another one: which is the event's is the decode's to say
        return ""
    end = line.find(b'"', start, start + 128)
    if end < 0:
        return ""
    function = line[start:end]
    if function in _WRITE_CANDIDATES or b"\\" in function:
        return ""
    return _KPROBE_LABELS.get(function) or cached_label(
        _KPROBE_LABELS, function, lambda: f"process_kprobe {function.decode('utf-8', 'replace')[:64]}"
    )


def _check_first_key(line: bytes, found: str) -> None:
    """A line whose first key is another event type than the one decoded holds two events (protojson writes one
    of them): refused, as the raw filter reads the first."""
    first = _FIRST_KEY.match(line)
    if first is not None and first.group(1) != found.encode():
        raise MalformedEventError("more than one event type", f"{first.group(1).decode()} and {found}")


def _args(process: _Process | _Parent) -> list[str]:
    """argv: the binary, then `arguments` (one string, argv[0] excluded, an argument with spaces in double
    quotes, as Tetragon writes them). Without single quotes or backslashes, a split or one regex gives shlex's
    words 20 times faster (shlex was 85% of this adapter's time, measured)."""
    arguments = process.arguments
    if '"' not in arguments and "'" not in arguments and "\\" not in arguments:
        rest = arguments.split()
    elif "'" not in arguments and "\\" not in arguments:
        rest = [quoted or plain for quoted, plain in _WORDS.findall(arguments)]
    else:
        try:
            rest = shlex.split(arguments)
        except ValueError:
            rest = arguments.split()
    return [process.binary, *rest] if process.binary else rest


def _process(process: _Process | _Parent) -> ExternalProcess:
    """The process in bindrift's shape; the same one seen again (a parent of many, a process of several
    events) is taken from a bounded cache keyed by every field it is made of (4x cheaper than building it)."""
    container = process.pod.container if process.pod else None
    key = (process.pid, container.pid if container else None, process.binary, process.arguments, process.cwd,
           process.uid)  # fmt: skip
    found = _PROCESSES.get(key)
    if found is None:
        found = _new_process(process)
        if len(_PROCESSES) >= MAX_PROCESSES:
            _PROCESSES.clear()
        _PROCESSES[key] = found
    return found


def _new_process(process: _Process | _Parent) -> ExternalProcess:
    """The process in bindrift's shape, built: an exec's own process is new (its exec_id is seen once), so it
    is not looked up in the cache; it enters it when it is a parent."""
    pod, binary, pid, uid = process.pod, process.binary, process.pid, process.uid
    container = pod.container if pod is not None else None
    vpid = container.pid if container is not None else 0
    # Positional, as ExternalProcess declares them: pid, vpid, comm, exe, args, cwd, user, uid (3x cheaper).
    return ExternalProcess(
        pid if type(pid) is int else number(pid), vpid if type(vpid) is int else number(vpid),
        binary.rpartition("/")[2], binary, _args(process), process.cwd, "",
        uid if type(uid) is int else number(uid, -1),
    )  # fmt: skip


def _written_path(kprobe: _Kprobe) -> tuple[str, str]:
    """(the written file, "") or ("", the kind of kprobe ignored)."""
    function = kprobe.function_name
    if function == PERMISSION_HOOK:
        masks = [number(arg.int_arg) for arg in kprobe.args if arg.int_arg is not None]
        if not (masks and masks[0] & MAY_WRITE):
            return "", f"process_kprobe {PERMISSION_HOOK} (not for writing)"
    elif function not in WRITE_HOOKS:
        return "", f"process_kprobe {function[:64]}"
    paths = [arg.file_arg.path if arg.file_arg else arg.path_arg.path if arg.path_arg else "" for arg in kprobe.args]
    return next((p for p in paths if p), ""), ""


class TetragonAdapter:
    """Tetragon JSON events → exec and write events."""

    tool: Tool = "tetragon"
    grouped = False

    def __init__(self) -> None:
        self.stats = IngestStats()

    def feed(self, line: bytes) -> list[ExternalEvent]:
        if ignored := _filtered_raw(line):
            self.stats.ignore(ignored)
            return []
        try:
            response = _DECODER.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedEventError("not a Tetragon event", str(exc)) from exc
        found: _Exec | _Kprobe | None = response.process_exec
        if found is not None:
            if not line.startswith(_EXEC_START):
                _check_first_key(line, "process_exec")
            process = found.process
            if process is None:
                raise MalformedEventError("Tetragon event without its process")
            kind, path, function = "exec", process.binary, ""
            if not path:
                raise MalformedEventError("process_exec without process.binary")
        elif (found := response.process_kprobe) is not None:
            _check_first_key(line, "process_kprobe")
            if not found.function_name:
                raise MalformedEventError("process_kprobe without function_name")
            (path, ignored), kind, function = _written_path(found), "write", found.function_name
            if ignored:
                self.stats.ignore(ignored)
                return []
            if not path:
                raise MalformedEventError("process_kprobe write without a file argument")
            process = found.process
            if process is None:
                raise MalformedEventError("Tetragon event without its process")
        else:
            first = _FIRST_KEY.match(line)  # the event type, as the raw filter names it
            self.stats.ignore(first.group(1).decode() if first else "neither process_exec nor process_kprobe")
            return []
        when = response.time or process.start_time
        if not when:
            raise MalformedEventError("Tetragon event without a time")
        return [self._event(response, kind, path, function, process, found.parent, found.ancestors, when)]

    def _event(self, response: _Response, kind: str, path: str, function: str, process: _Process,
               parent: _Parent | None, ancestors: list[_Parent], when: str) -> ExternalEvent:  # fmt: skip
        pod = process.pod or _NO_POD
        container = pod.container or _NO_CONTAINER
        image = container.image or _NO_IMAGE
        facts: dict[str, FactValue] = {"exec_id": process.exec_id}
        if process.in_init_tree is not None:
            facts["in_init_tree"] = process.in_init_tree
        verdict = _NO_VERDICT
        if (properties := process.binary_properties) is not None and properties.file and properties.file.inode:
            links = properties.file.inode.links
            if links is not None:
                facts["binary_properties.file.inode.links"] = number(links)
                if kind == "exec" and number(links, -1) == 0:
                    verdict = _MEMFD  # a memory-only executable
        if function:
            facts["function_name"] = function
        parents = [_process(parent)] if parent is not None else []
        if ancestors:
            parents += [_process(p) for p in ancestors]
        image_id = image.id
        execution = kind == "exec"
        # Positional, in ExternalEvent's order (five times cheaper than keywords for its 18 fields).
        return ExternalEvent(
            "tetragon", "exec" if execution else "write", rfc3339_ns(when), path,
            _new_process(process) if execution else _process(process), parents, response.node_name,
            container_id(container.id or process.docker), container.name, image.name,
            image_id.partition("@")[2] if "@" in image_id else "", pod.name, pod.namespace, "", b"", verdict,
            "process_exec" if execution else f"process_kprobe {function}", facts,
        )  # fmt: skip

    def flush(self) -> list[ExternalEvent]:
        return []
