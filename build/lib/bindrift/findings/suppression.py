"""Suppression: user rules scoped to where noise comes from, and the built-in package-manager trust.

A suppressed finding is stored muted and counted, never dropped; `suppressed_by` names the rule.
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from fnmatch import fnmatchcase

import msgspec

from bindrift.schema.finding import Detection, ProcessInfo

PACKAGE_MANAGER_RULE = "builtin:package-manager"
PACKAGE_MANAGERS = frozenset({
    "dpkg", "apt", "apt-get", "aptitude", "unattended-upgr", "unattended-upgrade", "apk", "rpm", "dnf", "yum",
    "microdnf", "zypper", "pip", "pip3", "pipx",
})  # fmt: skip


class SuppressionRule(msgspec.Struct, frozen=True, omit_defaults=True):
    """Every scope that is set must match. Globs (fnmatch) for pod, container, path and writer."""

    id: str
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    cluster: str = ""
    namespace: str = ""
    pod: str = ""
    image: str = ""  # a repository (any tag) like `docker.io/library/nginx`, `repo:tag`, or a `sha256:` digest
    container: str = ""  # container name or id
    path: str = ""
    writer: str = ""  # process name or executable path of the writer
    sha256: str = ""
    category: str = ""

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    def matches(self, detection: Detection) -> bool:
        """True when every scope the rule sets matches the detection."""
        r = detection.resource
        checks = (
            (self.cluster, lambda v: v == r.cluster),
            (self.namespace, lambda v: v == r.namespace),
            (self.pod, lambda v: fnmatchcase(r.pod, v)),
            (self.image, lambda v: image_matches(v, r.image, r.image_digest)),
            (self.container, lambda v: fnmatchcase(r.container_name, v) or r.container_id.startswith(v)),
            (self.path, lambda v: fnmatchcase(detection.file.path, v)),
            (self.writer, lambda v: _writer_matches(v, detection.writer)),
            (self.sha256, lambda v: v.lower() == detection.file.sha256),
            (self.category, lambda v: v == detection.category),
        )
        return any(value for value, _ in checks) and all(test(value) for value, test in checks if value)


def image_matches(rule: str, image: str, digest: str) -> bool:
    if rule.startswith("sha256:"):
        return rule == digest or image.endswith("@" + rule)
    if rule == image:
        return True
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: len(repository) - len(last)] + last.split(":", 1)[0]
    return rule == repository


def _writer_matches(rule: str, writer: ProcessInfo | None) -> bool:
    if writer is None:
        return False
    return (
        fnmatchcase(writer.comm, rule)
        or fnmatchcase(writer.exe, rule)
        or fnmatchcase(posixpath.basename(writer.exe), rule)
    )


def trusted_installer(detection: Detection) -> str | None:
    """The package manager that wrote the file during an install (the writer or one of its ancestors),
    or None. `python -m pip` counts as pip. Intelligence outranks trust: a known-bad file stays active."""
    writer = detection.writer
    if writer is None or detection.intel:
        return None
    chain = [(writer.comm, writer.exe, writer.args)] + [(p.comm, p.exe, p.args) for p in writer.lineage]
    for comm, exe, args in chain:
        for name in (comm, posixpath.basename(exe)):
            if name in PACKAGE_MANAGERS:
                return name
        if posixpath.basename(exe).startswith("python") and args[1:3] == ["-m", "pip"]:
            return "pip"
    return None


def first_match(rules: list[SuppressionRule], detection: Detection, now: datetime) -> SuppressionRule | None:
    """The first active rule that matches."""
    return next((rule for rule in rules if rule.active(now) and rule.matches(detection)), None)
