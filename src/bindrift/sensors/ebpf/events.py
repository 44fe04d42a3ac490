"""The sensor's ring-buffer records (layouts mirrored from process.bpf.c) decoded into msgspec structs.

A process image is named by `Image` (tgid, start time of its leader, exec count): a pid reused by a later
process, or the same process after another exec, is a different image. Malformed records (a size that
matches no layout) decode to None and are counted by the caller."""

from __future__ import annotations

import os
import struct

import msgspec

EXEC, FORK, EXIT, RENAME = 1, 2, 3, 4
TRUNCATED_ARGV, TRUNCATED_EXE, TRUNCATED_CWD, ARGV_UNREADABLE, EXE_DELETED = 1, 2, 4, 8, 16
ARGV_BYTES = 4096  # the documented argv bound: longer argument lists are cut (`truncated` says so)
PATH_BYTES = 512
HEADER = struct.Struct("<II IIQQ IIQQ QQ IIIIIi16s")  # struct header: 112 bytes
EXEC_TAIL = struct.Struct("<QIIII")  # ino, dev, argv_len, exe_len, cwd_len
EXE_AT = HEADER.size + EXEC_TAIL.size
CWD_AT = EXE_AT + PATH_BYTES
ARGV_AT = CWD_AT + PATH_BYTES
CUT = "…"  # stands before a path whose walk stopped early (deeper than the sensor follows)


class Image(msgspec.Struct, frozen=True):
    """One process image: stable while it runs, never the same for a reused pid or after another exec."""

    tgid: int
    exec_id: int
    start_ns: int


class ExecEvent(msgspec.Struct, frozen=True):
    """A completed exec: `exe` and `cwd` as the process's own root (its container's) names them."""

    image: Image
    parent: Image
    ts_ns: int
    uid: int
    gid: int
    ns_pid: int
    pid_ns: int
    mnt_ns: int
    cgroup_id: int
    comm: str
    exe: str
    exe_inode: int
    exe_dev: int  # as os.stat() reports st_dev
    cwd: str
    argv: list[str]
    truncated: bool = False  # argv longer than ARGV_BYTES, or unreadable


class ForkEvent(msgspec.Struct, frozen=True):
    """A new process (not a thread); it runs its parent's program until it execs."""

    image: Image
    parent: Image
    ts_ns: int
    uid: int
    gid: int
    ns_pid: int
    pid_ns: int
    mnt_ns: int
    comm: str


class RenameEvent(msgspec.Struct, frozen=True):
    """A process took a new name without an exec (a busybox applet run in a forked shell child)."""

    image: Image
    ts_ns: int
    comm: str


class ExitEvent(msgspec.Struct, frozen=True):
    """A process ended (its last thread); `status` is the wait status (exit(2) is 512)."""

    image: Image
    ts_ns: int
    status: int


Event = ExecEvent | ForkEvent | ExitEvent | RenameEvent


def user_dev(kernel_dev: int) -> int:
    """A kernel dev_t (major << 20 | minor) as os.stat() reports it."""
    return os.makedev(kernel_dev >> 20, kernel_dev & 0xFFFFF)


def _path(area: bytes, length: int, cut: bool) -> str:
    parts = area[: min(length, PATH_BYTES)].split(b"\0")[:-1]
    path = "/" + "/".join(part.decode(errors="replace") for part in reversed(parts))
    return CUT + path if cut else path


def argv_of(area: bytes) -> list[str]:
    """`arg0\\0arg1\\0…`: one terminator dropped, so trailing empty arguments stay."""
    if not area:
        return []
    if area.endswith(b"\0"):
        area = area[:-1]
    return [arg.decode(errors="replace") for arg in area.split(b"\0")]


def decode(raw: bytes) -> Event | None:
    """One ring-buffer record, or None when it matches no layout."""
    if len(raw) < HEADER.size:
        return None
    (kind, flags, tgid, exec_id, start, _pad, ptgid, pexec_id, pstart, _ppad, ts, cgroup, uid, gid, ns_pid,
     pid_ns, mnt_ns, status, comm_raw) = HEADER.unpack_from(raw)  # fmt: skip
    image, parent = Image(tgid, exec_id, start), Image(ptgid, pexec_id, pstart)
    comm = comm_raw.split(b"\0", 1)[0].decode(errors="replace")
    if kind == EXIT:
        return ExitEvent(image, ts, status)
    if kind == RENAME:
        return RenameEvent(image, ts, comm)
    if kind == FORK:
        return ForkEvent(image, parent, ts, uid, gid, ns_pid, pid_ns, mnt_ns, comm)
    if kind != EXEC or len(raw) < ARGV_AT:
        return None
    ino, dev, argv_len, exe_len, cwd_len = EXEC_TAIL.unpack_from(raw, HEADER.size)
    if argv_len > min(ARGV_BYTES, len(raw) - ARGV_AT):  # sent with exactly its argv bytes
        return None
    argv = argv_of(raw[ARGV_AT : ARGV_AT + argv_len])
    return ExecEvent(
        image, parent, ts, uid, gid, ns_pid, pid_ns, mnt_ns, cgroup, comm,
        exe=_path(raw[EXE_AT:CWD_AT], exe_len, bool(flags & TRUNCATED_EXE)) + (" (deleted)" if flags & EXE_DELETED
                                                                                else ""),
        exe_inode=ino, exe_dev=user_dev(dev),
        cwd=_path(raw[CWD_AT:ARGV_AT], cwd_len, bool(flags & TRUNCATED_CWD)), argv=argv,
        truncated=bool(flags & (TRUNCATED_ARGV | ARGV_UNREADABLE)),
    )  # fmt: skip
