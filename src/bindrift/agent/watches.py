"""The agent's watch coverage: one fanotify notification group holding the marks of every container (its
overlay root and every other writable mount) and of the host paths; a container whose marks cannot all be
placed is retried, and reported once per distinct failure (the loop turns it into *Coverage degraded*)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bindrift.context.containers import ContainerContext
from bindrift.context.mountinfo import WatchedMount
from bindrift.sensors.runtime.fanotify import FanEvent, FanotifyGroup
from bindrift.sensors.runtime.marks import DEFAULT_MAX_MARKS, MarkedGroup, MountTarget

RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class Route:
    """Where an event came from: its container (None for a host path) and the mount it came through."""

    container: ContainerContext | None
    label: str
    mount: WatchedMount | None = None

    @property
    def on_volume(self) -> bool:
        """Through a mount other than the container's overlay root (no image layer to compare with)."""
        return self.mount is not None and self.mount.kind != "root"


@dataclass(slots=True)
class Attachment:
    """A container being watched: the failures of its last attempt (mount → why) and when to retry."""

    container: ContainerContext
    failures: dict[str, str] = field(default_factory=dict)
    retry_at: float = 0.0
    reported: frozenset[tuple[str, str]] = frozenset()
    announced: bool = False


def mount_values(mount: WatchedMount) -> dict[str, str | int | bool | None]:
    """A mount as evidence values."""
    return {"mountpoint": mount.mountpoint, "fstype": mount.fstype, "source": mount.source, "kind": mount.kind}


class Watches:
    """Marks for every container in one group; `sync` attaches new containers, retries failed ones, lets go
    of ended ones, and returns the failures not reported yet."""

    def __init__(self, max_marks: int = DEFAULT_MAX_MARKS) -> None:
        self.max_marks = max_marks
        self.attached: dict[str, Attachment] = {}
        self.host_paths: list[str] = []
        self.unavailable = ""  # why there is no group yet ("" once there is one)
        self._marks: MarkedGroup[Route] | None = None
        self.open()

    def open(self) -> str:
        """Create the group if it is not there yet (fanotify_init fails with EMFILE while the node's
        `fs.fanotify.max_user_groups` is used up by others): "" once it exists, else why not."""
        if self._marks is not None:
            return ""
        try:
            group = FanotifyGroup()
        except OSError as exc:
            self.unavailable = str(exc)
            return self.unavailable
        self._marks = MarkedGroup(group, self.max_marks)
        self.unavailable = ""
        for path in self.host_paths:
            self._watch_host_path(self._marks, path)
        for attachment in self.attached.values():  # containers left unwatched for want of a group: now
            attachment.retry_at = 0.0
        return ""

    @property
    def unrouted(self) -> int:
        """Events through no known mark (a container that just ended)."""
        return self._marks.unrouted if self._marks is not None else 0

    @property
    def overflows(self) -> int:
        return self._marks.group.overflows if self._marks is not None else 0

    def read(self) -> list[FanEvent]:
        return self._marks.group.read() if self._marks is not None else []

    def watch_host_path(self, path: str) -> None:
        """Watch a host file system (`--host-path`) as a whole (from when the group exists)."""
        self.host_paths.append(path)
        if self._marks is not None:
            self._watch_host_path(self._marks, path)

    @staticmethod
    def _watch_host_path(marks: MarkedGroup[Route], path: str) -> None:
        marks.group.mark_filesystem(path)
        marks.add_device(f"host:{path}", os.stat(path).st_dev, Route(None, path))

    def route(self, fd: int, device: int) -> Route | None:
        return self._marks.route(fd, device) if self._marks is not None else None

    def attach(self, container: ContainerContext, now: float) -> Attachment:
        """Mark what is not marked yet of a container (a retry marks only what failed before); with no group
        yet, every mount is a failure."""
        attachment = self.attached.setdefault(container.id, Attachment(container))
        label = f"container {container.id} ({container.runtime})"
        targets = [MountTarget(m.mount_id, m.mountpoint, m.kind == "root", Route(container, label, m))
                   for m in container.mounts]  # fmt: skip
        if self._marks is None:  # every mount is unwatched until the group exists (retried)
            failures = {m.mountpoint: f"no fanotify group: {self.unavailable}" for m in container.mounts}
        else:
            failures = self._marks.attach(container.id, container.init_pid, targets)
        if not any(m.kind == "root" for m in container.mounts):
            failures["/"] = "the root file system is read-only or not listed: only its other mounts are watched"
        if container.mounts_beyond_cap:
            failures["…"] = f"{container.mounts_beyond_cap} writable mounts beyond the cap are not watched"
        attachment.failures = failures
        attachment.retry_at = now + RETRY_S
        return attachment

    def due_retries(self, now: float) -> list[ContainerContext]:
        return [a.container for a in self.attached.values() if a.failures and a.retry_at <= now]

    def detach(self, cid: str) -> None:
        self.attached.pop(cid, None)
        if self._marks is not None:
            self._marks.detach(cid)

    def close(self) -> None:
        if self._marks is not None:
            self._marks.group.close()
