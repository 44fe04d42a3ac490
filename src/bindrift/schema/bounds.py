"""What a detection may carry into the store. Every string a hostile source chooses that lands in a column of
bounded length is cut to that length, visibly (it ends with a marker naming a hash of the whole value, so two
long values stay apart), and freed of NUL characters, which PostgreSQL refuses in text. A file path is only
bounded in length (its column has none): it keeps a NUL, so that response refuses to act on it, and the store
writes its column without. What was changed is recorded in the detection's evidence with its original length:
never silently. The store's columns are at least these lengths (tests/store check it).

An event time outside [1970, 9000) — Go's zero time (year 1) from a source that left it unset, or a forged one
that no column or time window can hold — is replaced by the time the detection was received, with the time
given in the same evidence."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import msgspec

from bindrift.schema.finding import Detection, Evidence

# The incident scope column (255) holds "node:" + the node, and "container:" + the container id.
RESOURCE_LIMITS: dict[str, int] = {
    "node": 250, "cluster": 255, "namespace": 255, "pod": 255, "container_id": 128, "image": 1024,
    "container_name": 1024,
}  # fmt: skip
PATH_LIMIT = 65_536  # far above PATH_MAX: bounds what one finding carries in its text columns
SHA256_LIMIT = 64
EVIDENCE_KIND = "bounded"
NUL_REPLACEMENT = "\ufffd"
# No source bindrift reads predates the Unix epoch; the upper bound leaves the incident window room below the
# largest time Python and the databases hold.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def bound_text(value: str, limit: int, keep_nul: bool = False) -> str:
    """`value` within `limit` characters, without NUL (unless `keep_nul`): cut ones end with
    `…[cut <hash of the whole>]`."""
    if not keep_nul and "\x00" in value:
        value = value.replace("\x00", NUL_REPLACEMENT)
    if len(value) <= limit:
        return value
    marker = f"…[cut {hashlib.sha256(value.encode(errors='replace')).hexdigest()[:8]}]"
    return value[: max(limit - len(marker), 0)] + marker[:limit]


def bound_detection(detection: Detection) -> Detection:
    """`detection` as the store can hold it; the same object when nothing needed changing (the common case)."""
    resource, file = detection.resource, detection.file
    changed: dict[str, str | int | bool | None] = {}
    fixes: dict[str, str] = {}
    for name, limit in RESOURCE_LIMITS.items():
        value: str = getattr(resource, name)
        if len(value) > limit or "\x00" in value:
            fixes[name] = bound_text(value, limit)
            changed[f"resource.{name}"] = len(value)
    path, sha256 = file.path, file.sha256
    if len(path) > PATH_LIMIT:
        path, changed["file.path"] = bound_text(path, PATH_LIMIT, keep_nul=True), len(path)
    if len(sha256) > SHA256_LIMIT or "\x00" in sha256:
        sha256, changed["file.sha256"] = bound_text(sha256, SHA256_LIMIT), len(sha256)
    observed_at = detection.observed_at
    if not _storable(observed_at):
        changed["observed_at"] = observed_at.isoformat()
        observed_at = datetime.now(UTC)
    if not changed:
        return detection
    parts = []
    if len(changed) > ("observed_at" in changed):
        parts.append("fields over the store's limits were cut (ending in …[cut HASH]) or had NUL characters "
                     "replaced (values: their original lengths)")  # fmt: skip
    if "observed_at" in changed:
        parts.append("an event time out of range was replaced by the time received (value: the time given)")
    note = Evidence(EVIDENCE_KIND, "; ".join(parts), changed)
    return msgspec.structs.replace(
        detection, observed_at=observed_at, resource=msgspec.structs.replace(resource, **fixes),
        file=msgspec.structs.replace(file, path=path, sha256=sha256), evidence=[*detection.evidence, note],
    )  # fmt: skip


def _storable(moment: datetime) -> bool:
    """Whether an event time is in [EARLIEST, LATEST) (a time without a zone is taken as UTC)."""
    try:
        utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        return False  # past year 9999 once brought to UTC
    return EARLIEST <= utc < LATEST
