"""What the agent reports about its own coverage: a container it could not fully watch or read, and the
path of an event's file as the descriptor tells it (a deleted file keeps its last path, marked deleted)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import msgspec

from bindrift.schema.finding import Detection, Evidence, FileInfo, Resource

DELETED = " (deleted)"


def last_path(path: str, st: os.stat_result) -> tuple[str, bool]:
    """(path, deleted): the kernel appends " (deleted)" to the path of a file with no link left."""
    if st.st_nlink == 0 and path.endswith(DELETED):
        return path[: -len(DELETED)], True
    return path, st.st_nlink == 0


def degraded(resource: Resource, what: str, kind: str, summary: str,
             values: dict[str, str | int | bool | None]) -> Detection:  # fmt: skip
    """A *Coverage degraded* detection: `what` part of the agent's coverage, and the evidence saying why."""
    return Detection(category="Coverage degraded", observed_at=datetime.now(UTC), resource=resource,
                     file=FileInfo(path=what), source="agent", evidence=[Evidence(kind, summary, values)])  # fmt: skip


def coverage_degraded(resource: Resource, failures: dict[str, str]) -> Detection:
    """*Coverage degraded* for a container some of whose mounts are not watched."""
    listed = "; ".join(f"{mount}: {why}" for mount, why in sorted(failures.items()))
    return degraded(
        resource,
        "fanotify-marks",
        "marks",
        f"container {resource.container_id}: {len(failures)} mount(s) not watched (retried every second): {listed}",
        {"container_id": resource.container_id, "mounts_not_watched": len(failures), "failures": listed},
    )


def discovery_failed(node: Resource, state_dir: str, error: str) -> Detection:
    """*Coverage degraded* for a container discovery could not read (so it is not watched)."""
    resource = msgspec.structs.replace(node, container_id=os.path.basename(state_dir))
    return degraded(resource, "container-discovery", "discovery",
                    f"container state {state_dir} could not be read, so the container is not watched (retried "
                    f"every 250 ms): {error}", {"state_dir": state_dir, "error": error})  # fmt: skip


def sweep_cut_short(resource: Resource, entries: int) -> Detection:
    """*Coverage degraded* for a container whose startup sweep stopped at its cap."""
    return degraded(resource, "startup-sweep", "sweep",
                    f"the startup sweep stopped after {entries} entries: files present before watching beyond them "
                    "were not triaged", {"entries": entries})  # fmt: skip


def content_dropped(node: Resource, dropped: int, kinds: dict[str, int], containers: dict[str, int]) -> Detection:
    """*Coverage degraded* for files whose content work the content worker had no room for: `dropped` since the
    last report, and the totals by kind of work and by container (the busiest ten named)."""
    names = {"write": "written ELF triage", "exec": "executed-file comparison", "evidence": "evidence copy"}
    by_kind = ", ".join(f"{names.get(kind, kind)}: {n}" for kind, n in sorted(kinds.items()))
    busiest = sorted(containers.items(), key=lambda item: -item[1])[:10]
    named = ", ".join(f"{cid or 'host'}: {n}" for cid, n in busiest)
    return degraded(node, "content-queue", "dropped",
                    f"{dropped} file(s) not analysed: the content queue was full ({by_kind}; by container {named})",
                    {"dropped": dropped, **{f"dropped_{kind}": n for kind, n in kinds.items()},
                     "containers": named})  # fmt: skip


def sensor_unavailable(node: Resource, error: str) -> Detection:
    """*Coverage degraded* for the whole node: the agent has no fanotify group (retried until it has one)."""
    return degraded(node, "fanotify-group", "fanotify",
                    f"no container is watched: {error} (fs.fanotify.max_user_groups is shared by every fanotify "
                    "user of the node; retried four times a second)", {"error": error})  # fmt: skip
