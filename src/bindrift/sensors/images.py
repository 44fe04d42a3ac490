"""The regular files of a container image's final file system, read in-stream, layer by layer.

Layers are visited top-most first, so each path is settled by the first layer that mentions it:
whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`) hide what lies below, and a file
replaced in a later layer is reported once, from the layer that supplies it. The result is exactly
that of applying the layers in manifest order, yet every member is read once and nothing is extracted.

Every layer's digests are verified while it streams; a `LayerEnd` follows its members and says whether
they may be credited. Package databases met on the way are handed on as `PackageDbFile`s (bounded,
sensors/package_db.py; an ELF file at such a path is triaged like any other), and an `ImageEnd` closes
each image with its top-level symlinks, so provenance is decided once every layer has been read.
Hard links resolve to their target whatever it is: from the recently read ELF bytes kept within a
budget, else by reading the layer a second time for the targets still wanted.
Memory stays bounded: ELF members up to `IN_MEMORY` are held, larger ones spill to an unlinked
temporary file (complete, read like a file on disk), and only beyond `MAX_SPILL` is a member reduced to
its head and tail.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import msgspec

from bindrift.analysis.source import BufferSource, ByteSource, FdSource, WindowSource
from bindrift.sensors.blob_stream import layer_stream, plain_stream
from bindrift.sensors.image_layout import ImageFormatError, Layer, read_images
from bindrift.sensors.package_db import DbBudget, PackageDbFile, package_db_kind, read_package_db
from bindrift.sensors.tar_stream import DIRECTORY, HARDLINK, REGULAR, SYMLINK, TarEntry, TarFormatError, TarStream
from bindrift.sensors.targets import ImageMember, ScanError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
CHUNK = 1 << 20
HEAD_KEPT = 64 * 2**20
TAIL_KEPT = 8 * 2**20
# ELF bytes kept for hard links met later in the layer; links beyond it are served by a second read.
RECENT_BUDGET = 48 * 2**20
IN_MEMORY = 32 * 2**20
MAX_SPILL = 4 * 2**30
ELF_MAGIC = b"\x7fELF"
MAX_ROOT_LINKS = 64


class LayerEnd(msgspec.Struct, frozen=True):
    """After a layer's members: `problems` (digest mismatches, a stream that broke off) mean none of
    the members just sent may be credited to the layer."""

    image: str
    layer: str
    problems: list[str]


class ImageEnd(msgspec.Struct, frozen=True):
    """After an image's last layer: its top-level symlinks as the final file system has them
    (`/bin` → `usr/bin`), at most `MAX_ROOT_LINKS`."""

    image: str
    root_links: dict[str, str]


ImageItem = ImageMember | ScanError | LayerEnd | PackageDbFile | ImageEnd


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


def iter_image_members(archive: str, *, want_hash: bool = True, max_spill: int = MAX_SPILL) -> Iterator[ImageItem]:
    """Every regular file visible in the image(s) of `archive` (docker save / OCI archive / OCI layout),
    each layer's members followed by its `LayerEnd`."""
    try:
        for image in read_images(archive):
            shadow = _Shadow()
            budget = DbBudget()
            root_links: dict[str, str] = {}
            for layer in reversed(image.layers):
                reader = _LayerReader(image.name, layer, shadow, want_hash, max_spill, budget, root_links)
                yield from reader.members()
                shadow.merge(reader.shadow)
            yield ImageEnd(image.name, root_links)
    except (ImageFormatError, OSError, EOFError, TarFormatError) as exc:
        yield ScanError(archive, f"not a readable container image: {exc}")


def _normalise(name: str) -> str:
    """An archive member name as an absolute path inside the image (`..` cannot climb above `/`)."""
    path = posixpath.normpath("/" + name)
    return "/" + path.lstrip("/")


