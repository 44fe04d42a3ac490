"""An ordinary Debian image with hard-linked ELF files (perl, mesa's `dri/*_dri.so`) and a hard link to a
text file, built by podman from this machine's files: in every saved format, the archive's scan reports
exactly the ELF files (paths and SHA-256) that the scan of its exported tree reports, with no error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.containers import make_podman, podman_available

pytestmark = [
    pytest.mark.skipif(not podman_available(), reason="needs podman, as root"),
    pytest.mark.skipif(not Path("/usr/lib/x86_64-linux-gnu/dri").is_dir(), reason="needs libgl1-mesa-dri"),
]
BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
HOST_FILES = ["usr/bin/perl", "usr/bin/perl5.36.0", "usr/bin/bzip2", "usr/bin/bunzip2", "usr/bin/bzcat",
              "usr/lib/x86_64-linux-gnu/dri"]  # fmt: skip
CONTAINERFILE = "FROM localhost/bdlinks-base:latest\nCOPY extra /usr/local/bin/extra\n"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    work = tmp_path_factory.mktemp("hardlinks")
    podman = make_podman(work / "podman")
    etc = work / "etc-src" / "etc"
    etc.mkdir(parents=True)
    (etc / "motd").write_text("welcome\n")
    os.link(etc / "motd", etc / "motd-hard")
    rootfs = work / "rootfs.tar"
    present = [f for f in HOST_FILES if Path("/", f).exists()]
    subprocess.run(["tar", "-cf", str(rootfs), "-C", "/", *present], check=True)  # hard links kept as links
    subprocess.run(["tar", "-rf", str(rootfs), "-C", str(work / "etc-src"), "etc"], check=True)
    with tarfile.open(rootfs) as tar:
        assert sum(m.islnk() for m in tar) >= 3, "the image must hold hard links"
    context = work / "context"
    context.mkdir()
    (context / "Containerfile").write_text(CONTAINERFILE)
    (context / "extra").write_bytes(Path("/usr/bin/true").read_bytes())
    try:
        podman("import", str(rootfs), "localhost/bdlinks-base:latest")
        podman("build", "--network", "none", "-t", "localhost/bdlinks:latest", str(context))
        formats = {"docker-archive": work / "docker.tar", "oci-archive": work / "oci.tar", "oci-dir": work / "oci"}
        for fmt, target in formats.items():
            podman("save", "--format", fmt, "-o", str(target), "localhost/bdlinks:latest")
        container = podman("create", "--name", f"bdlinks-{os.getpid()}", "localhost/bdlinks:latest", "/x").strip()
        podman("export", "-o", str(work / "exported.tar"), container)
        tree = work / "tree"
        tree.mkdir()
        subprocess.run(["tar", "-xf", str(work / "exported.tar"), "-C", str(tree)], check=True)
        yield {**formats, "tree": tree}
    finally:
        podman.reset()


def _scan(target: Path) -> tuple[int, dict[str, str | None], str]:
    result = subprocess.run([BINDRIFT, "scan", "--format", "json", "--host-arch", "x86_64", str(target)],
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    reports = (json.loads(line) for line in result.stdout.splitlines())
    prefix = str(target) if target.is_dir() and not (target / "oci-layout").exists() else ""
    return result.returncode, {r["path"].removeprefix(prefix): r["sha256"] for r in reports}, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive", "oci-dir"])
def test_archive_reports_the_elf_files_of_its_tree(saved: dict[str, Path], fmt: str) -> None:
    tree_status, tree, _ = _scan(saved["tree"])
    status, archive, stderr = _scan(saved[fmt])
    assert status == tree_status and status != 2, stderr
    assert "; 0 error(s)" in stderr, stderr
    assert archive == tree, "the same ELF files with the same content"
    dri = [p for p in archive if p.startswith("/usr/lib/x86_64-linux-gnu/dri/")]
    assert len(dri) >= 2 and len({archive[p] for p in dri}) < len(dri), "hard-linked drivers all reported"
    assert {"/usr/bin/perl", "/usr/bin/bzcat", "/usr/local/bin/extra"} <= archive.keys()
