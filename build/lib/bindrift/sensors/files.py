"""Walking files and directories without following symlinks."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from functools import lru_cache

from bindrift.sensors.targets import DiskFile, ScanError


def iter_files(roots: Sequence[str]) -> Iterator[DiskFile | ScanError]:
    """Regular files under `roots`, in sorted order. A root may be a file or a directory; symlinks met
    while walking (to files or directories), devices, FIFOs and sockets are skipped, never opened."""
    for given in roots:
        root = _anchor(given)
        try:
            st = os.lstat(root)
        except OSError as exc:
            yield ScanError(root, exc.strerror or str(exc))
            continue
        if stat.S_ISLNK(st.st_mode):
            yield from _symlink_root(root)
        elif stat.S_ISDIR(st.st_mode):
            yield from _walk(root)
        elif stat.S_ISREG(st.st_mode):
            yield DiskFile(root, st.st_size)
        else:
            yield ScanError(root, "not a regular file or directory")


def _anchor(root: str) -> str:
    """`root` with the directories the user named resolved (`/bin/ls` → `/usr/bin/ls` on merged-/usr
    systems), so that no path handed on contains a symlink; the last component is left as it is."""
    head, tail = os.path.split(os.path.abspath(root))
    return os.path.join(_resolved(head), tail) if tail else _resolved(head)


@lru_cache(maxsize=1024)
def _resolved(directory: str) -> str:
    """`realpath` of a directory, cached: long file lists name the same few directories."""
    return os.path.realpath(directory)


def _symlink_root(root: str) -> Iterator[DiskFile | ScanError]:
    """A root named on the command line that is itself a symlink (`/bin` → `usr/bin`): the user chose it,
    so it is resolved once; nothing below it is followed."""
    real = os.path.realpath(root)
    try:
        st = os.stat(real)
    except OSError as exc:
        yield ScanError(root, exc.strerror or str(exc))
        return
    if stat.S_ISDIR(st.st_mode):
        yield from _walk(real)
    elif stat.S_ISREG(st.st_mode):
        yield DiskFile(real, st.st_size)


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
                    yield DiskFile(entry.path, entry.stat(follow_symlinks=False).st_size)
            except OSError as exc:
                yield ScanError(entry.path, exc.strerror or str(exc))
        stack.extend(reversed(subdirs))
