"""Walking files and directories without following symlinks."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from functools import lru_cache

from bindrift.sensors.targets import DiskDirectory, DiskFile, ScanError


def iter_files(roots: Sequence[str]) -> Iterator[DiskFile | ScanError]:
    """Regular files under `roots`, in sorted order. A root may be a file or a directory; symlinks met
    while walking (to files or directories), devices, FIFOs and sockets are skipped, never opened."""
    for given in roots:
        entry = root_entry(given)
        if isinstance(entry, DiskDirectory):
            yield from _walk(entry.path)
        else:
            yield entry


def root_entry(given: str) -> DiskFile | DiskDirectory | ScanError:
    """What a root names: a regular file, a directory to walk, or why it is refused. A root that is itself a
    symlink (`/bin` → `usr/bin`) was chosen by the user, so it is resolved once."""
    root = real = _anchor(given)
    try:
        st = os.lstat(root)
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(root)
            st = os.stat(real)
    except OSError as exc:
        return ScanError(root, exc.strerror or str(exc))
    if stat.S_ISDIR(st.st_mode):
        return DiskDirectory(real)
    if stat.S_ISREG(st.st_mode):
        return DiskFile(real)
    return ScanError(root, _kind_error(st.st_mode))


def _kind_error(mode: int) -> str:
    """Why a root named on the command line is refused, naming what it is."""
    kinds = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
             stat.S_IFSOCK: "a socket"}  # fmt: skip
    return f"not a regular file or directory: {kinds.get(stat.S_IFMT(mode), 'a special file')}, not read"


def _anchor(root: str) -> str:
    """`root` with the directories the user named resolved (`/bin/ls` → `/usr/bin/ls` on merged-/usr
    systems), so that no path handed on contains a symlink; the last component is left as it is."""
    path = os.path.abspath(root)
    head, _, tail = path.rpartition("/")
    resolved = _resolved(head or "/")
    if not tail:
        return resolved
    return path if resolved == head else f"{resolved.rstrip('/')}/{tail}"


@lru_cache(maxsize=1024)
def _resolved(directory: str) -> str:
    """`realpath` of a directory, cached: long file lists name the same few directories."""
    return os.path.realpath(directory)


def _walk(top: str) -> Iterator[DiskFile | ScanError]:
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield ScanError(directory, exc.strerror or str(exc))
            continue
        subdirs = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    yield DiskFile(entry.path)  # the directory entry's type: no stat per file
            except OSError as exc:
                yield ScanError(entry.path, exc.strerror or str(exc))
        stack.extend(reversed(subdirs))
