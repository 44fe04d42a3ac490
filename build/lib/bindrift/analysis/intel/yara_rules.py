"""YARA-X rule folders: every `*.yar` / `*.yara` file below a folder, compiled into one rule set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bindrift.schema.finding import IntelMatch

RULE_SUFFIXES = (".yar", ".yara")
MAX_RULE_FILE = 16 * 2**20
SCAN_TIMEOUT_S = 10


def rule_files(folder: str) -> list[Path]:
    """Rule files under `folder` (or the file itself), sorted; symlinks not followed."""
    path = Path(folder)
    if path.is_file():
        return [path]
    found = []
    for root, _dirs, files in os.walk(path):
        found += [Path(root) / name for name in files if name.endswith(RULE_SUFFIXES)]
    return sorted(found)


class YaraRules:
    """A compiled rule set; rule files that do not compile are skipped and reported in `errors`."""

    def __init__(self, folder: str) -> None:
        import yara_x  # lazy: the import and compilation cost only deployments with rules

        self.folder = folder
        self.errors: list[str] = []
        compiler = yara_x.Compiler()
        self._origins: dict[str, str] = {}
        for index, path in enumerate(rule_files(folder)):
            namespace = f"f{index}"
            compiler.new_namespace(namespace)
            try:
                if path.stat().st_size > MAX_RULE_FILE:
                    raise ValueError(f"larger than {MAX_RULE_FILE} bytes")
                compiler.add_source(path.read_text(errors="replace"), origin=str(path))
                self._origins[namespace] = str(path)
            except (yara_x.CompileError, OSError, ValueError) as exc:
                self.errors.append(f"{path}: {exc}")
        self._rules: Any = compiler.build()

    def scan(self, data: bytes) -> list[IntelMatch]:
        """Rules matching `data`, named `rule` and attributed to their file."""
        import yara_x

        scanner = yara_x.Scanner(self._rules)
        scanner.set_timeout(SCAN_TIMEOUT_S)
        try:
            results = scanner.scan(data)
        except (yara_x.ScanError, yara_x.TimeoutError) as exc:
            self.errors.append(f"scan failed: {exc}")
            return []
        return [
            IntelMatch(self._origins.get(rule.namespace, self.folder), "yara", rule.identifier,
                       ", ".join(rule.tags))
            for rule in results.matching_rules
        ]  # fmt: skip
