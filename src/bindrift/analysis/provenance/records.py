"""Package records: path → the package that installed it and the digest its manager recorded.

dpkg `md5sums` files and apk's `installed` database are parsed here; rpm's database in `rpm.py`. Each
record keeps its manager, so one index can hold the records of every manager a root file system has.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_ENTRIES = 2_000_000
# The digest's algorithm follows from its length in hex: every algorithm a package manager records differs.
ALGORITHMS = {32: "md5", 40: "sha1", 56: "sha224", 64: "sha256", 96: "sha384", 128: "sha512"}


@dataclass(frozen=True, slots=True)
class Record:
    """What the package manager recorded for one path."""

    package: str
    algorithm: str  # a hashlib name: "md5" (dpkg, old rpm), "sha1" (apk), "sha256" (rpm) …
    digest: bytes  # lower-case hex, as ASCII
    # When the package manager wrote its record (ns; 0 when unknown, e.g. records read from an image).
    installed_ns: int = 0
    manager: str = "dpkg"

    def unchanged_since_install(self, ctime_ns: int) -> bool:
        """True when a file with this inode change time cannot have been written since the install: the
        kernel sets ctime on every write, and dpkg writes its md5sums after unpacking the files."""
        return bool(self.installed_ns) and ctime_ns <= self.installed_ns


# A record as an index holds it: package, digest, install time (ns, 0 when unknown), manager.
RecordFields = tuple[str, bytes, int, str]
DPKG_LINE = re.compile(rb"^([0-9a-fA-F]{32})  /?(.+)$", re.MULTILINE)


class PackageIndex:
    """Path → (package, digest, install time, manager), at most `MAX_ENTRIES` paths; `dropped` counts
    records not kept. Paths are kept relative to the root, as bytes, as the records hold them (no
    per-line work at load); the first record of a path wins."""

    def __init__(self, source: str, aliases: dict[str, str] | None = None) -> None:
        self.source = source
        self.records: dict[bytes, RecordFields] = {}
        self.dropped = 0
        # Real directory → the path the records use for it (`/usr/bin/` → `/bin/` on merged-/usr roots).
        self.aliases = aliases or {}

    def count(self) -> int:
        """How many paths the index holds."""
        return len(self.records)

    def get(self, path: bytes) -> RecordFields | None:
        """The record of `path` (relative to the root, as the records hold it)."""
        return self.records.get(path)

    def add(self, path: bytes, package: str, digest: bytes, installed_ns: int = 0, manager: str = "") -> None:
        """Keep the record for `path` (relative to the root) unless the index is full (then count it)."""
        if path in self.records:
            return
        if len(self.records) >= MAX_ENTRIES:
            self.dropped += 1
            return
        self.records[path] = (package, digest, installed_ns, manager or self.source)

    def merge(self, other: PackageIndex) -> None:
        """Add `other`'s records (a path already known keeps its record) and its dropped count."""
        self.dropped += other.dropped
        for path, (package, digest, installed_ns, manager) in other.records.items():
            self.add(path, package, digest, installed_ns, manager)
        if other.source not in self.source.split("+"):
            self.source = f"{self.source}+{other.source}" if self.source else other.source

    @classmethod
    def from_dpkg(
        cls, md5sums: Iterable[tuple[str, bytes, int]], aliases: dict[str, str] | None = None
    ) -> PackageIndex:
        """From (package, md5sums file content, its modification time in ns or 0) triples."""
        index = cls("dpkg", aliases)
        for package, content, installed_ns in md5sums:
            name = package.split(":", 1)[0]
            found = DPKG_LINE.findall(content)
            room = MAX_ENTRIES - len(index.records)
            lines = content.count(b"\n") + (bool(content) and not content.endswith(b"\n"))
            index.dropped += max(0, len(found) - room) + lines - len(found)
            for digest, path in found[: max(0, room)]:
                index.records.setdefault(path, (name, digest.lower(), installed_ns, "dpkg"))
        return index

    @classmethod
    def from_apk(cls, installed: bytes, aliases: dict[str, str] | None = None) -> PackageIndex:
        """From apk's `installed` database: P: package, F: directory, R: file, Z: Q1 + base64 SHA-1."""
        import base64

        index = cls("apk", aliases)
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
        found = self.get(os.fsencode(path.lstrip("/")))
        if found is None:
            for real, alias in self.aliases.items():
                if path.startswith(real):
                    found = self.get(os.fsencode((alias + path[len(real) :]).lstrip("/")))
                    break
        if found is None:
            return None
        algorithm = ALGORITHMS.get(len(found[1]))
        return Record(found[0], algorithm, found[1], found[2], found[3]) if algorithm else None
