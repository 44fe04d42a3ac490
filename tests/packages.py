"""Packages built in tests with the real tools: a Debian package (dpkg-deb, with the md5sums dh_md5sums
writes), an rpm (rpmbuild; installed with `rpm --root` it leaves a real rpmdb.sqlite) and an apk
`installed` database entry in apk's own format."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

SPEC = """Name: {name}
Version: 1.0
Release: 1
Summary: provenance test package
License: MIT
BuildArch: x86_64
AutoReqProv: no
%define debug_package %{{nil}}
%global __os_install_post %{{nil}}
%description
provenance test package
%install
{install}
%files
{files}
"""


def build_deb(work: Path, name: str, files: dict[str, bytes]) -> Path:
    """A Debian package of `files`, with the md5sums dh_md5sums would write."""
    tree = work / f"deb-{name}"
    for path, data in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_bytes(data)
        (tree / path).chmod(0o755)
    (tree / "DEBIAN").mkdir()
    control = f"Package: {name}\nVersion: 1.0\nArchitecture: amd64\nMaintainer: t <t@example.org>\nDescription: t\n"
    (tree / "DEBIAN" / "control").write_text(control)
    sums = "".join(f"{hashlib.md5(data).hexdigest()}  {path}\n" for path, data in files.items())
    (tree / "DEBIAN" / "md5sums").write_text(sums)
    deb = work / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(deb)], check=True, capture_output=True)
    return deb


def build_rpm(work: Path, name: str, files: dict[str, bytes], digest_algorithm: int) -> Path:
    """An rpm of `files` built by rpmbuild (file digests: 8 = SHA-256, 1 = MD5)."""
    top = work / f"rpm-{name}"
    (top / "SOURCES").mkdir(parents=True)
    (top / "SPECS").mkdir()
    install = []
    for i, (path, data) in enumerate(files.items()):
        (top / "SOURCES" / f"f{i}").write_bytes(data)
        install.append(f"install -D -m 755 %{{_sourcedir}}/f{i} %{{buildroot}}/{path}")
    spec = top / "SPECS" / f"{name}.spec"
    spec.write_text(SPEC.format(name=name, install="\n".join(install), files="\n".join(f"/{p}" for p in files)))
    subprocess.run(["rpmbuild", "--quiet", "-bb", "--define", f"_topdir {top}", "--define", "_build_id_links none",
                    "--define", f"_binary_filedigest_algorithm {digest_algorithm}", str(spec)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    (built,) = (top / "RPMS").rglob("*.rpm")
    return built


def apk_installed(package: str, files: dict[str, bytes]) -> bytes:
    """An apk `installed` database entry as apk writes it (Z: Q1 + base64 SHA-1 of the file)."""
    lines = [f"C:Q1{base64.b64encode(b'0' * 20).decode()}", f"P:{package}", "V:1.0-r0", "A:x86_64", "S:1",
             "I:1", "T:test", "U:https://example.org", "L:MIT", "o:apkbox", "m:t", "t:1700000000", "c:0"]  # fmt: skip
    for path, data in files.items():
        folder, _, name = path.rpartition("/")
        lines += [
            f"F:{folder}",
            f"R:{name}",
            "a:0:0:755",
            f"Z:Q1{base64.b64encode(hashlib.sha1(data).digest()).decode()}",
        ]
    return ("\n".join(lines) + "\n\n").encode()


def rpm_root(work: Path, rpms: list[Path]) -> Path:
    """A root folder with `rpms` installed by rpm (database in var/lib/rpm/rpmdb.sqlite)."""
    root = work / "rpm-root"
    subprocess.run(["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--noscripts",
                    *map(str, rpms)], check=True, capture_output=True, timeout=120)  # fmt: skip
    return root
