"""The regular files of a container image's final file system, read in-stream, layer by layer.

Layers are visited top-most first, so each path is settled by the first layer that mentions it:
whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`) hide what lies below, and a file
replaced in a later layer is reported once, from the layer that supplies it. The result is exactly
that of applying the layers in manifest order, yet every member is read once and nothing is extracted.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from bindrift.analysis.source import BufferSource, ByteSource, WindowSource
from bindrift.sensors.image_layout import Image, ImageFormatError, Layer, read_images
from bindrift.sensors.targets import ImageMember, ScanError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
CHUNK = 1 << 20
HEAD_KEPT = 64 * 2**20
TAIL_KEPT = 8 * 2**20
HARDLINK_BUDGET = 128 * 2**20
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(slots=True)
class _Shadow:
    """What the layers above hide from the layers below."""

    supplied: set[str] = field(default_factory=set)  # paths an upper layer has (any type)
    deleted: set[str] = field(default_factory=set)  # whiteouts: the path and everything below it
    opaque: set[str] = field(default_factory=set)  # directories whose lower content is hidden
    non_dirs: set[str] = field(default_factory=set)  # upper files/links: nothing can lie below them

    def hides(self, path: str) -> bool:
        if path in self.supplied or path in self.deleted:
            return True
        parent = posixpath.dirname(path)
        while parent != "/":
            if parent in self.deleted or parent in self.opaque or parent in self.non_dirs:
                return True
            parent = posixpath.dirname(parent)
        return "/" in self.opaque

    def merge(self, layer: _Shadow) -> None:
        self.supplied |= layer.supplied
        self.deleted |= layer.deleted
        self.opaque |= layer.opaque
        self.non_dirs |= layer.non_dirs


def iter_image_members(
    archive: str, *, want_hash: bool = True, max_buffer: int = 256 * 2**20
) -> Iterator[ImageMember | ScanError]:
    """Every regular file visible in the image(s) of `archive` (docker save / OCI archive / OCI layout)."""
    try:
        for image in read_images(archive):
            yield from _image_members(image, want_hash, max_buffer)
    except (ImageFormatError, OSError, tarfile.TarError, EOFError) as exc:
        yield ScanError(archive, f"not a readable container image: {exc}")


def _image_members(image: Image, want_hash: bool, max_buffer: int) -> Iterator[ImageMember | ScanError]:
    shadow = _Shadow()
    for layer in reversed(image.layers):
        this_layer = _Shadow()
        try:
            yield from _layer_members(image.name, layer, shadow, this_layer, want_hash, max_buffer)
        except (OSError, tarfile.TarError, EOFError, ImageFormatError) as exc:
            yield ScanError(f"{image.name}@{layer.digest}", f"layer unreadable: {exc}")
        shadow.merge(this_layer)


def _layer_members(
    image: str, layer: Layer, shadow: _Shadow, this_layer: _Shadow, want_hash: bool, max_buffer: int
) -> Iterator[ImageMember | ScanError]:
    kept: dict[str, ImageMember] = {}
    kept_bytes = 0
    with layer.open() as blob, _Decompressed(blob) as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            path = _normalise(member.name)
            name = posixpath.basename(path)
            if name == OPAQUE:
                this_layer.opaque.add(posixpath.dirname(path))
                continue
            if name.startswith(WHITEOUT):
                this_layer.deleted.add(posixpath.join(posixpath.dirname(path), name[len(WHITEOUT) :]))
                continue
            if shadow.hides(path):
                continue
            this_layer.supplied.add(path)
            if not member.isdir():
                this_layer.non_dirs.add(path)
            if member.islnk():
                yield _hardlink(image, layer, path, _normalise(member.linkname), kept)
            elif member.isreg():
                found = _read_member(image, layer.digest, path, member, tar, want_hash, max_buffer)
                if found.is_elf and found.source is not None and kept_bytes + found.size <= HARDLINK_BUDGET:
                    kept[path] = found
                    kept_bytes += found.size
                yield found


def _normalise(name: str) -> str:
    """An archive member name as an absolute path inside the image (`..` cannot climb above `/`)."""
    path = posixpath.normpath("/" + name)
    return "/" + path.lstrip("/")


def _hardlink(
    image: str, layer: Layer, path: str, target: str, kept: dict[str, ImageMember]
) -> ImageMember | ScanError:
    original = kept.get(target)
    if original is None:
        return ScanError(f"{image}!{path}", f"hard link to {target}, which is not an ELF file of this layer")
    return ImageMember(
        path=path, image=image, layer=layer.digest, size=original.size, is_elf=True, executable=original.executable,
        source=original.source, sha256=original.sha256, complete=original.complete,
    )  # fmt: skip


def _read_member(
    image: str, layer: str, path: str, member: tarfile.TarInfo, tar: tarfile.TarFile, want_hash: bool, max_buffer: int
) -> ImageMember:
    executable = bool(member.mode & 0o111)
    handle = tar.extractfile(member)
    head = handle.read(4) if handle is not None else b""
    base = ImageMember(path=path, image=image, layer=layer, size=member.size, is_elf=False, executable=executable)
    if head != b"\x7fELF" or handle is None:
        return base
    digest = hashlib.sha256(head) if want_hash else None
    source, complete = _buffer(handle, head, member.size, digest, max_buffer)
    base.is_elf, base.source, base.complete = True, source, complete
    base.sha256 = digest.hexdigest() if digest is not None else None
    return base


def _buffer(
    handle: IO[bytes], head: bytes, size: int, digest: hashlib._Hash | None, max_buffer: int
) -> tuple[ByteSource, bool]:
    """The member's bytes: all of them up to `max_buffer`, else its head and tail (still hashed whole)."""
    parts = [head]
    held = len(head)
    tail = bytearray()
    while True:
        chunk = handle.read(CHUNK)
        if not chunk:
            break
        if digest is not None:
            digest.update(chunk)
        if size <= max_buffer:
            parts.append(chunk)
            continue
        room = HEAD_KEPT - held
        if room > 0:
            parts.append(chunk[:room])
            held += min(room, len(chunk))
            chunk = chunk[room:]
        tail += chunk
        del tail[: max(0, len(tail) - TAIL_KEPT)]
    data = b"".join(parts)
    if size <= max_buffer:
        return BufferSource(data), True
    return WindowSource(data, bytes(tail), size), False


class _Decompressed:
    """The layer blob as an uncompressed stream: zstd through `zstandard` when installed; gzip, bzip2
    and xz are left to tarfile's own stream detection."""

    def __init__(self, blob: IO[bytes]) -> None:
        self.blob = blob
        self.reader: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        peek = self.blob.read(4)
        self.blob.seek(0)
        if peek != ZSTD_MAGIC:
            return self.blob
        try:
            import zstandard
        except ImportError as exc:
            raise ImageFormatError("zstd-compressed layer: install the 'zstandard' package to read it") from exc
        self.reader = zstandard.ZstdDecompressor().stream_reader(self.blob)
        return self.reader

    def __exit__(self, *_exc: object) -> None:
        if self.reader is not None:
            self.reader.close()
