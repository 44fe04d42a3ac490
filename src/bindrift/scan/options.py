"""What a scan is asked to do."""

from __future__ import annotations

from dataclasses import dataclass

from bindrift.analysis.arch import HostProfile
from bindrift.schema.severity import Severity


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """What to scan and how."""

    paths: list[str]
    # Files and directories only (e.g. read from --files-from): no image detection.
    plain_paths: list[str]
    min_severity: Severity
    compute_hash: bool
    host: HostProfile
    jobs: int
