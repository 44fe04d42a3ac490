"""Opening attacker-controlled paths: no symlink in any component, container paths kept inside their root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bindrift.analysis.safe_open import open_in_root, open_nofollow


def test_symlinked_directory_component_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "file").write_bytes(b"\x7fELF")
    (tmp_path / "alias").symlink_to(real)
    fd = open_nofollow(real / "file")
    os.close(fd)
    with pytest.raises(OSError) as raised:
        open_nofollow(tmp_path / "alias" / "file")
    assert raised.value.errno == 40  # ELOOP


def test_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    fd = open_nofollow(tmp_path / "fifo")
    os.close(fd)


def test_container_symlink_cannot_escape_its_root(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "marker").write_text("inside")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "marker").write_text("outside")
    (root / "evil").symlink_to("/etc/marker")  # absolute: must resolve inside the root
    (root / "climb").symlink_to("../../etc/marker")
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for path in ("/evil", "climb", "/../../etc/marker"):
            fd = open_in_root(root_fd, path)
            try:
                assert os.read(fd, 100) == b"inside", path
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def test_compiled_openat2_reports_errors_like_os_open(tmp_path: Path) -> None:
    """The compiled call gives the kernel's errno and the path, opens read-only with the flags given, and
    refuses a path with a NUL byte as os.open does."""
    from bindrift.analysis._openat2 import openat2
    from bindrift.analysis.safe_open import AT_FDCWD, READ_FLAGS, RESOLVE_NO_SYMLINKS

    with pytest.raises(FileNotFoundError) as raised:
        openat2(AT_FDCWD, str(tmp_path / "missing"), READ_FLAGS, RESOLVE_NO_SYMLINKS)
    assert raised.value.filename == str(tmp_path / "missing")
    (tmp_path / "file").write_bytes(b"data")
    fd = openat2(AT_FDCWD, str(tmp_path / "file"), READ_FLAGS, RESOLVE_NO_SYMLINKS)
    try:
        assert os.read(fd, 8) == b"data"
        with pytest.raises(OSError):
            os.write(fd, b"x")  # read-only
        assert os.get_inheritable(fd) is False  # O_CLOEXEC kept
    finally:
        os.close(fd)
    with pytest.raises(ValueError):
        openat2(AT_FDCWD, "bad\0path", READ_FLAGS, RESOLVE_NO_SYMLINKS)
