"""Container images built with podman and saved in every format: layers in order, whiteouts honoured,
each file read in-stream and attributed to the layer that supplies it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from tests.containers import busybox_rootfs_tar, make_podman, podman_available

from bindrift.sensors.image_layout import is_image_archive, is_oci_layout
from bindrift.sensors.images import ImageEnd, LayerEnd, iter_image_members
from bindrift.sensors.targets import ImageMember, ScanError

pytestmark = pytest.mark.skipif(not podman_available(), reason="needs podman, as root")

CONTAINERFILE = """FROM localhost/bdbase:latest
RUN rm /opt/arm64-busybox && rm -r /opt/gone
COPY replaced /opt/replaced
"""


def _members(archive: Path) -> dict[str, ImageMember]:
    found: dict[str, ImageMember] = {}
    for item in iter_image_members(str(archive)):
        assert not isinstance(item, ScanError), item
        if isinstance(item, LayerEnd):
            assert not item.problems, item
        elif isinstance(item, ImageMember):
            found[item.path] = item
    return found


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("images")
    podman = make_podman(work / "podman")
    amd64 = test_binaries / "busybox-static-amd64" / "bin" / "busybox"
    arm64 = test_binaries / "busybox-static-arm64" / "bin" / "busybox"
    rootfs = busybox_rootfs_tar(amd64, work / "rootfs.tar", {
        "/opt/arm64-busybox": arm64, "/opt/replaced": amd64, "/opt/gone/inner": arm64, "/opt/kept": arm64,
    })  # fmt: skip
    context = work / "context"
    context.mkdir()
    (context / "Containerfile").write_text(CONTAINERFILE)
    (context / "replaced").write_bytes(arm64.read_bytes())
    try:
        podman("import", "--change", 'CMD ["/bin/sh"]', str(rootfs), "localhost/bdbase:latest")
        podman("build", "--network", "none", "-t", "localhost/bdtest:latest", "-f", str(context / "Containerfile"),
               str(context))  # fmt: skip
        saved = {
            "oci-archive": work / "oci.tar",
            "docker-archive": work / "docker.tar",
            "oci-dir": work / "oci-dir",
        }
        for fmt, target in saved.items():
            podman("save", "--format", fmt, "-o", str(target), "localhost/bdtest:latest")
        layers = json.loads(podman("inspect", "localhost/bdtest:latest"))[0]["RootFS"]["Layers"]
        saved_layers = {"diff_ids": layers}
        (work / "layers.json").write_text(json.dumps(saved_layers))
        yield {**saved, "layers": work / "layers.json"}
    finally:
        podman.reset()


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive", "oci-dir"])
def test_final_filesystem_with_whiteouts(images: dict[str, Path], test_binaries: Path, fmt: str) -> None:
    target = images[fmt]
    assert is_oci_layout(str(target)) if fmt == "oci-dir" else is_image_archive(str(target))
    members = _members(target)
    arm64 = (test_binaries / "busybox-static-arm64" / "bin" / "busybox").read_bytes()
    amd64 = (test_binaries / "busybox-static-amd64" / "bin" / "busybox").read_bytes()
    assert "/opt/arm64-busybox" not in members, "deleted by a whiteout in the upper layer"
    assert "/opt/gone/inner" not in members, "its directory was deleted"
    kept, replaced, busybox = members["/opt/kept"], members["/opt/replaced"], members["/bin/busybox"]
    assert kept.sha256 == hashlib.sha256(arm64).hexdigest() and kept.is_elf and kept.complete
    assert replaced.sha256 == hashlib.sha256(arm64).hexdigest(), "the upper layer's content wins"
    assert busybox.sha256 == hashlib.sha256(amd64).hexdigest() and busybox.executable
    assert replaced.layer != kept.layer, "each file names the layer that supplies it"
    assert "/etc/passwd" in members and not members["/etc/passwd"].is_elf and members["/etc/passwd"].sha256 is None
    assert "/bin/sh" not in members, "symlinks are not reported as files"
    if fmt == "docker-archive":
        diff_ids = json.loads(images["layers"].read_text())["diff_ids"]
        assert {kept.layer, replaced.layer} <= set(diff_ids)
        assert kept.layer == diff_ids[0]
    else:
        assert kept.layer.startswith("sha256:") and replaced.layer.startswith("sha256:")
    assert "bdtest" in kept.image


def test_gzip_compressed_archive(images: dict[str, Path], tmp_path: Path) -> None:
    compressed = tmp_path / "image.tar.gz"
    compressed.write_bytes(gzip.compress(images["docker-archive"].read_bytes(), compresslevel=1))
    assert is_image_archive(str(compressed))
    assert _members(compressed).keys() == _members(images["docker-archive"]).keys()


def _layer_tar(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
                info.mode = 0o755
            tar.addfile(info, io.BytesIO(data) if not name.endswith("/") else None)
    return buffer.getvalue()


def _oci_archive(path: Path, layers: list[bytes]) -> list[str]:
    """An OCI archive whose layers are gzip blobs (as registries serve them), written by hand."""
    blobs: dict[str, bytes] = {}
    digests = []
    for layer in layers:
        blob = gzip.compress(layer)
        digest = hashlib.sha256(blob).hexdigest()
        blobs[digest] = blob
        digests.append(f"sha256:{digest}")
    manifest = json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d} for d in digests
    ]}).encode()  # fmt: skip
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    blobs[manifest_digest] = manifest
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{manifest_digest}",
        "annotations": {"org.opencontainers.image.ref.name": "handmade:1"}}]}).encode()  # fmt: skip
    with tarfile.open(path, "w") as tar:
        for name, data in [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("index.json", index),
                           *((f"blobs/sha256/{d}", b) for d, b in blobs.items())]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return digests


def test_gzip_layers_opaque_dirs_and_hostile_names(tmp_path: Path) -> None:
    elf = Path("/usr/bin/true").read_bytes()
    lower = _layer_tar({"app/": b"", "app/old": elf, "app/also-old": elf, "keep": elf, "../../escape": elf})
    upper = _layer_tar({"app/": b"", "app/.wh..wh..opq": b"", "app/new": elf})
    digests = _oci_archive(tmp_path / "oci.tar", [lower, upper])
    members = _members(tmp_path / "oci.tar")
    assert sorted(members) == ["/app/new", "/escape", "/keep"], "opaque dir hides lower content; .. cannot climb"
    assert members["/app/new"].layer == digests[1] and members["/keep"].layer == digests[0]
    assert members["/keep"].image.endswith(":handmade:1")


def test_malformed_archives_are_errors_not_exceptions(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 9
        tar.addfile(info, io.BytesIO(b"not json!"))
    (error,) = list(iter_image_members(str(bad)))
    assert isinstance(error, ScanError) and "not valid JSON" in error.message
    truncated = tmp_path / "truncated.tar"
    digests_dir = tmp_path / "full.tar"
    _oci_archive(digests_dir, [_layer_tar({"x": Path("/usr/bin/true").read_bytes()})])
    truncated.write_bytes(digests_dir.read_bytes()[:3000])
    results = list(iter_image_members(str(truncated)))
    assert results and all(
        isinstance(r, ScanError | ImageEnd) or (isinstance(r, LayerEnd) and r.problems) for r in results
    )


def test_scan_command_on_an_image(images: dict[str, Path]) -> None:
    import subprocess
    import sys

    bindrift = str(Path(sys.executable).with_name("bindrift"))
    result = subprocess.run([bindrift, "scan", "--format", "json", "--host-arch", "x86_64", str(images["oci-archive"])],
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 1, result.stderr
    reports = {r["path"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(reports) == {"/bin/busybox", "/opt/kept", "/opt/replaced"}
    kept = reports["/opt/kept"]
    assert kept["arch"] == "aarch64" and kept["findings"][0]["check"] == "foreign_arch"
    assert kept["layer"].startswith("sha256:") and "bdtest" in kept["image"]
    assert reports["/bin/busybox"]["findings"] == [] and reports["/opt/replaced"]["layer"] != kept["layer"]
    assert "non-ELF file(s) skipped" in result.stderr
