"""All configured intelligence in one place, reloaded without a restart when a source file changes."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from bindrift.analysis.intel.hash_lists import (
    MAX_LIST_BYTES,
    IntelFormatError,
    read_csv_list,
    read_stix_bundle,
    read_text_list,
)
from bindrift.analysis.intel.yara_rules import YaraRules, rule_files
from bindrift.schema.finding import IntelMatch

log = logging.getLogger(__name__)
Kind = Literal["auto", "sha256", "csv", "stix", "yara"]
REFRESH_EVERY_S = 5.0


def detect_kind(path: str) -> Kind:
    """The kind of a source from its name: folders and .yar/.yara are YARA, .csv CSV, .json STIX, else text."""
    lower = path.lower()
    if os.path.isdir(path) or lower.endswith((".yar", ".yara")):
        return "yara"
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith(".json"):
        return "stix"
    return "sha256"


class IntelSet:
    """Hash lookups and YARA scans over every source; `refresh()` re-reads only the sources that changed."""

    def __init__(self, sources: Iterable[tuple[str, Kind]] = ()) -> None:
        self._sources = [(path, detect_kind(path) if kind == "auto" else kind) for path, kind in sources]
        self._hashes: dict[str, dict[str, IntelMatch]] = {}
        self._yara: dict[str, YaraRules] = {}
        self._signatures: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self._errors: dict[str, str] = {}
        self._checked = 0.0
        self.refresh(force=True)

    @property
    def errors(self) -> list[str]:
        """Sources that could not be read or compiled, with the reason."""
        found = list(self._errors.values())
        for rules in self._yara.values():
            found += rules.errors
        return found

    def refresh(self, force: bool = False) -> bool:
        """Reload changed sources (checked at most every few seconds unless forced); True if any changed."""
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_EVERY_S:
            return False
        self._checked = now
        changed = False
        for path, kind in self._sources:
            signature = _signature(path, kind)
            if signature == self._signatures.get(path):
                continue
            self._signatures[path] = signature
            self._load(path, kind)
            changed = True
        return changed

    def _load(self, path: str, kind: Kind) -> None:
        self._errors.pop(path, None)
        self._hashes.pop(path, None)
        self._yara.pop(path, None)
        try:
            if kind == "yara":
                self._yara[path] = YaraRules(path)
                return
            data = Path(path).read_bytes()[:MAX_LIST_BYTES].decode("utf-8", "replace")
            reader = {"sha256": read_text_list, "csv": read_csv_list, "stix": read_stix_bundle}[kind]
            self._hashes[path] = reader(data, path)
        except (OSError, IntelFormatError) as exc:
            self._errors[path] = f"{path}: {exc}"
            log.warning("intelligence source unusable: %s", self._errors[path])

    @property
    def has_rules(self) -> bool:
        """True when YARA rules are configured (scanning needs the file's bytes)."""
        return any(kind == "yara" for _path, kind in self._sources)

    def lookup(self, sha256: str) -> list[IntelMatch]:
        """Hash-list and STIX matches for a SHA-256."""
        self.refresh()
        digest = sha256.lower()
        return [table[digest] for table in self._hashes.values() if digest in table]

    def scan(self, data: bytes) -> list[IntelMatch]:
        """YARA rule matches for the file's bytes."""
        self.refresh()
        return [match for rules in self._yara.values() for match in rules.scan(data)]

    def match(self, sha256: str, data: bytes | None) -> list[IntelMatch]:
        """Everything that matches the file: its hash, and its content when given."""
        return self.lookup(sha256) + (self.scan(data) if data is not None else [])


def _signature(path: str, kind: Kind) -> tuple[tuple[str, int, int], ...]:
    files = rule_files(path) if kind == "yara" else [Path(path)]
    signature = []
    for file in files:
        try:
            st = file.stat()
        except OSError:
            continue
        signature.append((str(file), st.st_mtime_ns, st.st_size))
    return tuple(signature)
