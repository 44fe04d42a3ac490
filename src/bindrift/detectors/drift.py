"""*Added* / *Modified Binary Executed*: is the executed file's content part of the container's image?

An upper-layer copy alone proves nothing (chmod, chown and touch copy a file up unchanged), so the
content executed is compared with the same path in the image layers: absent from every lower layer
means added, a different hash means modified, the same hash means a harmless copy-up.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime

from bindrift.analysis.hashing import Digest, sha256_fd_bounded
from bindrift.analysis.safe_open import open_beneath
from bindrift.schema.finding import Category, Evidence

SCRIPT_HEAD = 256  # a #! line longer than this is cut (the kernel reads at most 256 bytes of it)


@dataclass(frozen=True, slots=True)
class DriftVerdict:
    """The category (None: part of the image) and the evidence behind it; `sha256` is "" for a file over the
    hashing budget (its head's hash is in the evidence)."""

    category: Category | None
    sha256: str
    evidence: list[Evidence]


def _open_in_layer(layer: str, path: str) -> int | None:
    try:
        layer_fd = os.open(layer, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return open_beneath(layer_fd, path)
    except OSError:
        return None
    finally:
        os.close(layer_fd)


def _timing(st: os.stat_result, started: datetime | None) -> Evidence:
    changed = datetime.fromtimestamp(st.st_ctime, UTC)
    return Evidence("timing", f"file changed at {changed.isoformat()}"
                    + (f", container started at {started.isoformat()}" if started else ""),
                    {"ctime": changed.isoformat(), "container_started": started.isoformat() if started else None,
                     "changed_after_start": bool(started and changed > started)})  # fmt: skip


def budget_evidence(digest: Digest) -> list[Evidence]:
    """What a file over the hashing budget had hashed (nothing for a file hashed whole)."""
    if not digest.bounded:
        return []
    mib = digest.hashed >> 20
    return [Evidence("budget", f"file over the {mib} MiB hashing budget: only its first {mib} MiB were hashed and "
                     "compared (header triage only)", {"hashed_bytes": digest.hashed, "head_sha256": digest.head_sha256,
                                                       "bounded": True})]  # fmt: skip


def deleted_evidence(path: str, deleted: bool) -> list[Evidence]:
    """The mark of a file deleted before it was looked at."""
    if not deleted:
        return []
    return [Evidence("deleted", f"{path} was deleted while running: classified from the open descriptor",
                     {"deleted": True, "last_path": path})]  # fmt: skip


def script_evidence(fd: int, path: str) -> Evidence | None:
    """For a file run through its `#!` line (a script, not a binary: *Added Script Executed*), the evidence
    naming its interpreter; None when the file is not a script."""
    head = os.pread(fd, SCRIPT_HEAD, 0)
    if not head.startswith(b"#!"):
        return None
    interpreter = head[2:].split(b"\n", 1)[0].strip().decode("utf-8", "backslashreplace")
    return Evidence("script", f"script {path} run by its interpreter {interpreter}",
                    {"interpreter": interpreter, "script": path})  # fmt: skip


def in_upper_layer(upper: str, path: str) -> bool:
    """Whether `path` is in the container's upper layer (an image file run untouched is not: nothing to hash)."""
    upper_fd = _open_in_layer(upper, path)
    if upper_fd is None:
        return False
    os.close(upper_fd)
    return True


def written_during_life(st: os.stat_result, started: datetime | None, *, seen_written: bool) -> bool:
    """Whether a file on a volume, bind mount or tmpfs was written during the container's life: seen written
    by the agent, or changed after the container started."""
    return seen_written or bool(started and datetime.fromtimestamp(st.st_ctime, UTC) > started)


def classify_exec(fd: int, path: str, upper: str, lowers: list[str], started: datetime | None, *,
                  deleted: bool = False) -> DriftVerdict:  # fmt: skip
    """Compare the executed file (read through the event's `fd`, a regular file) with the container's layers.
    A `deleted` file (no link left) is not in the upper layer any more: it is compared with the image only."""
    if not deleted and not in_upper_layer(upper, path):
        return DriftVerdict(None, "", [])  # untouched image file: nothing to hash
    current = sha256_fd_bounded(fd)
    st = os.fstat(fd)
    notes = [_timing(st, started), *budget_evidence(current), *deleted_evidence(path, deleted)]
    for depth, lower in enumerate(lowers):
        lower_fd = _open_in_layer(lower, path)
        if lower_fd is None:
            continue
        try:
            lower_st = os.fstat(lower_fd)
            original = sha256_fd_bounded(lower_fd) if stat.S_ISREG(lower_st.st_mode) else Digest("", "", 0, False)
        finally:
            os.close(lower_fd)
        where = "in the upper layer" if not deleted else "deleted"
        layers = Evidence(
            "layers",
            f"{path} is {where} and in image layer {depth + 1} of {len(lowers)}",
            {"upper": not deleted, "lower_layer": depth + 1, "lower_sha256": original.sha256, "sha256": current.sha256},
        )
        same = (original.head_sha256 == current.head_sha256 and original.bounded == current.bounded
                and lower_st.st_size == st.st_size)  # fmt: skip
        if same:
            return DriftVerdict(None, current.sha256, [layers, *notes])  # copy-up with unchanged content
        content = Evidence("content", f"content differs from the image: sha256 {current.sha256 or current.head_sha256} "
                           f"now, {original.sha256 or original.head_sha256} before",
                           {"lower_sha256": original.sha256, "sha256": current.sha256})  # fmt: skip
        return DriftVerdict("Modified Binary Executed", current.sha256, [layers, content, *notes])
    where = "in the upper layer" if not deleted else "deleted, last seen"
    layers = Evidence("layers", f"{path} is {where} and in none of the {len(lowers)} image layers",
                      {"upper": not deleted, "lower_layers": len(lowers), "sha256": current.sha256})  # fmt: skip
    return DriftVerdict("Added Binary Executed", current.sha256, [layers, *notes])


def classify_mount_exec(
    fd: int,
    path: str,
    mount: dict[str, str | int | bool | None],
    started: datetime | None,
    *,
    seen_written: bool,
    deleted: bool = False,
) -> DriftVerdict:
    """An executed file on a volume, bind mount or tmpfs (no image layer to compare with): added when it was
    written during the container's life — seen written by the agent, or changed after the container started."""
    st = os.fstat(fd)
    if not written_during_life(st, started, seen_written=seen_written):
        return DriftVerdict(None, "", [])
    current = sha256_fd_bounded(fd)
    why = "seen written by the agent" if seen_written else "changed after the container started"
    summary = (f"{path} is on {mount['kind']} mount {mount['mountpoint']} ({mount['fstype']} {mount['source']}), "
               f"not in the image: {why}")  # fmt: skip
    where = Evidence("mount", summary, {**mount, "seen_written": seen_written})
    notes = [_timing(st, started), *budget_evidence(current), *deleted_evidence(path, deleted)]
    return DriftVerdict("Added Binary Executed", current.sha256, [where, *notes])


class UntouchedFiles:
    """Executed files found to be the image's own, by container and path, with the identity and change time
    they had then: a repeat exec of the same file (a shell loop, a probe) skips the layer lookups. Any change
    to a file (a write, even through mmap, a copy-up, a rename over it) gives it a new ctime or inode, so it
    is looked at again; a file changed within SETTLED_S of being seen is not remembered, so that a change
    within the same clock tick as the one before cannot pass for it."""

    SETTLED_S = 1.0

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._seen: dict[tuple[str, str], tuple[int, int, int, int]] = {}

    def untouched(self, container_id: str, path: str, st: os.stat_result) -> bool:
        return self._seen.get((container_id, path)) == (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_size)

    def remember(self, container_id: str, path: str, st: os.stat_result, now_ns: int) -> None:
        if now_ns - st.st_ctime_ns < self.SETTLED_S * 1e9:
            return
        if len(self._seen) >= self.limit:
            self._seen.pop(next(iter(self._seen)))
        self._seen[(container_id, path)] = (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_size)

    def forget(self, container_id: str) -> None:
        for key in [k for k in self._seen if k[0] == container_id]:
            del self._seen[key]
