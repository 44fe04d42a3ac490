"""Response records: a binary captured as evidence, and the response policies that decide what happens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from bindrift.schema.finding import Resource
from bindrift.schema.severity import Severity

Mode = Literal["alert", "prevent", "block"]


class EvidenceRecord(msgspec.Struct, frozen=True):
    """A copy of a finding's binary in the content-addressed evidence store (`stored` is its file)."""

    id: str
    finding_id: str
    sha256: str
    size: int
    path: str  # the file's path where it was found (container-relative)
    resource: Resource
    captured_at: datetime
    stored: str
    verified: bool = True


class ResponsePolicy(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """What to do with findings in a scope. Every scope that is set must match; none set matches all.

    `alert` only records; `prevent` denies the execution (fanotify permission events) of an incompatible,
    tampered or known-malicious binary, and of any added or modified binary when `drift` is set; `block`
    also stops the container of a matching finding."""

    id: str
    mode: Mode = "alert"
    namespace: str = ""
    image: str = ""
    container: str = ""  # container name glob or id prefix
    category: str = ""
    severity: Severity | None = None  # at least this severe
    drift: bool = False
