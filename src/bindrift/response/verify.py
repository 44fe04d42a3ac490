"""Re-identifying a finding's target just before acting on it: the process is still the one the finding
saw (same start time and executable), the file is still the one it hashed (opened by descriptor beneath the
container root, no symlink followed and no mount crossed, same inode, size and SHA-256).

A finding that rests on an external event alone (`event-only`), or that has no container scope, names a
target nothing on this node has checked: acting on it needs `force`, recorded with the action. A target
that no longer matches is refused, `force` or not: it is not the finding's any more.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from datetime import timedelta

from bindrift.analysis.safe_open import open_on_mount
from bindrift.schema.finding import Finding
from bindrift.sensors.runtime.process_table import start_time

CHUNK = 1 << 20
MAX_VERIFY_BYTES = 2 * 2**30  # a finding's file larger than this is not re-hashed: refused
MAX_STAT = 4096
# Both start times are computed the same way from the same tick count; a tick is 10 ms.
SAME_START = timedelta(milliseconds=5)


class RefusedError(Exception):
    """The target could not be re-identified as the finding's: the action is not carried out."""


@dataclass(slots=True)
class Checks:
    """What was verified, and what could not be (acted on only with `force`)."""

    force: bool
    verified: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)

    def need(self, what: str) -> None:
        """`what` cannot be checked: refused unless forced, recorded either way."""
        if not self.force:
            raise RefusedError(f"{what}: re-run with --force to act anyway (recorded with the action)")
        self.unverified.append(what)

    def values(self) -> dict[str, str | int | bool | None]:
        """For the action's record."""
        found: dict[str, str | int | bool | None] = {}
        if self.verified:
            found["verified"] = ",".join(self.verified)
        if self.unverified:
            found["forced"] = "; ".join(self.unverified)
        return found


def check_provenance(finding: Finding, checks: Checks) -> None:
    """An `event-only` finding, or one with no container scope, needs `force`."""
    if any(e.kind == "event-only" for e in finding.evidence):
        checks.need("the finding rests on an external event alone (event-only): nothing on this node saw it")
    if not finding.resource.container_id:
        checks.need("the finding has no container scope: its target would be on the host")


def recorded_inode(finding: Finding) -> int | None:
    """The inode of the file the detector read at the finding's current path, as its evidence capture
    recorded it (a repeat of the finding at another path has none: its content is still checked)."""
    for action in reversed(finding.actions):
        inode = action.values.get("inode")
        if action.action == "capture" and action.values.get("path") == finding.file.path and isinstance(inode, int):
            return inode
    return None


def open_target(root: str, finding: Finding, checks: Checks, inode: int | None = None) -> tuple[int, os.stat_result]:
    """A descriptor on the finding's file beneath `root`, once it is shown to be the same file: regular, on
    the root's own mount, reached without a symlink, same inode (`inode`, else the one recorded at capture),
    size and SHA-256. RefusedError otherwise; the caller closes the descriptor."""
    path = finding.file.path
    if "\0" in path:  # the kernel would see only what comes before it: another path
        raise RefusedError(f"{path!r} holds a NUL character: not a path that can be opened")
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise RefusedError(f"cannot open the root {root}: {exc.strerror}") from exc
    try:
        fd = open_on_mount(root_fd, path)
    except OSError as exc:
        why = exc.strerror
        raise RefusedError(f"cannot open {path} as a regular file without following a symlink or crossing a "
                           f"mount: {why}") from exc  # fmt: skip
    finally:
        os.close(root_fd)
    try:
        st = os.fstat(fd)
        _check_file(fd, st, finding, checks, inode if inode is not None else recorded_inode(finding))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _check_file(fd: int, st: os.stat_result, finding: Finding, checks: Checks, inode: int | None) -> None:
    path, want = finding.file.path, finding.file.sha256
    if not stat.S_ISREG(st.st_mode):
        raise RefusedError(f"{path} is not a regular file")
    if inode is not None and st.st_ino != inode:
        raise RefusedError(f"{path} was replaced since the finding (inode {st.st_ino}, was {inode})")
    if inode is not None:
        checks.verified.append("inode")
    if finding.file.size and st.st_size != finding.file.size:
        raise RefusedError(f"{path} changed since the finding ({st.st_size} bytes, was {finding.file.size})")
    if not want:
        checks.need("the finding records no SHA-256 for its file")
        return
    if st.st_size > MAX_VERIFY_BYTES:
        raise RefusedError(f"{path} is too large to re-hash ({st.st_size} bytes)")
    digest, offset = hashlib.sha256(), 0
    while offset <= st.st_size and (chunk := os.pread(fd, CHUNK, offset)):
        digest.update(chunk)
        offset += len(chunk)
    if digest.hexdigest() != want:
        raise RefusedError(f"{path} no longer has the finding's SHA-256 {want}")
    checks.verified.append("sha256")


def check_process(pidfd_pid: int, finding: Finding, checks: Checks) -> None:
    """The process `pidfd_pid` (whose pidfd the caller holds, so the pid cannot be reused meanwhile without
    the signal failing) is the finding's: same start time and executable."""
    process = finding.process
    assert process is not None
    try:
        with open(f"/proc/{pidfd_pid}/stat", "rb") as fh:
            started = start_time(fh.read(MAX_STAT))
        exe = os.readlink(f"/proc/{pidfd_pid}/exe").removesuffix(" (deleted)")
    except OSError as exc:
        raise RefusedError(f"process {pidfd_pid} cannot be read: {exc.strerror}") from exc
    if process.start_time is None:
        checks.need("the finding records no start time for its process")
    elif started is None or abs(started - process.start_time) > SAME_START:
        when = started.isoformat() if started else "unknown"
        raise RefusedError(f"pid {pidfd_pid} is another process now (started {when}, the finding's at "
                      f"{process.start_time.isoformat()})")  # fmt: skip
    else:
        checks.verified.append("start time")
    if not process.exe:
        checks.need("the finding records no executable for its process")
    elif exe != process.exe:
        raise RefusedError(f"pid {pidfd_pid} now runs {exe!r}, not the finding's {process.exe!r}")
    else:
        checks.verified.append("executable")
