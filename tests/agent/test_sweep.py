"""The startup sweep on a real directory tree standing in for a container's upper layer: ELF files found
through every level, nothing followed or read that is not a regular file, and the walk stepped and capped."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bindrift.agent import sweep
from bindrift.context.containers import ContainerContext

ELF = Path("/bin/true").resolve()


def _container(upper: Path) -> ContainerContext:
    return ContainerContext(id="c", runtime="podman", init_pid=os.getpid(), rootfs="", upper=str(upper), lowers=[])


def _all(current: sweep.Sweep) -> list[str]:
    paths = []
    while True:
        found, done = sweep.step(current, 0.001)
        for item in found:
            paths.append(item.path)
            assert os.fstat(item.fd).st_size == ELF.stat().st_size
            os.close(item.fd)
        if done:
            return sorted(paths)


def test_elf_files_found_nothing_else_followed_or_read(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "a" / "b").mkdir(parents=True)
    shutil.copy(ELF, upper / "top")
    shutil.copy(ELF, upper / "a" / "b" / "deep")
    (upper / "a" / "script.sh").write_text("#!/bin/sh\n")
    (upper / "a" / "link").symlink_to(ELF)  # to a host ELF: never followed
    (upper / "a" / "dirlink").symlink_to("/usr/bin")
    os.mkfifo(upper / "a" / "fifo")  # opening it would block: never opened
    assert _all(sweep.start(_container(upper))) == ["/a/b/deep", "/top"]


def test_walk_is_capped_and_stepped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    for index in range(50):
        (upper / f"f{index}").write_bytes(b"not elf")
    shutil.copy(ELF, upper / "z-elf")
    monkeypatch.setattr(sweep, "MAX_ENTRIES", 10)
    current = sweep.start(_container(upper))
    _all(current)
    assert current.cut_short and current.visited == 11
    first, done = sweep.step(sweep.start(_container(upper)), 0.0)  # no budget: one entry, then back to the loop
    assert not done and len(first) <= 1
