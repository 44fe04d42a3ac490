"""Whether a file is the one its package manager installed, and what that does to its findings."""

from __future__ import annotations

import os

import msgspec

from bindrift.analysis.elf.check_base import TAMPER_CHECKS
from bindrift.analysis.provenance.records import PackageIndex, Record
from bindrift.analysis.source import ByteSource
from bindrift.schema.severity import rank
from bindrift.schema.triage import CheckResult, TriageReport

MAX_DIGESTED = 1 << 30
CHUNK = 1 << 20


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
        report.findings = [_capped(f, record.package, record.manager) for f in report.findings]
        return
    has_findings = any(rank(f.severity) > 0 for f in report.findings)
    if digest is None and not (verify or has_findings):
        report.provenance = "listed"
        return
    digest = digest or _digest(record.algorithm, fd, source, report.size)
    if digest is None:
        report.provenance = "listed"
        report.notes.append(
            f"provenance: content not compared with {record.manager}'s {record.algorithm} record "
            "(too large, partial, or not hashed)"
        )
    elif digest == record.digest:
        report.provenance = "packaged"
        report.findings = [_capped(f, record.package, record.manager) for f in report.findings]
    else:
        report.provenance = "modified"
        report.notes.append(
            f"provenance: modified packaged file: {record.package} installed this path, but its content differs "
            f"from the {record.algorithm} in {record.manager}'s record"
        )


def _capped(result: CheckResult, package: str, manager: str) -> CheckResult:
    """`result` at info, unless it is evidence of tampering: a record lists a path and a digest, and whoever
    wrote the records (an image's author, a hostile package) can list a tampered file as well."""
    if result.severity == "info" or result.category == "tampered-packer" or result.check in TAMPER_CHECKS:
        return result
    return msgspec.structs.replace(
        result, severity="info",
        detail=f"{result.detail} [capped from {result.severity}: packaged, content matches {manager}'s record "
        f"for {package}]",
        evidence={**result.evidence, "capped_from": result.severity, "capped_by": "provenance"},
    )  # fmt: skip


def digests(source: ByteSource, algorithms: tuple[str, ...]) -> dict[str, bytes]:
    """Hex digests of a complete `source` (empty when it is partial or over `MAX_DIGESTED`), one read."""
    if not source.complete or source.size > MAX_DIGESTED or not algorithms:
        return {}
    import hashlib  # imported when a file is compared with its record (a header scan seldom does)

    hashes = [hashlib.new(name, usedforsecurity=False) for name in algorithms]
    for offset in range(0, source.size, CHUNK):
        chunk = source.read(offset, min(CHUNK, source.size - offset))
        for hashed in hashes:
            hashed.update(chunk)
    return {name: hashed.hexdigest().encode() for name, hashed in zip(algorithms, hashes, strict=True)}


def _digest(algorithm: str, fd: int | None, source: ByteSource | None, size: int) -> bytes | None:
    if size > MAX_DIGESTED:
        return None
    if source is not None:
        return digests(source, (algorithm,)).get(algorithm)
    if fd is None:
        return None
    import hashlib

    digest = hashlib.new(algorithm, usedforsecurity=False)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    offset = 0
    while (n := os.preadv(fd, [buf], offset)) > 0:
        digest.update(view[:n])
        offset += n
    return digest.hexdigest().encode()
