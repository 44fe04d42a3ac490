"""Provenance in image scans, on a real podman image whose packages were installed by the real tools:
dpkg (`dpkg --root`, a package built with dpkg-deb), rpm (`rpmbuild` + `rpm --root`: a real rpmdb.sqlite,
SHA-256 and MD5 file digests) and an apk `installed` database in apk's own format. The upper layer
modifies a packaged file and deletes one package's md5sums (a whiteout); the records lie in the lowest
layer, read last."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from tests.containers import busybox_rootfs_tar, make_podman, podman_available
from tests.packages import apk_installed, build_deb, build_rpm
from tests.upx_mutations import rename_magic

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))

pytestmark = pytest.mark.skipif(
    not podman_available() or not shutil.which("rpmbuild") or not shutil.which("dpkg-deb"),
    reason="needs podman (as root), dpkg-deb and rpm",
)

CONTAINERFILE = """FROM localhost/provbase:latest
COPY tampered /usr/bin/tampered
RUN rm /var/lib/dpkg/info/gonepkg.md5sums
"""


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, test_binaries: Path) -> Any:
    work = tmp_path_factory.mktemp("provenance")
    bins = {arch: (test_binaries / f"busybox-static-{arch}" / "bin" / "busybox").read_bytes()
            for arch in ("amd64", "arm64", "armhf", "mipsel", "s390x", "ppc64el", "mips64el")}  # fmt: skip
    upx = test_binaries / "upx-ucl-amd64" / "usr" / "bin" / "upx-ucl"
    subprocess.run([str(upx), "-q", "-1", "-o", str(work / "packed"), str(test_binaries / "busybox-static-amd64" /
                    "bin" / "busybox")], check=True, capture_output=True)  # fmt: skip
    packed = rename_magic((work / "packed").read_bytes())
    busybox_rootfs_tar(test_binaries / "busybox-static-amd64" / "bin" / "busybox", work / "rootfs.tar")
    root = work / "rootfs.d"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")  # merged /usr: dpkg records lib/aliasbox, the layer holds usr/lib/aliasbox
    admin = root / "var" / "lib" / "dpkg"
    for sub in ("info", "updates", "triggers"):
        (admin / sub).mkdir(parents=True)
    (admin / "status").touch()
    provtools = {"usr/bin/armbox": bins["arm64"], "usr/bin/packed": packed, "usr/bin/tampered": bins["armhf"],
                 "lib/aliasbox": bins["mipsel"]}  # fmt: skip
    debs = [build_deb(work, "provtools", provtools), build_deb(work, "gonepkg", {"opt/gone/armbox": bins["arm64"]})]
    subprocess.run(["dpkg", f"--root={root}", "--force-depends", "-i", *map(str, debs)], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    rpms = [build_rpm(work, "rpmbox", {"usr/bin/rpmbox": bins["ppc64el"]}, 8),
            build_rpm(work, "rpmmd5", {"usr/bin/rpmmd5box": bins["mips64el"]}, 1)]  # fmt: skip
    subprocess.run(["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--noscripts",
                    *map(str, rpms)], check=True, capture_output=True, timeout=120)  # fmt: skip
    (root / "sbin" / "apkbox").write_bytes(bins["s390x"])
    (root / "lib" / "apk" / "db").mkdir(parents=True)
    (root / "lib" / "apk" / "db" / "installed").write_bytes(apk_installed("apkbox", {"sbin/apkbox": bins["s390x"]}))
    with tarfile.open(work / "rootfs.tar", "w") as tar:
        tar.add(root, arcname=".")
    context = work / "context"
    context.mkdir()
    (context / "Containerfile").write_text(CONTAINERFILE)
    (context / "tampered").write_bytes(bins["armhf"] + b"\0")
    podman = make_podman(work / "podman")
    try:
        podman("import", "--change", 'CMD ["/bin/sh"]', str(work / "rootfs.tar"), "localhost/provbase:latest")
        podman("build", "--network", "none", "-t", "localhost/provtest:latest", "-f", str(context / "Containerfile"),
               str(context))  # fmt: skip
        saved = {"oci-archive": work / "oci.tar", "docker-archive": work / "docker.tar", "oci-dir": work / "oci-dir"}
        for fmt, target in saved.items():
            podman("save", "--format", fmt, "-o", str(target), "localhost/provtest:latest")
        yield {**saved, "root": root}
    finally:
        podman.reset()


def _scan(target: Path) -> tuple[int, dict[str, dict[str, Any]], str]:
    command = [BINDRIFT, "scan", "--format", "json", "--host-arch", "x86_64", "--min-severity", "info", str(target)]
    result = subprocess.run(command, capture_output=True, timeout=300, check=False)
    reports = {r["path"]: r for r in map(json.loads, result.stdout.splitlines())}
    return result.returncode, reports, result.stderr.decode()


def _severities(report: dict[str, Any]) -> dict[str, str]:
    return {f["check"]: f["severity"] for f in report["findings"]}


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive", "oci-dir"])
def test_packaged_files_of_an_image_are_named_and_capped(image: dict[str, Path], fmt: str) -> None:
    status, reports, stderr = _scan(image[fmt])
    assert status == 1, stderr  # findings remain (the modified and the unlisted files); no error
    assert "0 error(s)" in stderr
    packaged = {path: r["package"] for path, r in reports.items() if r["provenance"] == "packaged"}
    assert packaged == {
        "/usr/bin/armbox": "provtools", "/usr/bin/packed": "provtools", "/usr/lib/aliasbox": "provtools",
        "/usr/bin/rpmbox": "rpmbox-1.0-1.x86_64", "/usr/bin/rpmmd5box": "rpmmd5-1.0-1.x86_64",
        "/sbin/apkbox": "apkbox",
    }  # fmt: skip
    for path in packaged:  # capped, but for the evidence of tampering: the image's author wrote the records
        findings = reports[path]["findings"]
        kept = [f for f in findings if f["category"] == "tampered-packer"]
        assert findings and all(f["severity"] == "info" for f in findings if f not in kept), path
        assert any(f["evidence"].get("capped_by") == "provenance" for f in findings), path
    armbox = {f["check"]: f for f in reports["/usr/bin/armbox"]["findings"]}
    assert armbox["foreign_arch"]["evidence"]["capped_from"] == "high"
    packer = [f for f in reports["/usr/bin/packed"]["findings"] if f["category"] == "tampered-packer"]
    assert packer and {f["severity"] for f in packer} & {"medium", "high"}
    assert not any("capped_from" in f["evidence"] for f in packer)
    tampered = reports["/usr/bin/tampered"]
    assert (tampered["package"], tampered["provenance"]) == ("provtools", "modified")
    assert any("modified packaged file: provtools" in note for note in tampered["notes"])
    assert _severities(tampered)["foreign_arch"] == "high", "a modified packaged file keeps its findings"
    gone = reports["/opt/gone/armbox"]
    assert (gone["package"], gone["provenance"]) == (None, None), "its md5sums was deleted by a whiteout"
    assert _severities(gone)["foreign_arch"] == "high"
    assert reports["/bin/busybox"]["package"] is None


def test_the_records_match_what_the_tools_wrote(image: dict[str, Path]) -> None:
    """The rootfs the image was made from holds the tools' own databases, in the formats read."""
    root = image["root"]
    assert (root / "var" / "lib" / "dpkg" / "info" / "provtools.md5sums").read_text().count("\n") == 4
    header = (root / "var" / "lib" / "rpm" / "rpmdb.sqlite").read_bytes()[:16]
    assert header == b"SQLite format 3\0"
