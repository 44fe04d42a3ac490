"""What the offline sensors hand to analysis: files on disk, image members read in-stream, errors."""

from __future__ import annotations

import msgspec

from bindrift.analysis.source import ByteSource


class DiskFile(msgspec.Struct, frozen=True):
    """A regular file found on disk (never reached through a symlink); its reader checks it again through the
    descriptor it opens (it may have changed since)."""

    path: str


class DiskDirectory(msgspec.Struct, frozen=True):
    """A directory named as a root (a symlink root resolved once), to be walked."""

    path: str


class ImageMember(msgspec.Struct):
    """A regular file of a container image's final file system, read in-stream from its layer.

    `source` holds the bytes of ELF members only; `sha256` is streamed over the whole member when
    hashing was asked for. `complete` is False when a huge member kept only its head and tail.
    """

    path: str
    image: str
    layer: str
    size: int
    is_elf: bool
    executable: bool
    source: ByteSource | None = None
    sha256: str | None = None
    complete: bool = True


class ScanError(msgspec.Struct, frozen=True):
    """A path that could not be read, and why."""

    path: str
    message: str
