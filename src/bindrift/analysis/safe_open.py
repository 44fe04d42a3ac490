"""Opening attacker-controlled paths without following symlinks anywhere in them.

`O_NOFOLLOW` only guards the last path component; a directory swapped for a symlink mid-walk would
still be followed. `openat2(2)` with `RESOLVE_NO_SYMLINKS` refuses a symlink in any component, and
`RESOLVE_IN_ROOT` resolves a container path as if the container's root were `/`, so `..` and absolute
symlinks cannot leave it. Kernels older than 5.6 fall back to `O_NOFOLLOW`.
"""

from __future__ import annotations

import errno
import os
import stat

from bindrift.analysis._openat2 import openat2

AT_FDCWD = -100
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int | None:
    """The new fd, or None when openat2 is unavailable (ENOSYS); OSError on any other failure."""
    try:
        return openat2(dirfd, path, flags, resolve)
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM):
            return None  # old kernel, or a seccomp filter refusing unknown syscalls: fall back
        raise


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


def open_on_mount(dir_fd: int, path: str) -> int:
    """Open the regular file `path` below the directory `dir_fd` for reading, with no symlink followed, no
    escape above it and no mount crossed (a volume or bind mount under a container root). The path is first
    opened `O_PATH` (nothing of the file itself runs: no device is opened) and only a regular file is then
    reopened through its descriptor. OSError otherwise (ELOOP on a symlink, EXDEV across a mount, EINVAL for
    anything but a regular file, ENOSYS on a kernel without openat2)."""
    resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV
    path_fd = _openat2(dir_fd, path.lstrip("/") or ".", os.O_PATH | os.O_CLOEXEC, resolve)
    if path_fd is None:
        raise OSError(errno.ENOSYS, "openat2 is not available on this kernel", path)
    try:
        if not stat.S_ISREG(os.fstat(path_fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return os.open(f"/proc/self/fd/{path_fd}", READ_FLAGS & ~os.O_NOFOLLOW)
    finally:
        os.close(path_fd)


def open_location_in_root(root_fd: int, path: str) -> int:
    """An `O_PATH` descriptor of `path` inside the directory `root_fd` (a container's root), as if it were `/`,
    with no symlink followed in any component: a location to mark or compare, never read. Raises OSError."""
    fd = _openat2(
        root_fd,
        path.lstrip("/") or ".",
        os.O_PATH | os.O_CLOEXEC,
        RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )
    if fd is None:
        raise OSError(errno.ENOSYS, "openat2 with RESOLVE_IN_ROOT is not available on this kernel", path)
    return fd
