"""*Added* / *Modified Binary Executed*: is the executed file's content part of the container's image?

An upper-layer copy alone proves nothing (chmod, chown and touch copy a file up unchanged), so the
content executed is compared with the same path in the image layers: absent from every lower layer
means added, a different hash means modified, the same hash means a harmless copy-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from bindrift.analysis.hashing import sha256_fd
from bindrift.analysis.safe_open import open_beneath
from bindrift.schema.finding import Category, Evidence

MAX_LOWER_HASH = 512 * 2**20


@dataclass(frozen=True, slots=True)
class DriftVerdict:
    """The category (None: part of the image) and the evidence behind it."""

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


def classify_exec(fd: int, path: str, upper: str, lowers: list[str], started: datetime | None) -> DriftVerdict:
    """Compare the executed file (read through the event's `fd`) with the container's layers."""
    upper_fd = _open_in_layer(upper, path)
    if upper_fd is None:
        return DriftVerdict(None, "", [])  # untouched image file: nothing to hash
    os.close(upper_fd)
    current = sha256_fd(fd)
    st = os.fstat(fd)
    changed = datetime.fromtimestamp(st.st_ctime, UTC)
    timing = Evidence("timing", f"file changed at {changed.isoformat()}"
                      + (f", container started at {started.isoformat()}" if started else ""),
                      {"ctime": changed.isoformat(), "container_started": started.isoformat() if started else None,
                       "changed_after_start": bool(started and changed > started)})  # fmt: skip
    for depth, lower in enumerate(lowers):
        lower_fd = _open_in_layer(lower, path)
        if lower_fd is None:
            continue
        try:
            original = sha256_fd(lower_fd) if os.fstat(lower_fd).st_size <= MAX_LOWER_HASH else ""
        finally:
            os.close(lower_fd)
        layers = Evidence(
            "layers",
            f"{path} is in the upper layer and in image layer {depth + 1} of {len(lowers)}",
            {"upper": True, "lower_layer": depth + 1, "lower_sha256": original, "sha256": current},
        )
        if original == current:
            return DriftVerdict(None, current, [layers, timing])  # copy-up with unchanged content
        content = Evidence("content", f"content differs from the image: sha256 {current} now, {original} before",
                           {"lower_sha256": original, "sha256": current})  # fmt: skip
        return DriftVerdict("Modified Binary Executed", current, [layers, content, timing])
    layers = Evidence("layers", f"{path} is in the upper layer and in none of the {len(lowers)} image layers",
                      {"upper": True, "lower_layers": len(lowers), "sha256": current})  # fmt: skip
    return DriftVerdict("Added Binary Executed", current, [layers, timing])


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
