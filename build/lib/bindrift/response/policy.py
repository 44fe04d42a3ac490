"""Response policies: scoped like suppression rules (namespace, image, container, category, severity), each
with a mode. When several match, the strictest wins: `block` over `prevent` over `alert`.

A policy file is TOML:

    [[policy]]
    id = "shop-prevent"
    mode = "prevent"
    namespace = "shop"
    drift = true          # also deny added and modified binaries, not only incompatible, tampered, malicious
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

import msgspec

from bindrift.findings.suppression import image_matches
from bindrift.schema.finding import Resource
from bindrift.schema.response import Mode, ResponsePolicy
from bindrift.schema.severity import Severity, at_least

MAX_POLICY_FILE = 1 * 2**20
STRICTNESS: dict[Mode, int] = {"alert": 0, "prevent": 1, "block": 2}


class _PolicyFile(msgspec.Struct, forbid_unknown_fields=True):
    policy: list[ResponsePolicy] = msgspec.field(default_factory=list)


def load_policies(path: str | Path) -> list[ResponsePolicy]:
    """The policies in a TOML file. ValueError for a malformed file, an unknown key or a duplicate id."""
    raw = Path(path).read_bytes()[:MAX_POLICY_FILE]
    try:
        policies = msgspec.toml.decode(raw, type=_PolicyFile).policy
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    ids = [p.id for p in policies]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{path}: duplicate policy ids")
    return policies


def in_scope(policy: ResponsePolicy, resource: Resource) -> bool:
    """The policy's namespace, image and container scopes match: it may apply to the container's findings."""
    return matches(policy, resource, "", "info", where_only=True)


def matches(
    policy: ResponsePolicy, resource: Resource, category: str, severity: Severity, *, where_only: bool = False
) -> bool:
    """Every scope the policy sets matches (a policy without scopes matches everything). With `where_only`,
    only the namespace, image and container scopes are looked at."""
    checks = (
        (policy.namespace, lambda v: v == resource.namespace),
        (policy.image, lambda v: image_matches(v, resource.image, resource.image_digest)),
        (policy.container, lambda v: fnmatchcase(resource.container_name, v) or resource.container_id.startswith(v)),
        (policy.category, lambda v: where_only or v == category),
    )
    if policy.severity is not None and not where_only and not at_least(severity, policy.severity):
        return False
    return all(test(value) for value, test in checks if value)


def strictest(
    policies: list[ResponsePolicy], resource: Resource, category: str, severity: Severity
) -> ResponsePolicy | None:
    """The matching policy with the strictest mode (the first of equals), or None."""
    found = [p for p in policies if matches(p, resource, category, severity)]
    return max(found, key=lambda p: STRICTNESS[p.mode], default=None)
