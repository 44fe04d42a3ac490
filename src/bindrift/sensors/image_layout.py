"""Where an image's layers are: `docker save` tarballs, OCI image archives and OCI layout folders.

Only the small JSON documents (index, manifests, configs) are read whole, each capped and checked
against the digest that names it; layer blobs are opened as streams, with the digests they must have.
An archive's own members are indexed with the bounded tar reader, their data skipped by seeking.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import IO, Any

from bindrift.sensors.blob_stream import GZIP_MAGIC, Expected, Slice, parse_digest
from bindrift.sensors.tar_stream import REGULAR, TarFormatError, TarStream

MAX_JSON = 4 * 2**20
MAX_MEMBERS_PROBED = 100_000
MAX_INDEX_DEPTH = 4
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
_HEX_NAME = re.compile(r"(?:blobs/(sha256|sha512)/)?([0-9a-f]{64}|[0-9a-f]{128})(?:\.json|\.tar)?")


class ImageFormatError(Exception):
    """The archive or folder is not a readable container image."""


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer: its digest as users see it, how to open its blob, and the digests it must have."""

    digest: str
    open: Callable[[], AbstractContextManager[IO[bytes]]]
    expected: Expected


@dataclass(frozen=True, slots=True)
class Image:
    """One image (one platform of a multi-platform index) and its layers, lowest first."""

    name: str
    layers: list[Layer]


def is_oci_layout(path: str) -> bool:
    """A folder holding an OCI image layout (`oci-layout` and `index.json`)."""
    return os.path.isfile(os.path.join(path, "oci-layout")) and os.path.isfile(os.path.join(path, "index.json"))


def is_image_archive(path: str) -> bool:
    """A tarball (plain or gzip-compressed, as `docker save | gzip` writes) holding `manifest.json` (docker
    save) or `oci-layout` + `index.json` (OCI)."""
    try:
        with _open_archive(path) as stream:
            names = set()
            for count, entry in enumerate(TarStream(stream, seek_skip=True)):
                names.add(entry.name.removeprefix("./"))
                if count >= MAX_MEMBERS_PROBED:
                    break
    except (OSError, EOFError, TarFormatError):
        return False
    return "manifest.json" in names or {"oci-layout", "index.json"} <= names


@contextmanager
def _open_archive(path: str) -> Iterator[IO[bytes]]:
    """The archive's tar stream: the file itself, or its gzip decompression (seeking forward inflates)."""
    with open(path, "rb") as fh:
        if fh.read(2) != GZIP_MAGIC:
            fh.seek(0)
            yield fh
            return
        import gzip

        fh.seek(0)
        with gzip.GzipFile(fileobj=fh, mode="rb") as unzipped:
            yield unzipped  # type: ignore[misc]


class _Store:
    """Uniform access to the blobs and documents of an archive or a folder."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (0 if os.path.isdir(path) else os.O_NOFOLLOW))
        self.members: dict[str, tuple[int, int]] | None = None
        self.gzip = False
        if not stat.S_ISDIR(os.fstat(self.fd).st_mode):
            self.gzip = os.pread(self.fd, 2, 0) == GZIP_MAGIC
            with _open_archive(path) as stream:
                self.members = {
                    e.name.removeprefix("./"): (e.data_offset, e.size)
                    for e in TarStream(stream, seek_skip=True)
                    if e.kind == REGULAR and e.error is None
                }

    def close(self) -> None:
        os.close(self.fd)

    def exists(self, name: str) -> bool:
        if self.members is not None:
            return name in self.members
        try:
            os.close(self._open_local(name)[0])
        except OSError:
            return False
        return True

    def _open_local(self, name: str) -> tuple[int, int]:
        from bindrift.analysis.safe_open import open_beneath

        fd = open_beneath(self.fd, os.path.normpath("/" + name).lstrip("/"))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise ImageFormatError(f"{name} is not a regular file")
        return fd, st.st_size

    def opener(self, name: str) -> Callable[[], AbstractContextManager[IO[bytes]]]:
        if self.members is not None:
            where = self.members.get(name)
            if where is None:
                raise ImageFormatError(f"{name} is missing from the archive")
            if self.gzip:
                return lambda: _gzip_member(self.path, *where)
            return lambda: nullcontext(Slice(self.fd, *where))  # type: ignore[arg-type]
        if not self.exists(name):
            raise ImageFormatError(f"{name} is missing from the layout")
        return lambda: _local_blob(*self._open_local(name))

    def json(self, name: str) -> Any:
        with self.opener(name)() as handle:
            data = handle.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise ImageFormatError(f"{name} is larger than {MAX_JSON} bytes")
        named = _HEX_NAME.fullmatch(name)
        if named is not None:
            algorithm = named.group(1) or ("sha256" if len(named.group(2)) == 64 else "sha512")
            if hashlib.new(algorithm, data).hexdigest() != named.group(2):
                raise ImageFormatError(f"{name}: content does not match the digest that names it")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ImageFormatError(f"{name} is not valid JSON: {exc}") from exc


@contextmanager
def _local_blob(fd: int, size: int) -> Iterator[IO[bytes]]:
    try:
        yield Slice(fd, 0, size)  # type: ignore[misc]
    finally:
        os.close(fd)


@contextmanager
def _gzip_member(path: str, offset: int, size: int) -> Iterator[IO[bytes]]:
    """A member of a gzip-compressed archive: inflated up to it, then read to its end."""
    with _open_archive(path) as stream:
        stream.seek(offset)
        yield io.BytesIO(stream.read(size)) if size <= MAX_JSON else _Limited(stream, size)  # type: ignore[misc]


class _Limited(io.RawIOBase):
    """The next `size` bytes of a stream."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self._stream, self._left = stream, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer)[: self._left]
        got = int(self._stream.readinto(view) or 0)  # type: ignore[attr-defined]
        self._left -= got
        return got


