"""The committed BPF object is the one its sources build: the digest of its inputs matches, and (where
clang is installed) a rebuild gives the same bytes."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bindrift.sensors import ebpf

SOURCES = Path(ebpf.__file__).parent


def test_object_inputs_digest_matches_the_sources() -> None:
    digest = hashlib.sha256(b"".join((SOURCES / name).read_bytes()
                                     for name in ("build.sh", "process.bpf.c", "vmlinux.h"))).hexdigest()  # fmt: skip
    assert (SOURCES / "process.bpf.inputs").read_text().strip() == digest, "run src/bindrift/sensors/ebpf/build.sh"


@pytest.mark.skipif(shutil.which("clang") is None or shutil.which("llvm-strip") is None, reason="needs clang, llvm")
def test_rebuild_gives_the_committed_object(tmp_path: Path) -> None:
    out = tmp_path / "process.bpf.o"
    subprocess.run(["bash", str(SOURCES / "build.sh")], env={**os.environ, "OUT": str(out)}, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    assert out.read_bytes() == (SOURCES / "process.bpf.o").read_bytes()