class _LayerReader:
    """One layer's visible members, its hard links resolved, then its `LayerEnd`."""

    def __init__(
        self, image: str, layer: Layer, below: _Shadow, want_hash: bool, max_spill: int, budget: DbBudget,
        root_links: dict[str, str],
    ) -> None:  # fmt: skip
        self.image, self.layer, self.below = image, layer, below
        self.want_hash, self.max_spill = want_hash, max_spill
        self.shadow = _Shadow()
        self.files: dict[str, ImageMember] = {}  # regular files read from this layer, by path
        self.recent: OrderedDict[str, ByteSource] = OrderedDict()  # ELF bytes by path, within RECENT_BUDGET
        self.recent_bytes = 0
        self.links: dict[str, str] = {}  # hard links not yet resolved: link path → the path holding the bytes
        self.budget = budget  # the image's package databases so far (shared by its layers)
        self.root_links = root_links  # the image's top-level symlinks (shared by its layers)

    def members(self) -> Iterator[ImageItem]:
        problems: list[str] = []
        try:
            with self.layer.open() as raw, layer_stream(raw, self.layer.expected) as (stream, check):
                if self.layer.expected.blob is None and self.layer.expected.diff_id is None:
                    problems.append("no digest to verify the layer against")
                yield from self._first_pass(TarStream(stream))
                problems += check()
            if self.links:
                yield from self._second_pass()
        except (TarFormatError, OSError, EOFError, ImageFormatError) as exc:
            problems.append(f"layer unreadable: {exc}")
        yield LayerEnd(self.image, self.layer.digest, problems)

    def _first_pass(self, tar: TarStream) -> Iterator[ImageMember | ScanError | PackageDbFile]:
        for entry in tar:
            path = _normalise(entry.name)
            if entry.error is not None:
                yield ScanError(f"{self.image}!{path}", f"{entry.error} (layer {self.layer.digest}, offset "
                                f"{entry.offset}); entry skipped")  # fmt: skip
                continue
            name = posixpath.basename(path)
            if name == OPAQUE:
                self.shadow.opaque.add(posixpath.dirname(path))
                continue
            if name.startswith(WHITEOUT):
                self.shadow.deleted.add(posixpath.join(posixpath.dirname(path), name[len(WHITEOUT) :]))
                continue
            if self.below.hides(path):
                continue
            self.shadow.supplied.add(path)
            if entry.kind != DIRECTORY:
                self.shadow.non_dirs.add(path)
            if entry.kind == HARDLINK:
                resolved = self._link(path, _normalise(entry.linkname))
                if resolved is not None:
                    yield resolved
            elif entry.kind == REGULAR:
                head = _head(tar, entry.size)
                kind = package_db_kind(path)
                if kind is not None and head[0] != ELF_MAGIC:
                    yield read_package_db(tar, self.image, self.layer.digest, path, kind, entry.size, self.budget,
                                          head[1])  # fmt: skip
                member = self._read(tar, entry, path, head)
                self._remember(member)
                yield member
            elif entry.kind == SYMLINK and posixpath.dirname(path) == "/" and len(self.root_links) < MAX_ROOT_LINKS:
                self.root_links.setdefault(path, entry.linkname)

    def _read(
        self, tar: TarStream, entry: TarEntry, path: str, peeked: tuple[bytes, bytes] | None = None
    ) -> ImageMember:
        """The member; an ELF one with its bytes. `peeked`: its first bytes and those of them consumed."""
        member = ImageMember(path=path, image=self.image, layer=self.layer.digest, size=entry.size, is_elf=False,
                             executable=bool(entry.mode & 0o111))  # fmt: skip
        magic, head = peeked or _head(tar, entry.size)
        if magic != ELF_MAGIC:
            return member
        member.is_elf = True
        digest = hashlib.sha256(head) if self.want_hash else None
        if entry.size <= min(IN_MEMORY, self.max_spill):
            data = head + tar.read(entry.size)
            if digest is not None:
                digest.update(data[len(head) :])
            member.source = BufferSource(data)
        elif entry.size <= self.max_spill:
            member.source = _spill(tar, head, entry.size, digest)
        else:
            member.source, member.complete = _window(tar, head, entry.size, digest), False
        member.sha256 = digest.hexdigest() if digest is not None else None
        return member

    def _remember(self, member: ImageMember) -> None:
        self.files[member.path] = ImageMember(
            path=member.path, image=member.image, layer=member.layer, size=member.size, is_elf=member.is_elf,
            executable=member.executable, sha256=member.sha256, complete=member.complete,
        )  # fmt: skip
        if member.source is None or member.size > RECENT_BUDGET:
            return
        self.recent[member.path] = member.source
        self.recent_bytes += member.size
        while self.recent_bytes > RECENT_BUDGET:
            _, dropped = self.recent.popitem(last=False)
            self.recent_bytes -= dropped.size

    def _link(self, path: str, target: str) -> ImageMember | None:
        """The member for a hard link when its target is at hand; else remembered for the second pass."""
        target = self.links.get(target, target)  # a link to a pending link: to the same bytes
        known = self.files.get(target)
        if known is not None and (not known.is_elf or target in self.recent):
            self.files[path] = known
            return _as(known, path, self.recent.get(target))
        self.links[path] = target
        return None

    def _second_pass(self) -> Iterator[ImageMember | ScanError]:
        """Read the layer again for the targets of the links still pending (their layer is verified)."""
        wanted: dict[str, list[str]] = {}
        for link, target in self.links.items():
            wanted.setdefault(target, []).append(link)
        with self.layer.open() as raw, plain_stream(raw) as (stream, seekable):
            tar = TarStream(stream, seek_skip=seekable)
            for entry in tar:
                links = wanted.pop(_normalise(entry.name), None) if entry.error is None else None
                if links is None:
                    continue
                if entry.kind == REGULAR:
                    member = self._read(tar, entry, _normalise(entry.name))
                    yield from (_as(member, link, member.source) for link in links)
                if not wanted:
                    break
        for target, links in wanted.items():
            for link in links:
                yield ScanError(f"{self.image}!{link}", f"hard link to {target}, which its layer does not hold")


