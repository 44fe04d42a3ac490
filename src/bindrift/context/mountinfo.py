"""A container's mounts from `/proc/PID/mountinfo`: the overlay layers of its root file system, and every
writable mount a file could be written to or executed from (volumes, bind mounts, tmpfs, `/dev/shm`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import msgspec

MAX_MOUNTINFO = 4 * 2**20
# Mounts watched per container at most; more are counted as not watched (Coverage degraded).
MAX_WATCHED_MOUNTS = 64
# Kernel interfaces, not places a file is written to and run from.
PSEUDO_FILESYSTEMS = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "securityfs", "debugfs",
                                "tracefs", "bpf", "fusectl", "configfs", "pstore", "binfmt_misc", "autofs", "nsfs",
                                "efivarfs", "selinuxfs", "rpc_pipefs", "hugetlbfs"})  # fmt: skip
MountKind = Literal["root", "tmpfs", "volume"]


class WatchedMount(msgspec.Struct, frozen=True):
    """A writable mount of a container: its id, where it is in the container, its file system type and
    source, and its kind (the overlay root, a tmpfs such as emptyDir or /dev/shm, or a volume / bind mount)."""

    mount_id: int
    mountpoint: str
    fstype: str
    source: str
    kind: MountKind


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


def writable_mounts(mountinfo: str) -> tuple[list[WatchedMount], int]:
    """The writable mounts in this mountinfo (the root first when it is writable) and how many more there were
    beyond MAX_WATCHED_MOUNTS. Read-only mounts, kernel pseudo file systems and anything below /proc and
    /sys are left out."""
    found: list[WatchedMount] = []
    extra = 0
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, parts = left.split(), right.split(" ")
        if not sep or len(fields) < 6 or len(parts) < 3 or not fields[0].isdigit():
            continue
        mountpoint, fstype = _unescape(fields[4]), parts[0]
        read_only = "ro" in fields[5].split(",") or "ro" in parts[2].split(",")
        if read_only or fstype in PSEUDO_FILESYSTEMS or mountpoint.startswith(("/proc/", "/sys/")):
            continue
        if mountpoint in ("/proc", "/sys"):
            continue
        kind: MountKind = "root" if mountpoint == "/" else "tmpfs" if fstype in ("tmpfs", "ramfs") else "volume"
        if len(found) >= MAX_WATCHED_MOUNTS:
            extra += 1
            continue
        found.append(WatchedMount(int(fields[0]), mountpoint, fstype, _unescape(parts[1]), kind))
    found.sort(key=lambda mount: mount.kind != "root")
    return found, extra


def read_mountinfo(pid: int) -> str | None:
    """The mountinfo of process `pid` (bounded), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read(MAX_MOUNTINFO)
    except OSError:
        return None
