"""Image archives written by hand in tests (OCI archives and docker-save archives), so each hostile shape
(wrong digests, corrupt streams, oversized headers, hard links) is built by the test that needs it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Link:
    """A hard link (`hard`) or symlink to `target` in a layer tarball."""

    target: str
    hard: bool = True


def layer_tar(entries: dict[str, bytes | Link | None]) -> bytes:
    """An uncompressed layer: bytes → regular file (mode 755), None → directory, Link → link."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.mode = 0o755
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(data, Link):
                info.type = tarfile.LNKTYPE if data.hard else tarfile.SYMTYPE
                info.linkname = data.target
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def compress(layer: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(layer, compresslevel=1)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(layer)
    return layer


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write_tar(path: Path, files: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def oci_archive(
    path: Path, blobs: list[bytes], digests: list[str] | None = None, name: str = "handmade:1"
) -> list[str]:
    """An OCI archive of these layer blobs (as stored: compressed or not); `digests` overrides the
    manifest's digest of each blob (to make it lie). Returns the digests the manifest names."""
    named = digests or [sha256(blob) for blob in blobs]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": sha256(config.encode()), "size": len(config)},
                           "layers": [{"mediaType": OCI_LAYER, "digest": d} for d in named]}).encode()  # fmt: skip
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "handmade:1"}}]}).encode()  # fmt: skip
    files = [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("index.json", index)]
    stored = {sha256(b): b for b in [manifest, config.encode()]} | dict(zip(named, blobs, strict=True))
    files += [(f"blobs/sha256/{d.removeprefix('sha256:')}", b) for d, b in stored.items()]
    _write_tar(path, files)
    return named


def docker_archive(path: Path, layers: list[bytes], diff_ids: list[str] | None = None) -> list[str]:
    """A docker-save archive of these uncompressed layers; `diff_ids` overrides the config's diff-ids."""
    named = diff_ids or [sha256(layer) for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": named}})
    config_name = sha256(config.encode()).removeprefix("sha256:") + ".json"
    layer_names = [f"{sha256(layer).removeprefix('sha256:')}.tar" for layer in layers]
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["handmade:1"], "Layers": layer_names}]).encode()
    _write_tar(
        path, [("manifest.json", manifest), (config_name, config.encode()), *zip(layer_names, layers, strict=True)]
    )
    return named