def _head(tar: TarStream, size: int) -> tuple[bytes, bytes]:
    """The member's first 4 bytes, and those of them consumed (when the stream's buffer ended within them)."""
    magic = tar.peek(4)
    if len(magic) < min(4, size):
        magic = tar.read(4)
        return magic, magic
    return magic, b""


def _as(member: ImageMember, path: str, source: ByteSource | None) -> ImageMember:
    return ImageMember(
        path=path, image=member.image, layer=member.layer, size=member.size, is_elf=member.is_elf,
        executable=member.executable, source=source, sha256=member.sha256, complete=member.complete,
    )  # fmt: skip


def _spill(tar: TarStream, head: bytes, size: int, digest: hashlib._Hash | None) -> ByteSource:
    """A large member copied to an unlinked temporary file (bounded memory, every byte still there)."""
    import tempfile

    spilled = tempfile.TemporaryFile()  # noqa: SIM115 - open for as long as the source is referenced
    spilled.write(head)
    while chunk := tar.read(CHUNK):
        if digest is not None:
            digest.update(chunk)
        spilled.write(chunk)
    spilled.flush()
    return SpilledSource(spilled, size)


class SpilledSource(FdSource):
    """The bytes of a member spilled to a temporary file, which lives as long as this source."""

    __slots__ = ("_file",)

    def __init__(self, spilled: IO[bytes], size: int) -> None:
        super().__init__(spilled.fileno(), size)
        self._file = spilled


def _window(tar: TarStream, head: bytes, size: int, digest: hashlib._Hash | None) -> ByteSource:
    """A member too large even to spill: its head and tail kept, the whole of it still hashed."""
    kept = bytearray(head)
    tail = bytearray()
    while chunk := tar.read(CHUNK):
        if digest is not None:
            digest.update(chunk)
        room = HEAD_KEPT - len(kept)
        if room > 0:
            kept += chunk[:room]
            chunk = chunk[room:]
        tail += chunk
        del tail[: max(0, len(tail) - TAIL_KEPT)]
    return WindowSource(bytes(kept), bytes(tail), size)
