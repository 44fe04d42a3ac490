"""Container images in a scan: members read in-stream and triaged here, credited only once their layer
is verified (a layer whose digest does not match, or whose stream broke off, has nothing reported)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from bindrift.analysis.safe_open import open_nofollow
from bindrift.schema.triage import TriageReport
from bindrift.sensors.targets import ImageMember, ScanError

if TYPE_CHECKING:
    from bindrift.analysis.arch import HostProfile

TAR_MAGIC_OFFSET = 257
GZIP_MAGIC = b"\x1f\x8b"


def is_image(path: str) -> bool:
    """An image archive or OCI layout named on the command line (a symlink the user named is followed).
    The image readers are imported only once the cheap checks (an `oci-layout` file, a tar or gzip magic)
    pass, so scanning plain files and folders does not pay for them."""
    real = os.path.realpath(path)
    if os.path.isdir(real):
        if not os.path.isfile(os.path.join(real, "oci-layout")):
            return False
        from bindrift.sensors.image_layout import is_oci_layout

        return is_oci_layout(real)
    if not os.path.isfile(real):
        return False  # a FIFO, device or socket is never opened: the file walk reports it
    try:
        fd = open_nofollow(real)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False  # swapped for a special file since the check above
        gzip_magic = os.pread(fd, 2, 0)
        tar_magic = os.pread(fd, 5, TAR_MAGIC_OFFSET)
    finally:
        os.close(fd)
    if tar_magic != b"ustar" and gzip_magic != GZIP_MAGIC:
        return False
    from bindrift.sensors.image_layout import is_image_archive

    return is_image_archive(real)


def image_reports(
    path: str, host: HostProfile, compute_hash: bool, progress: Callable[[int], None] | None
) -> Iterator[TriageReport | ScanError]:
    """Reports of the image's members, each layer's credited once its `LayerEnd` says so, all of an image
    given their provenance and released at its `ImageEnd` (its package records may come from any layer)."""
    from bindrift.scan.held_image import HeldImage
    from bindrift.sensors.images import ImageEnd, LayerEnd, iter_image_members
    from bindrift.sensors.package_db import PackageDbFile

    held = HeldImage(compute_hash)
    for item in iter_image_members(os.path.realpath(path), want_hash=compute_hash):
        if isinstance(item, ScanError):
            yield item
        elif isinstance(item, PackageDbFile):
            held.db_files.append(item)
        elif isinstance(item, LayerEnd):
            yield from held.layer_end(item.image, item.layer, item.problems)
        elif isinstance(item, ImageEnd):
            yield from held.release(item.root_links)
            held = HeldImage(compute_hash)
        else:
            if progress:
                progress(1)
            held.add(member_report(item, host), item)
    yield from held.release({})  # an image cut short: what its verified layers held


def member_report(member: ImageMember, host: HostProfile) -> TriageReport:
    """The triage of one image member (non-ELF members: a report saying so)."""
    from bindrift.analysis.triage import triage_source

    if not member.is_elf or member.source is None:
        return TriageReport(path=member.path, size=member.size, is_elf=False, image=member.image, layer=member.layer)
    report = triage_source(
        member.source, path=member.path, host=host, sha256=member.sha256, executable=member.executable
    )
    report.image, report.layer = member.image, member.layer
    return report
