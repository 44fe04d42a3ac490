"""Provenance: whether a file is the one its package manager installed.

A `PackageIndex` maps absolute paths to the package that owns them and the digest the package manager
recorded: dpkg `md5sums` (`/var/lib/dpkg/info/*.md5sums`) and apk's `installed` database (`Z:Q1…`, a
base64 SHA-1). The host's index is loaded once per process, lazily and bounded; image scanning builds one
from the same records read from an image's layers (`PackageIndex.from_dpkg` / `from_apk`) and calls
`apply` with the member's bytes. A file's digest is computed only when its path is in the index.

A file whose content matches its record is *packaged*: its triage findings are capped at info (unless
threat intelligence matches, see cli/scan_store.py), since the distribution shipped it. A file whose
content differs is *modified*, and named so. Files listed but not read (nothing to cap, hashing off) are
*listed*.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import msgspec

from bindrift.analysis.source import ByteSource
from bindrift.schema.severity import rank
from bindrift.schema.triage import CheckResult, TriageReport

log = logging.getLogger(__name__)

DPKG_INFO = "/var/lib/dpkg/info"
APK_INSTALLED = "/lib/apk/db/installed"
MAX_ENTRIES = 2_000_000
MAX_RECORD_FILE = 64 * 2**20
MAX_DIGESTED = 1 << 30
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Record:
    """What the package manager recorded for one path."""

    package: str
    algorithm: str  # a hashlib name: "md5" (dpkg) or "sha1" (apk)
    digest: bytes  # lower-case hex, as ASCII
    # When the package manager wrote its record (ns; 0 when unknown, e.g. records read from an image).
    installed_ns: int = 0

    def unchanged_since_install(self, ctime_ns: int) -> bool:
        """True when a file with this inode change time cannot have been written since the install: the
        kernel sets ctime on every write, and dpkg writes its md5sums after unpacking the files."""
        return bool(self.installed_ns) and ctime_ns <= self.installed_ns


DPKG_LINE = re.compile(rb"^([0-9a-fA-F]{32})  /?(.+)$", re.MULTILINE)


class PackageIndex:
    """Path → package and digest, at most `MAX_ENTRIES` paths; `dropped` counts records not kept. Paths
    are kept relative to the root, as bytes, as the records hold them (no per-line work at load)."""

    def __init__(self, source: str, algorithm: str, aliases: dict[str, str] | None = None) -> None:
        self.source = source
        self.algorithm = algorithm
        self.records: dict[bytes, tuple[str, bytes, int]] = {}
        self.dropped = 0
        # Real directory → the path the records use for it (`/usr/bin/` → `/bin/` on merged-/usr hosts).
        self.aliases = aliases or {}

    def add(self, path: bytes, package: str, digest: bytes, installed_ns: int = 0) -> None:
        """Keep the record for `path` (relative to the root) unless the index is full (then count it)."""
        if len(self.records) >= MAX_ENTRIES:
            self.dropped += 1
            return
        self.records[path] = (package, digest, installed_ns)

    @classmethod
    def from_dpkg(
        cls, md5sums: Iterable[tuple[str, bytes, int]], aliases: dict[str, str] | None = None
    ) -> PackageIndex:
        """From (package, md5sums file content, its modification time in ns or 0) triples."""
        index = cls("dpkg", "md5", aliases)
        for package, content, installed_ns in md5sums:
            name = package.split(":", 1)[0]
            found = DPKG_LINE.findall(content)
            room = MAX_ENTRIES - len(index.records)
            lines = content.count(b"\n") + (bool(content) and not content.endswith(b"\n"))
            index.dropped += max(0, len(found) - room) + lines - len(found)
            index.records.update((path, (name, digest.lower(), installed_ns)) for digest, path in found[: max(0, room)])
        return index

    @classmethod
    def from_apk(cls, installed: bytes) -> PackageIndex:
        """From apk's `installed` database: P: package, F: directory, R: file, Z: Q1 + base64 SHA-1."""
        index = cls("apk", "sha1")
        package, directory, current = "", b"", b""
        for line in installed.splitlines():
            key, value = line[:2], line[2:]
            if key == b"P:":
                package = value.decode("utf-8", "replace")
            elif key == b"F:":
                directory = value.strip(b"/")
            elif key == b"R:":
                current = (directory + b"/" if directory else b"") + value
            elif key == b"Z:" and current and value.startswith(b"Q1"):
                try:
                    digest = base64.b64decode(value[2:], validate=True).hex().encode()
                except ValueError:
                    index.dropped += 1
                    continue
                index.add(current, package, digest)
                current = b""
        return index

    def lookup(self, path: str) -> Record | None:
        """The record for an absolute `path`, also under the directory alias the records use."""
        found = self.records.get(os.fsencode(path.lstrip("/")))
        if found is None:
            for real, alias in self.aliases.items():
                if path.startswith(real):
                    found = self.records.get(os.fsencode((alias + path[len(real) :]).lstrip("/")))
                    break
        return Record(found[0], self.algorithm, found[1], found[2]) if found else None


