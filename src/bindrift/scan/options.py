"""What a scan is asked to do."""

from __future__ import annotations

import msgspec

from bindrift.analysis.arch import HostProfile
from bindrift.schema.severity import Severity


class ScanOptions(msgspec.Struct, frozen=True):
    """What to scan and how."""

    paths: list[str]
    # Files and directories only (e.g. read from --files-from): no image detection.
    plain_paths: list[str]
    min_severity: Severity
    compute_hash: bool
    host: HostProfile
    jobs: int


def build_options(
    paths: list[str], listed: list[str], min_severity: str, no_hash: bool, host_arch: str | None, jobs: int
) -> ScanOptions:
    """The options of a command line; ValueError (with the option at fault first) when they are not valid."""
    import os

    from bindrift.schema.severity import parse_severity

    if not paths and not listed:
        raise ValueError("PATH: no paths to scan")
    try:
        host = HostProfile.parse(host_arch) if host_arch else HostProfile.detect()
    except ValueError as exc:
        raise ValueError(f"--host-arch: {exc}") from exc
    return ScanOptions(
        paths=paths, plain_paths=listed, min_severity=parse_severity(min_severity), compute_hash=not no_hash,
        host=host, jobs=jobs or len(os.sched_getaffinity(0)),
    )  # fmt: skip


def read_list(source: str) -> list[str]:
    """Paths from a file (`-`: stdin), NUL- or newline-separated."""
    import sys

    if source == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(source, "rb") as fh:
            data = fh.read()
    separator = b"\0" if b"\0" in data else b"\n"
    return [item.decode("utf-8", "surrogateescape") for item in data.split(separator) if item.strip()]
