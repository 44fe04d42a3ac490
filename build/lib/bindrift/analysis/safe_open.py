"""Opening attacker-controlled paths without following symlinks anywhere in them.

`O_NOFOLLOW` only guards the last path component; a directory swapped for a symlink mid-walk would
still be followed. `openat2(2)` with `RESOLVE_NO_SYMLINKS` refuses a symlink in any component, and
`RESOLVE_IN_ROOT` resolves a container path as if the container's root were `/`, so `..` and absolute
symlinks cannot leave it. Kernels older than 5.6 fall back to `O_NOFOLLOW`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Callable
from functools import lru_cache
from typing import cast

SYS_OPENAT2 = 437  # the same number on every Linux architecture (unified syscall table, 5.6+)
AT_FDCWD = -100
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


@lru_cache(maxsize=1)
def _syscall() -> Callable[..., int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_long
    return cast("Callable[..., int]", fn)


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int | None:
    """The new fd, or None when openat2 is unavailable (ENOSYS); OSError on any other failure."""
    fn = _syscall()
    if fn is None:
        return None
    how = ctypes.create_string_buffer(struct.pack("QQQ", flags, 0, resolve), 24)
    fd = int(fn(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dirfd), os.fsencode(path), how, ctypes.c_size_t(24)))
    if fd >= 0:
        return fd
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM):
        return None  # old kernel, or a seccomp filter refusing unknown syscalls: fall back
    raise OSError(err, os.strerror(err), path)


def open_nofollow(path: str | os.PathLike[str]) -> int:
    """Open `path` read-only, refusing symlinks in every component (ELOOP), without blocking on FIFOs."""
    text = os.fspath(path)
    fd = _openat2(AT_FDCWD, text, READ_FLAGS, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    return os.open(text, READ_FLAGS) if fd is None else fd


def open_beneath(dir_fd: int, path: str) -> int:
    """Open `path` below the directory `dir_fd` (an image layer) with no symlink followed anywhere and no
    escape above it. Raises OSError (ENOENT when absent, ELOOP on a symlink)."""
    fd = _openat2(
        dir_fd, path.lstrip("/") or ".", READ_FLAGS, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH
    )
    if fd is None:
        raise OSError(errno.ENOSYS, "openat2 is not available on this kernel", path)
    return fd


def open_in_root(root_fd: int, path: str) -> int:
    """Open `path` inside the directory `root_fd` as if it were `/` (a container's root file system):
    symlinks are resolved within it and `..` cannot climb out. Raises OSError when not possible safely."""
    fd = _openat2(
        root_fd, path.lstrip("/") or ".", READ_FLAGS & ~os.O_NOFOLLOW, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
    )
    if fd is None:
        raise OSError(errno.ENOSYS, "openat2 with RESOLVE_IN_ROOT is not available on this kernel", path)
    return fd
