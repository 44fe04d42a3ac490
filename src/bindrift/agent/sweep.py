"""The startup sweep: ELF files already in a container's upper layer and writable mounts when the agent
starts or discovers it (written before anything watched them) are triaged like written ones.

The walk is a generator stepped a few milliseconds at a time from the agent's loop, so a large tree never
holds up events. It opens one path component at a time beneath an open directory with `O_NOFOLLOW` (no
symlink is followed, nothing is resolved outside the tree), stays on the starting file system, reads only
regular files and stops after MAX_ENTRIES entries per container (the rest is counted as not swept).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bindrift.analysis.safe_open import open_beneath, open_location_in_root
from bindrift.context.containers import ContainerContext

MAX_ENTRIES = 20_000
MAX_DEPTH = 32
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Found:
    """An ELF file found by the sweep: its path in the container, the mount it is on ("/" for the upper
    layer) and an open descriptor (owned by the receiver)."""

    path: str
    mountpoint: str
    fd: int


@dataclass(slots=True)
class Sweep:
    """The walk of one container; `cut_short` counts what MAX_ENTRIES left unvisited."""

    container: ContainerContext
    walk: Iterator[Found | None]
    visited: int = 0
    cut_short: bool = False


def start(container: ContainerContext) -> Sweep:
    sweep = Sweep(container, iter(()))
    sweep.walk = _walk_container(sweep)
    return sweep


def step(sweep: Sweep, budget_s: float) -> tuple[list[Found], bool]:
    """ELF files found within about `budget_s`, and whether the walk is over."""
    found: list[Found] = []
    deadline = time.monotonic() + budget_s
    for item in sweep.walk:  # None after each entry: the budget is checked between entries, not only ELF files
        if item is not None:
            found.append(item)
        if time.monotonic() >= deadline:
            return found, False
    return found, True


def _walk_container(sweep: Sweep) -> Iterator[Found | None]:
    container = sweep.container
    try:
        upper = os.open(container.upper, DIR_FLAGS)
    except OSError:
        upper = -1
    if upper >= 0:
        yield from _walk(sweep, upper, "/", "/")
    for mount in container.mounts:
        if mount.kind == "root":
            continue
        top = _open_mount(container.init_pid, mount.mountpoint)
        if top >= 0:
            yield from _walk(sweep, top, mount.mountpoint.rstrip("/") + "/", mount.mountpoint)


def _open_mount(pid: int, mountpoint: str) -> int:
    """A readable descriptor of a mount's top directory in the container, or -1 (gone, or not a directory)."""
    try:
        root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return -1
    try:
        location = open_location_in_root(root, mountpoint)
    except OSError:
        return -1
    finally:
        os.close(root)
    try:
        return os.open(f"/proc/self/fd/{location}", DIR_FLAGS & ~os.O_NOFOLLOW)  # our own descriptor's link
    except OSError:
        return -1
    finally:
        os.close(location)


def _walk(sweep: Sweep, top: int, prefix: str, mountpoint: str) -> Iterator[Found | None]:
    """Depth-first below the open directory `top` (closed when done), on its file system only; one directory
    is open at a time, reopened beneath `top` with no symlink followed."""
    device = os.fstat(top).st_dev
    stack: list[tuple[str, int]] = [("", 0)]
    try:
        while stack and not sweep.cut_short:
            relative, depth = stack.pop()
            try:
                dir_fd = open_beneath(top, relative) if relative else os.dup(top)
            except OSError:
                continue
            try:
                for name in [entry.name for entry in os.scandir(dir_fd)]:
                    sweep.visited += 1
                    if sweep.visited > MAX_ENTRIES:
                        sweep.cut_short = True
                        break
                    found = _visit(dir_fd, name, f"{relative}{name}", depth, device, stack)
                    yield Found(prefix + found[0], mountpoint, found[1]) if found is not None else None
            except OSError:
                pass
            finally:
                os.close(dir_fd)
    finally:
        os.close(top)


def _visit(dir_fd: int, name: str, relative: str, depth: int, device: int,
           stack: list[tuple[str, int]]) -> tuple[str, int] | None:  # fmt: skip
    """(relative path, descriptor) of an ELF file; a directory is queued."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    if st.st_dev != device:
        return None  # another mount: swept on its own, or not writable
    if stat.S_ISDIR(st.st_mode):
        if depth < MAX_DEPTH:
            stack.append((relative + "/", depth + 1))
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size < 4:
        return None
    try:
        fd = _open_quietly(name, dir_fd)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode) and os.pread(fd, 4, 0) == b"\x7fELF":
            return relative, fd
    except OSError:
        pass
    os.close(fd)
    return None


def _open_quietly(name: str, dir_fd: int) -> int:
    """Open a file to read without touching its access time (evidence); without CAP_FOWNER over it, plainly."""
    try:
        return os.open(name, FILE_FLAGS | os.O_NOATIME, dir_fd=dir_fd)
    except PermissionError:
        return os.open(name, FILE_FLAGS, dir_fd=dir_fd)
