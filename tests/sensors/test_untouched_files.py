"""The memo of executed files found to be the image's own: any change to a file, or a file changed just
before it was seen, means it is looked at again."""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

from bindrift.detectors.drift import UntouchedFiles


def test_unchanged_file_is_remembered_and_any_change_forgets_it(tmp_path: Path) -> None:
    exe = tmp_path / "true"
    exe.write_bytes(b"\x7fELF" + b"\0" * 60)
    memo = UntouchedFiles()
    st = os.stat(exe)
    later = st.st_ctime_ns + int(2e9)
    memo.remember("c1", "/bin/true", st, later)
    assert memo.untouched("c1", "/bin/true", os.stat(exe))
    assert not memo.untouched("c2", "/bin/true", os.stat(exe))  # another container
    time.sleep(0.02)
    with exe.open("r+b") as fh, mmap.mmap(fh.fileno(), 0) as mapped:  # a write through a mapping
        mapped[4] = 1
    assert not memo.untouched("c1", "/bin/true", os.stat(exe))
    memo.remember("c1", "/bin/true", os.stat(exe), os.stat(exe).st_ctime_ns + int(2e9))
    time.sleep(0.02)
    os.chmod(exe, 0o700)  # a chmod (a copy-up in a container)
    assert not memo.untouched("c1", "/bin/true", os.stat(exe))
    other = tmp_path / "other"
    other.write_bytes(exe.read_bytes())
    memo.remember("c1", "/bin/true", os.stat(exe), os.stat(exe).st_ctime_ns + int(2e9))
    os.rename(other, exe)  # a rename over it: same size, another inode
    assert not memo.untouched("c1", "/bin/true", os.stat(exe))
    memo.remember("c1", "/bin/true", os.stat(exe), os.stat(exe).st_ctime_ns + int(2e9))
    memo.forget("c1")
    assert not memo.untouched("c1", "/bin/true", os.stat(exe))


def test_a_file_changed_just_before_it_was_seen_is_not_remembered(tmp_path: Path) -> None:
    exe = tmp_path / "x"
    exe.write_bytes(b"\x7fELF")
    st = os.stat(exe)
    memo = UntouchedFiles()
    memo.remember("c1", "/x", st, st.st_ctime_ns + int(0.5e9))  # seen half a second after its change
    assert not memo.untouched("c1", "/x", st)


def test_bounded(tmp_path: Path) -> None:
    exe = tmp_path / "x"
    exe.write_bytes(b"\x7fELF")
    st = os.stat(exe)
    memo = UntouchedFiles(limit=3)
    for n in range(5):
        memo.remember("c1", f"/bin/{n}", st, st.st_ctime_ns + int(2e9))
    assert [memo.untouched("c1", f"/bin/{n}", st) for n in range(5)] == [False, False, True, True, True]
