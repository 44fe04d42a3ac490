"""One fanotify group, many containers: placing the marks of a container's mounts and routing each event back
to the mount it came through.

A container's overlay root gets a filesystem mark (its superblock is the container's own), routed by the
event descriptor's device. Every other writable mount (a volume, a bind mount, a tmpfs) gets a mount mark,
which sees only what passes through that mount — not the rest of a host file system it may share — and is
routed by the mount id of the event's descriptor (`statx` `STATX_MNT_ID`, which the standard library does
not expose, hence ctypes). A mount is opened beneath the container's root with no symlink followed, and
marked only if the mount reached is the one listed in the container's mountinfo.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar, cast

from bindrift.analysis.safe_open import open_location_in_root
from bindrift.sensors.runtime.fanotify import FanotifyGroup

T = TypeVar("T")
AT_EMPTY_PATH, STATX_MNT_ID = 0x1000, 0x1000
STATX_SIZE, STATX_MNT_ID_OFFSET = 256, 144
# Marks this agent holds at most (fs.fanotify.max_user_marks is shared by every root fanotify user of the node).
DEFAULT_MAX_MARKS = 4096


@dataclass(frozen=True, slots=True)
class MountTarget(Generic[T]):
    """A mount to watch: its id in mountinfo, its path in the container, whether it is the container's own
    root (a filesystem mark) and what events through it are routed to."""

    mount_id: int
    mountpoint: str
    whole_filesystem: bool
    owner: T


@lru_cache(maxsize=1)
def _statx() -> Callable[..., int]:
    fn = ctypes.CDLL(None, use_errno=True).statx
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    return cast("Callable[..., int]", fn)


def mount_id(fd: int) -> int:
    """The id of the mount an open descriptor is on (as in /proc/PID/mountinfo); 0 when unknown."""
    buf = ctypes.create_string_buffer(STATX_SIZE)
    if _statx()(fd, b"", AT_EMPTY_PATH, STATX_MNT_ID, buf) != 0:
        return 0
    mask = int.from_bytes(buf.raw[0:4], "little")
    return (
        int.from_bytes(buf.raw[STATX_MNT_ID_OFFSET : STATX_MNT_ID_OFFSET + 8], "little") if mask & STATX_MNT_ID else 0
    )


class MarkedGroup(Generic[T]):
    """A fanotify group and the routes of its marks, by container key."""

    def __init__(self, group: FanotifyGroup, max_marks: int = DEFAULT_MAX_MARKS) -> None:
        self.group = group
        self.max_marks = max_marks
        self._by_device: dict[int, T] = {}  # container roots (overlay: a device of their own)
        self._by_mount: dict[int, T] = {}
        self._host_devices: dict[int, T] = {}  # host paths, looked up last: a volume may share their device
        self._keys: dict[str, dict[int, tuple[str, int]]] = {}  # key → mount id → (table, route key)
        self.marks = 0
        self.unrouted = 0

    def attach(self, key: str, init_pid: int, targets: Iterable[MountTarget[T]]) -> dict[str, str]:
        """Mark each target of the container whose init process is `init_pid`; returns the mounts that could
        not be marked, with why (the others are marked and routed). Marking again is harmless."""
        failed: dict[str, str] = {}
        routes = self._keys.setdefault(key, {})
        try:
            root = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            return {"/": f"cannot open the container's root: {exc.strerror}"}
        try:
            for target in targets:
                if target.mount_id in routes:
                    continue
                if self.marks >= self.max_marks:
                    failed[target.mountpoint] = f"mark limit reached ({self.max_marks} marks held)"
                    continue
                try:
                    routes[target.mount_id] = self._mark(root, target)
                    self.marks += 1
                except OSError as exc:
                    failed[target.mountpoint] = exc.strerror or str(exc)
        finally:
            os.close(root)
        return failed

    def _mark(self, root: int, target: MountTarget[T]) -> tuple[str, int]:
        fd = open_location_in_root(root, target.mountpoint)
        try:
            found = mount_id(fd)
            if found != target.mount_id:
                raise OSError(0, f"mount {target.mountpoint} is mount {found}, not {target.mount_id} as listed")
            label = f"{target.mountpoint} (mount {found})"
            if target.whole_filesystem:
                self.group.mark_filesystem_of(fd, label)
                device = os.fstat(fd).st_dev
                self._by_device[device] = target.owner
                # Also by mount: with overlay's xino off, an image file reports its lower layer's device.
                self._by_mount[found] = target.owner
                return ("device", device)
            self.group.mark_mount_of(fd, label)
            self._by_mount[found] = target.owner
            return ("mount", found)
        finally:
            os.close(fd)

    def add_device(self, key: str, device: int, owner: T) -> None:
        """Route events on `device` (a file system marked whole by the caller, e.g. a host path) to `owner`."""
        self._host_devices[device] = owner
        self._keys.setdefault(key, {})[-device] = ("host", device)
        self.marks += 1

    def detach(self, key: str) -> None:
        """Forget a container's routes (its marks go with its mounts)."""
        tables = {"device": self._by_device, "mount": self._by_mount, "host": self._host_devices}
        for mount, (table, ident) in self._keys.pop(key, {}).items():
            tables[table].pop(ident, None)
            if table == "device":
                self._by_mount.pop(mount, None)
            self.marks -= 1

    def route(self, fd: int, device: int) -> T | None:
        """The owner of the mount an event's descriptor came through (None: counted as unrouted)."""
        owner = self._by_device.get(device)
        if owner is None and self._by_mount:
            owner = self._by_mount.get(mount_id(fd))
        if owner is None:
            owner = self._host_devices.get(device)
        if owner is None:
            self.unrouted += 1
        return owner
