"""Suppression: user rules scoped to where noise comes from, and the built-in package-manager trust.

A suppressed finding is stored muted and counted, never dropped; `suppressed_by` names the rule.
"""

from __future__ import annotations

import posixpath
import re
from datetime import datetime
from fnmatch import fnmatchcase

import msgspec

from bindrift.schema.finding import Detection, ProcessInfo

PACKAGE_MANAGER_RULE = "builtin:package-manager"
# A package manager is known by the executable the kernel ran, at the path its package installs it: a name
# (comm, argv[0], a file's base name) is chosen by whoever starts the process, so `cp curl /tmp/dpkg` is no
# package manager. Python ones run as a system interpreter with their script (or `-m pip`) as argument.
PACKAGE_MANAGER_PATHS = re.compile(
    r"/(usr/)?s?bin/(dpkg|apt|apt-get|aptitude|aptitude-curses|apk|apk\.static|rpm|microdnf|dnf5|zypper)"
)
PYTHON_MANAGER_SCRIPTS = re.compile(r"/usr/(local/)?bin/(pip|pip3|pip3\.\d+|pipx|dnf|dnf-3|yum|unattended-upgrade)")
SYSTEM_PYTHON = re.compile(r"/usr/(local/)?bin/python3(\.\d+)?|/usr/libexec/platform-python3?(\.\d+)?")
# Sources whose events may name a process only by its comm (ingested Tracee, Falco, auditd records): there
# the name is all there is, and the reason says so. The agent always knows the executable.
PACKAGE_MANAGER_NAMES = frozenset({
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
    """Who installed the file when a package manager wrote it during an install (the writer or one of its
    ancestors), or None: `dpkg (/usr/bin/dpkg)`, or `dpkg (named so by its event only)` for an ingested event
    that gives no executable. Intelligence outranks trust: a known-bad file stays active."""
    writer = detection.writer
    if writer is None or detection.intel:
        return None
    by_name = detection.source != "agent"
    chain = [(writer.comm, writer.exe, writer.args)] + [(p.comm, p.exe, p.args) for p in writer.lineage]
    for comm, exe, args in chain:
        found = package_manager(comm, exe, args, by_name=by_name)
        if found:
            return found
    return None


def package_manager(comm: str, exe: str, args: list[str], *, by_name: bool) -> str | None:
    """The package manager a process is, from its executable (and a Python manager's script); from its name
    alone only `by_name` and when the executable is unknown."""
    if exe:
        if PACKAGE_MANAGER_PATHS.fullmatch(exe) or PYTHON_MANAGER_SCRIPTS.fullmatch(exe):
            return f"{posixpath.basename(exe)} ({exe})"
        if SYSTEM_PYTHON.fullmatch(exe):
            if args[1:3] == ["-m", "pip"]:
                return f"pip ({exe} -m pip)"
            script = next((arg for arg in args[1:3] if PYTHON_MANAGER_SCRIPTS.fullmatch(arg)), "")
            if script:
                return f"{posixpath.basename(script)} ({exe} {script})"
        return None
    if by_name and comm in PACKAGE_MANAGER_NAMES:
        return f"{comm} (named so by its event only)"
    return None


def first_match(rules: list[SuppressionRule], detection: Detection, now: datetime) -> SuppressionRule | None:
    """The first active rule that matches."""
    return next((rule for rule in rules if rule.active(now) and rule.matches(detection)), None)
