"""fanotify through ctypes: one notification group per agent, holding a filesystem mark for each container's
overlay root and a mount mark for each of its other writable mounts (`sensors/runtime/marks.py` routes
events back to them).

Events carry an open descriptor of the file: content is read through it, never by re-opening a path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import struct
from dataclasses import dataclass

FAN_CLOEXEC, FAN_NONBLOCK, FAN_CLASS_NOTIF, FAN_CLASS_CONTENT, FAN_UNLIMITED_QUEUE = 0x1, 0x2, 0x0, 0x4, 0x10
FAN_MARK_ADD, FAN_MARK_MOUNT, FAN_MARK_FILESYSTEM = 0x1, 0x10, 0x100
FAN_CLOSE_WRITE, FAN_OPEN_EXEC, FAN_Q_OVERFLOW, FAN_OPEN_EXEC_PERM = 0x8, 0x1000, 0x4000, 0x40000
FAN_ALLOW, FAN_DENY = 0x1, 0x2
FAN_NOFD = -1
AT_FDCWD = -100
EVENT = struct.Struct("IBBHQii")
RESPONSE = struct.Struct("iI")  # struct fanotify_response: the event's fd, FAN_ALLOW or FAN_DENY
# Every event read carries a new descriptor: one read creates up to READ_SIZE / 24 of them at once.
READ_SIZE = 24 * 1024


class FanotifyError(OSError):
    """fanotify is unavailable or a mark could not be placed."""


@dataclass(frozen=True, slots=True)
class FanEvent:
    """One event: its mask, the file's open descriptor (owned by the receiver) and the acting pid."""

    mask: int
    fd: int
    pid: int

    @property
    def path(self) -> str:
        """The file's path as the event's mount sees it (container-relative for a container mark)."""
        try:
            return os.readlink(f"/proc/self/fd/{self.fd}")
        except OSError:
            return ""


def raise_descriptor_limit() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit, and return it: the kernel drops, without a word, an event
    whose descriptor cannot be created."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
    return libc


class FanotifyGroup:
    """A non-blocking notification group; `fileno()` plugs into a selector. With `permission`, a content
    class group whose permission events (`FAN_OPEN_EXEC_PERM`) wait for `respond`; the kernel allows every
    waiting one when the group is closed (or its process dies)."""

    def __init__(self, mask: int = FAN_CLOSE_WRITE | FAN_OPEN_EXEC, *, permission: bool = False) -> None:
        self._libc = _libc()
        self.mask = mask
        klass = FAN_CLASS_CONTENT if permission else FAN_CLASS_NOTIF
        # O_NOATIME: reading a file the agent was told about leaves its access time, evidence, as it was (and
        # spares the file system an inode update per event).
        fd: int = self._libc.fanotify_init(FAN_CLOEXEC | FAN_NONBLOCK | klass | FAN_UNLIMITED_QUEUE,
                                      os.O_RDONLY | os.O_LARGEFILE | os.O_CLOEXEC | os.O_NOATIME)  # fmt: skip
        if fd < 0:
            err = ctypes.get_errno()
            raise FanotifyError(err, f"fanotify_init: {os.strerror(err)}")
        self.fd: int = fd
        self.overflows = 0

    @classmethod
    def adopt(cls, fd: int, mask: int) -> FanotifyGroup:
        """A group around an existing fanotify descriptor (e.g. received from another process)."""
        group = cls.__new__(cls)
        group._libc, group.mask, group.fd, group.overflows = _libc(), mask, fd, 0
        return group

    def fileno(self) -> int:
        return self.fd

    def mark_filesystem(self, path: str) -> None:
        """Watch every file of the file system that `path` is on (a container's overlay root)."""
        self._mark(FAN_MARK_ADD | FAN_MARK_FILESYSTEM, path)

    # fanotify_mark takes no AT_EMPTY_PATH and refuses an O_PATH descriptor as the object itself: the
    # descriptor's own magic link names exactly its file and mount, with nothing else resolved.
    def mark_filesystem_of(self, fd: int, label: str) -> None:
        """Watch every file of the file system that the open (O_PATH) descriptor `fd` is on."""
        self._mark(FAN_MARK_ADD | FAN_MARK_FILESYSTEM, f"/proc/self/fd/{fd}", label)

    def mark_mount_of(self, fd: int, label: str) -> None:
        """Watch every file accessed through the mount that the open (O_PATH) descriptor `fd` is on (a volume,
        a tmpfs): only what passes through that mount, not the rest of its file system."""
        self._mark(FAN_MARK_ADD | FAN_MARK_MOUNT, f"/proc/self/fd/{fd}", label)

    def _mark(self, flags: int, path: str, label: str = "") -> None:
        if self._libc.fanotify_mark(self.fd, flags, self.mask, AT_FDCWD, os.fsencode(path)) != 0:
            err = ctypes.get_errno()
            raise FanotifyError(err, f"fanotify_mark {label or path}: {os.strerror(err)}")

    def read(self) -> list[FanEvent]:
        """Pending events (empty when none); a queue overflow is counted, not returned."""
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return []
        except OSError as exc:
            if exc.errno in (errno.EINTR, errno.EAGAIN):
                return []
            raise
        events = []
        offset = 0
        while offset + EVENT.size <= len(data):
            length, _version, _reserved, _metadata_len, mask, fd, pid = EVENT.unpack_from(data, offset)
            if length < EVENT.size:
                break
            offset += length
            if mask & FAN_Q_OVERFLOW:
                self.overflows += 1
            if fd != FAN_NOFD:
                events.append(FanEvent(mask, fd, pid))
        return events

    def respond(self, event_fd: int, allow: bool) -> None:
        """Answer a permission event (the event's descriptor stays open: the caller closes it)."""
        os.write(self.fd, RESPONSE.pack(event_fd, FAN_ALLOW if allow else FAN_DENY))

    def close(self) -> None:
        os.close(self.fd)