def read_images(path: str) -> Iterator[Image]:
    """The images in an archive or layout folder. Raises ImageFormatError (or OSError) when unreadable."""
    try:
        store = _Store(path)
    except TarFormatError as exc:
        raise ImageFormatError(f"not a readable tar archive: {exc}") from exc
    try:
        if store.exists("index.json"):
            yield from _oci_images(store, store.json("index.json"), os.path.basename(path), 0)
        elif store.exists("manifest.json"):
            yield from _docker_images(store, os.path.basename(path))
        else:
            raise ImageFormatError("neither index.json (OCI) nor manifest.json (docker save) found")
    finally:
        store.close()


def _blob_name(digest: Any) -> str:
    if not isinstance(digest, str) or ":" not in digest:
        raise ImageFormatError(f"bad digest {digest!r}")
    algorithm, _, hexdigest = digest.partition(":")
    if not algorithm.isalnum() or not hexdigest.isalnum():
        raise ImageFormatError(f"bad digest {digest!r}")
    return f"blobs/{algorithm}/{hexdigest}"


def _oci_images(store: _Store, index: Any, label: str, depth: int) -> Iterator[Image]:
    if depth > MAX_INDEX_DEPTH or not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ImageFormatError("index.json has no manifests list")
    for descriptor in index["manifests"]:
        if not isinstance(descriptor, dict):
            raise ImageFormatError("malformed manifest descriptor")
        document = store.json(_blob_name(descriptor.get("digest")))
        if descriptor.get("mediaType") in INDEX_TYPES or isinstance(document.get("manifests"), list):
            yield from _oci_images(store, document, label, depth + 1)
            continue
        name = _descriptor_name(descriptor, label)
        layers = document.get("layers") if isinstance(document, dict) else None
        if not isinstance(layers, list):
            raise ImageFormatError(f"manifest {descriptor.get('digest')} has no layers list")
        yield Image(name, [_oci_layer(store, layer) for layer in layers])


def _oci_layer(store: _Store, layer: Any) -> Layer:
    if not isinstance(layer, dict):
        raise ImageFormatError("malformed layer descriptor")
    digest = layer.get("digest")
    return Layer(str(digest), store.opener(_blob_name(digest)), Expected(blob=str(digest)))


def _descriptor_name(descriptor: dict[str, Any], label: str) -> str:
    annotations = descriptor.get("annotations") or {}
    ref = annotations.get("io.containerd.image.name") or annotations.get("org.opencontainers.image.ref.name")
    name = f"{label}:{ref}" if isinstance(ref, str) and ref else label
    platform = descriptor.get("platform")
    if isinstance(platform, dict) and platform.get("architecture"):
        name += f" [{platform.get('os', 'linux')}/{platform['architecture']}]"
    return name


def _docker_images(store: _Store, label: str) -> Iterator[Image]:
    manifest = store.json("manifest.json")
    if not isinstance(manifest, list):
        raise ImageFormatError("manifest.json is not a list")
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Layers"), list):
            raise ImageFormatError("manifest.json entry has no Layers list")
        tags = entry.get("RepoTags") or []
        name = f"{label}:{tags[0]}" if tags and isinstance(tags[0], str) else label
        config = entry.get("Config")
        if not isinstance(config, str) or not store.exists(config):
            raise ImageFormatError("manifest.json names no image config: the layers' diff-ids cannot be verified")
        document = store.json(config)
        rootfs = document.get("rootfs") if isinstance(document, dict) else None
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or len(diff_ids) != len(entry["Layers"]):
            raise ImageFormatError(f"{config}: rootfs.diff_ids does not list one diff-id per layer")
        layers = []
        for i, layer_path in enumerate(entry["Layers"]):
            if not isinstance(layer_path, str):
                raise ImageFormatError("manifest.json layer path is not a string")
            diff_id = diff_ids[i] if i < len(diff_ids) and isinstance(diff_ids[i], str) else None
            from_path = _digest_from_path(layer_path)
            blob = from_path if parse_digest(from_path) else None
            expected = Expected(blob=blob, diff_id=diff_id)
            layers.append(Layer(diff_id or from_path, store.opener(layer_path.removeprefix("./")), expected))
        yield Image(name, layers)


def _digest_from_path(path: str) -> str:
    """`blobs/sha256/<hex>` (docker ≥ 25) names its digest; legacy `<id>/layer.tar` names the layer id."""
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        return f"{parts[1]}:{parts[2]}"
    return f"layer-id:{parts[0]}"