@lru_cache(maxsize=1)
def host_index() -> PackageIndex | None:
    """This host's package records (dpkg, else apk), loaded on first use; None when there are none."""
    files = sorted(glob.glob(os.path.join(DPKG_INFO, "*.md5sums")))
    if files:
        index = PackageIndex.from_dpkg(_read_records(files), _root_aliases())
    elif os.path.isfile(APK_INSTALLED):
        index = PackageIndex.from_apk(next(iter(_read_records([APK_INSTALLED])), ("", b""))[1])
    else:
        return None
    if index.dropped:
        log.warning("%s records: %d not kept (malformed or over %d paths)", index.source, index.dropped, MAX_ENTRIES)
    return index


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


def apply(
    report: TriageReport, index: PackageIndex, *, fd: int | None = None, source: ByteSource | None = None,
    verify: bool = True, record: Record | None = None, digest: bytes | None = None, unchanged: bool = False,
) -> None:  # fmt: skip
    """Mark `report` with its package and provenance from `index`, reading the content from `fd` or
    `source` (complete bytes) only when the path is listed, unless the caller computed `digest` for
    `record` in its own read, or found the file `unchanged` since the install (`Record.unchanged_since_install`);
    a packaged file's findings are capped."""
    record = record or index.lookup(report.path)
    if record is None or not report.is_elf:
        return
    report.package = record.package
    if unchanged:
        report.provenance = "packaged"
        report.findings = [_capped(f, record.package, index.source) for f in report.findings]
        return
    has_findings = any(rank(f.severity) > 0 for f in report.findings)
    if digest is None and not (verify or has_findings):
        report.provenance = "listed"
        return
    digest = digest or _digest(record.algorithm, fd, source, report.size)
    if digest is None:
        report.provenance = "listed"
        report.notes.append(f"provenance: content not compared with {index.source}'s record (too large or partial)")
    elif digest == record.digest:
        report.provenance = "packaged"
        report.findings = [_capped(f, record.package, index.source) for f in report.findings]
    else:
        report.provenance = "modified"
        report.notes.append(
            f"provenance: modified packaged file: {record.package} installed this path, but its content differs "
            f"from the {record.algorithm} in {index.source}'s record"
        )


def _capped(result: CheckResult, package: str, manager: str) -> CheckResult:
    if result.severity == "info":
        return result
    return msgspec.structs.replace(
        result, severity="info",
        detail=f"{result.detail} [capped from {result.severity}: packaged, content matches {manager}'s record "
        f"for {package}]",
        evidence={**result.evidence, "capped_from": result.severity, "capped_by": "provenance"},
    )  # fmt: skip


def _digest(algorithm: str, fd: int | None, source: ByteSource | None, size: int) -> bytes | None:
    if size > MAX_DIGESTED:
        return None
    digest = hashlib.new(algorithm, usedforsecurity=False)
    if source is not None:
        if not source.complete:
            return None
        for offset in range(0, source.size, CHUNK):
            digest.update(source.read(offset, min(CHUNK, source.size - offset)))
        return digest.hexdigest().encode()
    if fd is None:
        return None
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    offset = 0
    while (n := os.preadv(fd, [buf], offset)) > 0:
        digest.update(view[:n])
        offset += n
    return digest.hexdigest().encode()
