"""The triage API: one ELF file (path, open descriptor or bytes) → a `TriageReport`. Never raises."""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from typing import TYPE_CHECKING

from bindrift.analysis.arch import HostProfile
from bindrift.analysis.elf.arch_check import arch_check
from bindrift.analysis.elf.header_checks import header_checks
from bindrift.analysis.elf.identity import identify
from bindrift.analysis.elf.kind import cap, classify
from bindrift.analysis.elf.reader import parse_elf
from bindrift.analysis.packing import packing_checks
from bindrift.analysis.safe_open import READ_FLAGS
from bindrift.analysis.source import BufferSource, ByteSource, FdSource
from bindrift.schema.severity import rank
from bindrift.schema.triage import TriageReport

if TYPE_CHECKING:
    from collections.abc import Callable

    from bindrift.analysis.provenance import PackageIndex

Target = str | os.PathLike[str] | int | bytes | bytearray | memoryview


@lru_cache(maxsize=1)
def detected_host() -> HostProfile:
    """This machine's profile, probed once per process."""
    return HostProfile.detect()


def triage(
    target: Target,
    *,
    host: HostProfile | None = None,
    compute_hash: bool = True,
    label: str | None = None,
    packages: Callable[[], PackageIndex | None] | None = None,
) -> TriageReport:
    """Triage a file given as a path (opened with O_NOFOLLOW: a symlink is not followed), an open descriptor,
    or its bytes. Walkers of hostile trees open with `safe_open.open_nofollow` (no symlink in any path
    component) and pass the descriptor.

    `label` is the path shown in the report (defaults to the path, `fd:N` or `<bytes>`). The SHA-256 is
    computed for ELF files only, streamed through the descriptor. With `packages` (a loader of package
    records, called only when needed: hashing on, or a finding to cap), a file on disk is looked up by its
    label and its package record's digest computed in the same read (analysis.provenance).
    Problems become report fields.
    """
    if isinstance(target, bytes | bytearray | memoryview):
        data = bytes(target)
        sha = None
        if compute_hash and data[:4] == b"\x7fELF":
            import hashlib  # hashing's modules load only when a digest is asked for (header scans skip them)

            sha = hashlib.sha256(data).hexdigest()
        return triage_source(BufferSource(data), path=label or "<bytes>", host=host, sha256=sha)
    if isinstance(target, int):
        return _triage_fd(target, label or f"fd:{target}", host, compute_hash, packages)
    path = os.fspath(target)
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as exc:
        return TriageReport(path=label or path, size=0, is_elf=False, error=_describe(exc))
    try:
        return _triage_fd(fd, label or path, host, compute_hash, packages)
    finally:
        os.close(fd)


def _triage_fd(
    fd: int,
    label: str,
    host: HostProfile | None,
    compute_hash: bool,
    packages: Callable[[], PackageIndex | None] | None,
) -> TriageReport:
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return TriageReport(path=label, size=0, is_elf=False, error="not a regular file")
        src = FdSource(fd, st.st_size)
        report = triage_source(src, path=label, host=host, executable=bool(st.st_mode & 0o111))
        index = None
        if packages is not None and report.is_elf and (compute_hash or any(rank(f.severity) for f in report.findings)):
            index = packages()
        record = index.lookup(label) if index is not None else None
        unchanged = record is not None and record.unchanged_since_install(st.st_ctime_ns)
        digest = None
        if compute_hash and report.is_elf and report.error is None:
            from bindrift.analysis.hashing import digests_fd
            from bindrift.analysis.provenance import MAX_DIGESTED

            verify = record is not None and not unchanged and st.st_size <= MAX_DIGESTED
            algorithms = ("sha256", record.algorithm) if verify and record is not None else ()
            hexes = digests_fd(fd, algorithms or ("sha256",))
            report.sha256 = hexes[0]
            digest = hexes[1].encode() if len(hexes) > 1 else None
        if record is not None and index is not None:
            from bindrift.analysis.provenance import apply

            apply(report, index, fd=fd, verify=compute_hash, record=record, digest=digest, unchanged=unchanged)
        return report
    except OSError as exc:
        return TriageReport(path=label, size=0, is_elf=False, error=_describe(exc))


def triage_source(
    src: ByteSource,
    *,
    path: str,
    host: HostProfile | None = None,
    sha256: str | None = None,
    executable: bool | None = None,
) -> TriageReport:
    """Triage bytes already opened as a `ByteSource` (e.g. an archive member read in-stream)."""
    try:
        return _analyse(src, path, host or detected_host(), sha256, executable)
    except OSError as exc:
        return TriageReport(path=path, size=src.size, is_elf=False, error=_describe(exc))
    except Exception as exc:  # a bug must not stop a scan; the report carries it
        import logging  # imported on failure only: the scan's start-up does without it

        logging.getLogger(__name__).exception("triage failed on %r", path)
        return TriageReport(path=path, size=src.size, is_elf=True, error=f"analysis failed: {exc!r}")


def _analyse(
    src: ByteSource, path: str, host: HostProfile, sha256: str | None, executable: bool | None
) -> TriageReport:
    elf = parse_elf(src)
    if elf is None:
        return TriageReport(path=path, size=src.size, is_elf=False)
    ident = identify(elf)
    runs, findings = arch_check(elf, ident, host)
    findings += header_checks(elf, ident.interpreters, executable)
    findings += packing_checks(elf)
    kind = classify(elf)
    findings = cap(findings, kind)
    findings.sort(key=lambda f: -rank(f.severity))
    notes = [f"reader: {problem}" for problem in elf.problems]
    if not src.complete:
        notes.append("file too large to hold in full: checks used its head and tail only")
    return TriageReport(
        path=path, size=src.size, is_elf=True, sha256=sha256, arch=ident.arch, machine=elf.machine,
        bits=ident.bits, endian=ident.endian, type=ident.type, osabi=ident.osabi,
        interpreter=ident.interpreters[0] if ident.interpreters else None, linking=ident.linking, runs=runs,
        kind=kind.name, kind_reason=kind.reason or None, findings=findings, notes=notes,
    )  # fmt: skip


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)
