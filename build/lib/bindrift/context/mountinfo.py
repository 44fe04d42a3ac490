"""The overlay layers of a container's root file system, from `/proc/PID/mountinfo`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_MOUNTINFO = 4 * 2**20
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class OverlayRoot:
    """`upper` holds what the container added or changed; `lowers` are the image layers, top-most first."""

    upper: str
    lowers: list[str] = field(default_factory=list)


def _unescape(value: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), value)


def _split_options(options: str) -> list[str]:
    """Split on commas that are not escaped with a backslash (overlay escapes `,` in its paths)."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in options:
        if char == "," and not escaped:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        escaped = char == "\\" and not escaped
    parts.append("".join(current))
    return parts


def overlay_root(mountinfo: str) -> OverlayRoot | None:
    """The overlay mounted at `/` in this mountinfo, or None (not overlay, or rootless fuse-overlayfs)."""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or fields[4] != "/":
            continue
        parts = right.split(" ", 2)
        if parts[0] != "overlay":
            return None
        options: dict[str, str] = {}
        for option in _split_options(parts[2] if len(parts) > 2 else ""):
            key, _, value = option.partition("=")
            options[key] = value
        if "upperdir" not in options:
            return None
        lowers = [_unescape(p.replace("\\,", ",")) for p in options.get("lowerdir", "").split(":") if p]
        return OverlayRoot(_unescape(options["upperdir"].replace("\\,", ",")), lowers)
    return None


def read_overlay_root(pid: int) -> OverlayRoot | None:
    """The overlay root of process `pid` (None when it is gone or not on overlay)."""
    try:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            return overlay_root(fh.read(MAX_MOUNTINFO))
    except OSError:
        return None
