"""What the offline sensors hand to analysis: files on disk, image members read in-stream, errors."""

from __future__ import annotations

from dataclasses import dataclass

from bindrift.analysis.source import ByteSource


@dataclass(frozen=True, slots=True)
class DiskFile:
    """A regular file found on disk (never reached through a symlink)."""

    path: str
    size: int


@dataclass(slots=True)
class ImageMember:
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


@dataclass(frozen=True, slots=True)
class ScanError:
    """A path that could not be read, and why."""

    path: str
    message: str
