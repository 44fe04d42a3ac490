"""Package databases met while an image's layers stream: kept, bounded, for provenance at the image's end.

Which members are package records (dpkg `md5sums`, apk `installed`, rpm `rpmdb.sqlite`; Berkeley DB and
ndb rpm databases are named as unsupported), and their bytes read off the tar stream within per-file,
per-image and count caps. Text records stay in memory; an rpm database is spilled to an unlinked
temporary file. A refused file is a `PackageDbFile` with an `error` and no content.
"""

from __future__ import annotations

import posixpath
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bindrift.analysis.source import BufferSource, ByteSource

if TYPE_CHECKING:
    from bindrift.sensors.tar_stream import TarStream

# Documented in docs/checks.md ("Provenance").
MAX_TEXT_FILE = 64 * 2**20
MAX_TEXT_TOTAL = 64 * 2**20  # md5sums and apk records held in memory per image
MAX_RPMDB = 512 * 2**20
MAX_FILES = 100_000
CHUNK = 1 << 20

DPKG_FOLDERS = ("/var/lib/dpkg/info", "/var/lib/dpkg/status.d")  # status.d: distroless images
APK_INSTALLED = ("/lib/apk/db/installed", "/usr/lib/apk/db/installed")
RPM_FOLDERS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
RPM_UNSUPPORTED = {"Packages": "Berkeley DB", "Packages.db": "ndb"}


@dataclass(slots=True)
class PackageDbFile:
    """A package database file of the image's final file system, from its layer: `kind` is `dpkg`, `apk`
    or `rpm`; `content` None when refused (`error` says why)."""

    image: str
    layer: str
    path: str
    kind: str
    content: ByteSource | None = None
    error: str | None = None


def package_db_kind(path: str) -> str | None:
    """`dpkg`, `apk`, `rpm` or `rpm-unsupported` for a package database path of an image, else None."""
    folder, name = posixpath.split(path)
    if folder in DPKG_FOLDERS and name.endswith(".md5sums"):
        return "dpkg"
    if path in APK_INSTALLED:
        return "apk"
    if folder in RPM_FOLDERS:
        if name == "rpmdb.sqlite":
            return "rpm"
        if name in RPM_UNSUPPORTED:
            return "rpm-unsupported"
    return None


@dataclass(slots=True)
class DbBudget:
    """What one image's package databases have used so far."""

    files: int = 0
    text_bytes: int = 0


def read_package_db(
    tar: TarStream, image: str, layer: str, path: str, kind: str, size: int, budget: DbBudget, head: bytes = b""
) -> PackageDbFile:
    """The member's bytes (`head`: those already consumed from the stream), or the reason they were refused
    (its data is then left for the tar reader to skip)."""
    found = PackageDbFile(image, layer, path, kind)
    budget.files += 1
    if kind == "rpm-unsupported":
        found.kind = "rpm"
        found.error = f"unsupported rpm database format ({RPM_UNSUPPORTED[posixpath.basename(path)]})"
    elif budget.files > MAX_FILES:
        found.error = f"more than {MAX_FILES} package database files in the image"
    elif kind == "rpm":
        if size > MAX_RPMDB:
            found.error = f"rpm database of {size} bytes exceeds the {MAX_RPMDB}-byte cap"
        else:
            found.content = _spilled(tar, head, size)
    elif size > MAX_TEXT_FILE or budget.text_bytes + size > MAX_TEXT_TOTAL:
        found.error = f"{size} bytes over the package records cap ({MAX_TEXT_FILE} per file, {MAX_TEXT_TOTAL} in all)"
    else:
        budget.text_bytes += size
        found.content = BufferSource(head + tar.read(size))
    if found.error is not None:
        found.error = f"package database refused: {found.error}; its records are not applied"
    return found


def _spilled(tar: TarStream, head: bytes, size: int) -> ByteSource:
    from bindrift.sensors.images import SpilledSource

    spilled = tempfile.TemporaryFile()  # noqa: SIM115 - open for as long as the source is referenced
    spilled.write(head)
    while chunk := tar.read(CHUNK):
        spilled.write(chunk)
    spilled.flush()
    return SpilledSource(spilled, size)
