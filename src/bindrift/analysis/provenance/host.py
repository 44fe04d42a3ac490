"""This host's package records: dpkg, apk and rpm, whichever are present, loaded once per process."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from functools import lru_cache

from bindrift.analysis.provenance.records import MAX_ENTRIES, PackageIndex
from bindrift.analysis.source import FdSource

DPKG_INFO = "/var/lib/dpkg/info"
APK_INSTALLED = "/lib/apk/db/installed"
RPM_FOLDERS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
RPM_UNSUPPORTED = {"Packages": "Berkeley DB", "Packages.db": "ndb"}
MAX_RECORD_FILE = 64 * 2**20


@lru_cache(maxsize=1)
def host_index() -> PackageIndex | None:
    """This host's package records (dpkg, apk and rpm merged, in that order of precedence), loaded on
    first use; None when there are none."""
    aliases = _root_aliases()
    found: list[PackageIndex] = []
    if os.path.isfile(APK_INSTALLED):
        found.append(PackageIndex.from_apk(next(iter(_read_records([APK_INSTALLED])), ("", b"", 0))[1], aliases))
    found += _rpm_indexes(aliases)
    files = _md5sums_files()
    if files:
        found.insert(0, _dpkg_index(files, aliases, cached=not found))
    if not found:
        return None
    index = found[0]
    for other in found[1:]:
        index.merge(other)
    if index.dropped:
        _warn("%s records: %d not kept (malformed or over %d paths)", index.source, index.dropped, MAX_ENTRIES)
    return index


def _dpkg_index(files: list[str], aliases: dict[str, str], cached: bool) -> PackageIndex:
    """dpkg's records; through the cache of `index_cache` when they are this host's only ones (the merge of
    several managers' records needs them all in memory)."""

    def build() -> PackageIndex:
        return PackageIndex.from_dpkg(_read_records(files), aliases)

    if not cached:
        return build()
    from bindrift.analysis.provenance.index_cache import cached_dpkg_index

    return cached_dpkg_index(files, aliases, build, MAX_RECORD_FILE)


def _rpm_indexes(aliases: dict[str, str]) -> list[PackageIndex]:
    """The rpm sqlite databases of this host (rpm.py, and sqlite3, imported only when one exists)."""
    found = []
    for folder in dict.fromkeys(os.path.realpath(f) for f in RPM_FOLDERS):
        for name, kind in RPM_UNSUPPORTED.items():
            if os.path.isfile(os.path.join(folder, name)):
                _warn("%s/%s: unsupported rpm database format (%s); its records are not read", folder, name, kind)
        try:
            fd = os.open(os.path.join(folder, "rpmdb.sqlite"), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        from bindrift.analysis.provenance.rpm import MAX_RPMDB, rpm_index

        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_RPMDB:
                _warn("%s/rpmdb.sqlite: not a regular file or over %d bytes; not read", folder, MAX_RPMDB)
                continue
            index, problem = rpm_index(FdSource(fd, st.st_size), aliases)
        finally:
            os.close(fd)
        if problem:
            _warn("%s/rpmdb.sqlite: %s", folder, problem)
        found.append(index)
    return found


def _md5sums_files() -> list[str]:
    """dpkg's `*.md5sums` files, sorted (as `glob` would list them: hidden names left out)."""
    try:
        names = os.listdir(DPKG_INFO)
    except OSError:
        return []
    return [os.path.join(DPKG_INFO, n) for n in sorted(names) if n.endswith(".md5sums") and not n.startswith(".")]


def _warn(message: str, *args: object) -> None:
    import logging  # imported when there is something to say: the scan's start-up does without it

    logging.getLogger(__name__).warning(message, *args)


def _root_aliases() -> dict[str, str]:
    """Top-level symlinks to directories of this host (`/bin` → `usr/bin`): real prefix → alias prefix."""
    aliases = {}
    try:
        entries = list(os.scandir("/"))
    except OSError:
        return {}
    for entry in entries:
        if entry.is_symlink() and entry.is_dir():
            aliases[os.path.realpath(entry.path) + "/"] = entry.path + "/"
    return aliases


def _read_records(files: list[str]) -> Iterable[tuple[str, bytes, int]]:
    for path in files:
        try:
            with open(path, "rb") as handle:
                content = handle.read(MAX_RECORD_FILE)
                installed_ns = os.fstat(handle.fileno()).st_mtime_ns
        except OSError:
            continue
        yield os.path.basename(path).rsplit(".", 1)[0], content, installed_ns
