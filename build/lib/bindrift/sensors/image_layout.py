"""Where an image's layers are: `docker save` tarballs, OCI image archives and OCI layout folders.

Only the small JSON documents (index, manifests, configs) are read whole, each capped; layer blobs are
opened as streams for `image_layers`.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import IO, Any

MAX_JSON = 4 * 2**20
MAX_MEMBERS_PROBED = 100_000
MAX_INDEX_DEPTH = 4
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}


class ImageFormatError(Exception):
    """The archive or folder is not a readable container image."""


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer: its digest as users see it, and how to open its blob as a stream."""

    digest: str
    open: Callable[[], AbstractContextManager[IO[bytes]]]


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
        with tarfile.open(path, "r:*") as tar:
            names = set()
            for count, member in enumerate(tar):
                names.add(member.name.removeprefix("./"))
                if count >= MAX_MEMBERS_PROBED:
                    break
    except (OSError, tarfile.TarError, EOFError):
        return False
    return "manifest.json" in names or {"oci-layout", "index.json"} <= names


class _Store:
    """Uniform access to the blobs and documents of an archive or a folder."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tar: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}
        if not os.path.isdir(path):
            self.tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by `close`
            self.members = {m.name.removeprefix("./"): m for m in self.tar if m.isreg()}

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()

    def exists(self, name: str) -> bool:
        if self.tar is not None:
            return name in self.members
        return os.path.isfile(self._local(name))

    def _local(self, name: str) -> str:
        clean = os.path.normpath("/" + name).lstrip("/")
        return os.path.join(self.path, clean)

    def opener(self, name: str) -> Callable[[], AbstractContextManager[IO[bytes]]]:
        if self.tar is not None:
            member = self.members.get(name)
            if member is None:
                raise ImageFormatError(f"{name} is missing from the archive")
            tar = self.tar

            def open_member() -> AbstractContextManager[IO[bytes]]:
                handle = tar.extractfile(member)
                if handle is None:
                    raise ImageFormatError(f"{name} is not a regular file")
                return nullcontext(handle)

            return open_member
        local = self._local(name)
        if not os.path.isfile(local):
            raise ImageFormatError(f"{name} is missing from the layout")
        return lambda: open(local, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW))

    def json(self, name: str) -> Any:
        with self.opener(name)() as handle:
            data = handle.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise ImageFormatError(f"{name} is larger than {MAX_JSON} bytes")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ImageFormatError(f"{name} is not valid JSON: {exc}") from exc


def read_images(path: str) -> Iterator[Image]:
    """The images in an archive or layout folder. Raises ImageFormatError (or OSError) when unreadable."""
    try:
        store = _Store(path)
    except tarfile.TarError as exc:
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
    return Layer(str(digest), store.opener(_blob_name(digest)))


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
        diff_ids: list[Any] = []
        config = entry.get("Config")
        if isinstance(config, str) and store.exists(config):
            rootfs = store.json(config).get("rootfs") or {}
            diff_ids = rootfs.get("diff_ids") or []
        layers = []
        for i, layer_path in enumerate(entry["Layers"]):
            if not isinstance(layer_path, str):
                raise ImageFormatError("manifest.json layer path is not a string")
            digest = (
                diff_ids[i] if i < len(diff_ids) and isinstance(diff_ids[i], str) else _digest_from_path(layer_path)
            )
            layers.append(Layer(digest, store.opener(layer_path.removeprefix("./"))))
        yield Image(name, layers)


def _digest_from_path(path: str) -> str:
    """`blobs/sha256/<hex>` (docker ≥ 25) names its digest; legacy `<id>/layer.tar` names the layer id."""
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        return f"{parts[1]}:{parts[2]}"
    return f"layer-id:{parts[0]}"
