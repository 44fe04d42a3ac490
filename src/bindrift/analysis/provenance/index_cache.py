"""A cache of the host's dpkg records, so that a scan does not read and parse every `md5sums` file.

dpkg keeps no index of its own: the first lookup of a process read ~800 `md5sums` files and parsed
~97,000 records (≈ 100 ms of CPU, more than a header scan of /usr). The index is kept instead in
`$XDG_CACHE_HOME/bindrift` (default `~/.cache/bindrift`) as records sorted by path with an offset table,
mapped read-only and searched by bisection: nothing is parsed at load.

It is used only when it describes the current records exactly: its key is the name, device, inode, size,
mtime and ctime of every `md5sums` file (a write to one moves its ctime, which user space cannot set back),
with this format's version and bounds. Anyone who can write the cache can mark files packaged, so it is
trusted only when the directory and the file are owned by the scanning user and writable by no one else
(directory: no group or other write; file: mode ≤ 0644, one link), opened without following a symlink;
a cache that fails those checks is refused (logged) and the records are read as without one. A cache that
cannot be written (read-only home) is skipped silently: it costs time, not results.
It is replaced by a rename, never rewritten in place, so a mapping is never truncated under a reader; the
temporary file of a build killed before its rename is removed by the next build.
`BINDRIFT_RECORD_CACHE=0` turns it off.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

from bindrift.analysis.provenance.records import MAX_ENTRIES, PackageIndex, RecordFields

if TYPE_CHECKING:
    import mmap

FILE_NAME = "dpkg-records.idx"
MAGIC = b"BDRIDX01"
# magic, record count, key length, dropped count
HEADER = struct.Struct("=8sIIQ")
MAX_CACHE = 1 << 31


def cached_dpkg_index(
    md5sums: list[str], aliases: dict[str, str], build: Callable[[], PackageIndex], max_record_file: int
) -> PackageIndex:
    """The index of the dpkg records in `md5sums` (paths): from the cache when it matches them, otherwise
    from `build()`, then stored for the next scan."""
    directory = _cache_directory()
    if directory is None:
        return build()
    key = _key(md5sums, max_record_file)
    dir_fd = _open_directory(directory)
    if dir_fd is None:
        return build()
    try:
        cached = _load(dir_fd, directory, key, aliases)
        if cached is not None:
            return cached
        index = build()
        _store(dir_fd, key, index)
        return index
    finally:
        os.close(dir_fd)


class CachedIndex(PackageIndex):
    """A read-only `PackageIndex` over a mapped cache file: records sorted by path, found by bisection."""

    def __init__(self, data: mmap.mmap, offsets: memoryview, base: int, dropped: int, aliases: dict[str, str]):
        super().__init__("dpkg", aliases)
        self.dropped = dropped
        self._data = data
        self._offsets = offsets
        self._base = base

    def count(self) -> int:
        return len(self._offsets) - 1

    def get(self, path: bytes) -> RecordFields | None:
        data, offsets, base = self._data, self._offsets, self._base
        low, high = 0, len(offsets) - 1
        while low < high:
            middle = (low + high) // 2
            if _path(data, base + offsets[middle], base + offsets[middle + 1]) < path:
                low = middle + 1
            else:
                high = middle
        if low == len(offsets) - 1:
            return None
        fields = data[base + offsets[low] : base + offsets[low + 1]].rsplit(b"\0", 3)
        if len(fields) != 4 or fields[0] != path or not fields[3].isdigit():
            return None  # only a damaged cache: this module writes none such
        return fields[1].decode("utf-8", "surrogateescape"), fields[2], int(fields[3]), "dpkg"

    def add(self, path: bytes, package: str, digest: bytes, installed_ns: int = 0, manager: str = "") -> None:
        raise TypeError("a cached package index is read-only")

    def merge(self, other: PackageIndex) -> None:
        raise TypeError("a cached package index is read-only")


def _path(data: mmap.mmap, start: int, end: int) -> bytes:
    """The path of the record at `start`: what precedes its last three NUL-separated fields (a path may
    hold a NUL; a package name, a digest and a number cannot)."""
    for _ in range(3):
        end = data.rfind(b"\0", start, end)
    return data[start:end] if end >= start else b""


def _cache_directory() -> str | None:
    if os.environ.get("BINDRIFT_RECORD_CACHE") == "0":
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bindrift") if os.path.isabs(base) else None


def _key(md5sums: list[str], max_record_file: int) -> bytes:
    """What the records are: every file's name and identity, in order, with this format's bounds."""
    parts = [f"{MAGIC.decode()} {MAX_ENTRIES} {max_record_file}\n"]
    for path in md5sums:
        try:
            st = os.stat(path)
        except OSError:
            parts.append(f"{path}\0-\n")
            continue
        parts.append(f"{path}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n")
    key = os.fsencode("".join(parts))
    return key + b"\n" * (-len(key) % 4)  # the offset table that follows stays aligned


def _open_directory(directory: str) -> int | None:
    """The cache directory (created 0700 when missing), or None when it is not the scanning user's alone."""
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        _refused(directory, "directory not owned by the scanning user, or writable by others")
        return None
    return fd


def _load(dir_fd: int, directory: str, key: bytes, aliases: dict[str, str]) -> CachedIndex | None:
    import mmap

    try:
        fd = os.open(FILE_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & ~0o644
                or st.st_nlink != 1 or not HEADER.size <= st.st_size <= MAX_CACHE):  # fmt: skip
            _refused(os.path.join(directory, FILE_NAME), "not a regular file of the scanning user with mode ≤ 0644")
            return None
        data = mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ)
    except OSError:
        return None
    finally:
        os.close(fd)
    magic, count, key_length, dropped = HEADER.unpack_from(data)
    table = HEADER.size + key_length
    base = table + 4 * (count + 1)
    if magic != MAGIC or base > len(data) or data[HEADER.size : table] != key:
        data.close()
        return None
    offsets = memoryview(data)[table:base].cast("I")
    if offsets[0] != 0 or base + offsets[count] != len(data):
        offsets.release()
        data.close()
        return None
    return CachedIndex(data, offsets, base, dropped, aliases)


def _store(dir_fd: int, key: bytes, index: PackageIndex) -> None:
    """Write the index sorted by path, replacing the cache at once (a reader sees the old or the new)."""
    offsets = array("I", [0])
    chunks = []
    size = 0
    for path, (package, digest, installed_ns, _) in sorted(index.records.items()):
        record = b"\0".join((path, package.encode("utf-8", "surrogateescape"), digest, b"%d" % installed_ns))
        chunks.append(record)
        size += len(record)
        offsets.append(size)
    header = HEADER.pack(MAGIC, len(offsets) - 1, len(key), index.dropped)
    if len(header) + len(key) + 4 * len(offsets) + size > MAX_CACHE:
        return
    _remove_stale(dir_fd)
    temporary = f"{FILE_NAME}.{os.getpid()}"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)  # fmt: skip
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(header)
            out.write(key)
            out.write(offsets.tobytes())
            out.writelines(chunks)
        os.rename(temporary, FILE_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)


def _remove_stale(dir_fd: int) -> None:
    """Remove the temporary files of builds whose process is gone (killed before its rename)."""
    prefix = FILE_NAME + "."
    for name in os.listdir(dir_fd):
        pid = name[len(prefix) :]
        if not name.startswith(prefix) or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)
        except OSError:
            pass  # alive, as another user: not ours to remove


def _refused(path: str, reason: str) -> None:
    import logging

    logging.getLogger(__name__).warning("%s: package record cache refused (%s); records read without it", path,
                                        reason)  # fmt: skip
