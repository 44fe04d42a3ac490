"""An image's package records, from the database files its layers left in its final file system.

The image sensor hands the files it kept (each already settled by the layer order and whiteouts, with
its kind: `dpkg` md5sums, `apk` installed, `rpm` sqlite) and the image's top-level symlinks, which give
the merged-/usr aliases (`/bin` → `usr/bin`: records name `bin/ls`, the layer holds `usr/bin/ls`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from bindrift.analysis.provenance.records import PackageIndex
from bindrift.analysis.provenance.rpm import rpm_index
from bindrift.analysis.source import ByteSource

MAX_ALIASES = 64


def image_index(
    files: Iterable[tuple[str, str, ByteSource]], root_links: dict[str, str]
) -> tuple[PackageIndex | None, list[tuple[str, str]]]:
    """The index of (kind, path in the image, content) files, None when there are none; and the files
    refused or holding records not kept (path, why)."""
    aliases = _aliases(root_links)
    problems: list[tuple[str, str]] = []
    md5sums: list[tuple[str, bytes, int]] = []
    found: list[tuple[str, PackageIndex]] = []
    for kind, path, content in sorted(files, key=lambda f: f[1]):
        if kind == "dpkg":
            md5sums.append((posixpath.basename(path).removesuffix(".md5sums"), content.read(0, content.size), 0))
        elif kind == "apk":
            found.append((path, PackageIndex.from_apk(content.read(0, content.size), aliases)))
        else:
            index, problem = rpm_index(content, aliases)
            if problem is not None:
                problems.append((path, f"package database refused: {problem}; its records are not applied"))
            else:
                found.append((path, index))
    if md5sums:
        found.insert(0, ("/var/lib/dpkg/info", PackageIndex.from_dpkg(md5sums, aliases)))
    if not found:
        return None, problems
    for path, index in found:
        if index.dropped:
            problems.append((path, f"{index.dropped} {index.source} record(s) malformed or over the cap; not applied"))
    index = found[0][1]
    for _, other in found[1:]:
        index.merge(other)
    return index, problems


def _aliases(root_links: dict[str, str]) -> dict[str, str]:
    """Real directory prefix → the top-level link naming it (`/usr/bin/` → `/bin/`)."""
    aliases = {}
    for link, target in sorted(root_links.items())[:MAX_ALIASES]:
        real = posixpath.normpath(posixpath.join("/", target))
        if real not in ("/", link):
            aliases[real + "/"] = link + "/"
    return aliases
