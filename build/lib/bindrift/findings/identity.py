"""Deterministic finding and incident ids."""

from __future__ import annotations

import hashlib

from bindrift.schema.finding import Category, Detection, Resource

# Escalation to a Malicious category keeps the id, so a finding is not duplicated when intelligence arrives.
FAMILY: dict[Category, str] = {
    "Suspicious binary": "suspicious",
    "Added Binary Executed": "added",
    "Added Malicious Binary Executed": "added",
    "Modified Binary Executed": "modified",
    "Modified Malicious Binary Executed": "modified",
    "Added Library Loaded": "library",
    "Fileless execution": "fileless",
    "Coverage degraded": "coverage",
    "Prevention degraded": "prevention",
}


def scope_key(resource: Resource) -> str:
    """The container a finding belongs to, or its node for host findings."""
    if resource.container_id:
        return f"container:{resource.container_id}"
    return f"node:{resource.node}"


def finding_id(detection: Detection) -> str:
    """One finding per (container or node, file content, category family)."""
    content = detection.file.sha256 or f"path:{detection.file.path}"
    key = "\0".join((FAMILY[detection.category], scope_key(detection.resource), content))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def incident_id(resource: Resource, first_seen_iso: str) -> str:
    """An incident: one container (or pod, or node) from its first finding on."""
    key = "\0".join((scope_key(resource), resource.namespace, resource.pod, first_seen_iso))
    return "inc-" + hashlib.sha256(key.encode()).hexdigest()[:24]
