"""The cache of dpkg's records: the same lookups as reading the records, rebuilt when any md5sums file
changes, and refused when someone else could have written it."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
from pathlib import Path

import pytest

from bindrift.analysis.provenance import PackageIndex
from bindrift.analysis.provenance.host import _read_records
from bindrift.analysis.provenance.index_cache import FILE_NAME, CachedIndex, cached_dpkg_index

ALIASES = {"/usr/bin/": "/bin/"}


def _records(folder: Path) -> list[str]:
    folder.mkdir(exist_ok=True)
    digest = hashlib.md5(b"x").hexdigest()
    (folder / "coreutils.md5sums").write_text(f"{digest}  bin/true\n{digest.upper()}  usr/bin/ls\nnot a record\n")
    (folder / "shadow:amd64.md5sums").write_text(f"{'0' * 32}  usr/bin/ls\n{'1' * 32}  /usr/sbin/naïve name\n")
    (folder / "firmware.md5sums").write_bytes(f"{'2' * 32}  usr/lib/fw/a\0b\n{'3' * 32}  usr/lib/fw/c".encode())
    return sorted(str(p) for p in folder.glob("*.md5sums"))


def _index(files: list[str]) -> PackageIndex:
    return cached_dpkg_index(files, ALIASES, lambda: PackageIndex.from_dpkg(_read_records(files), ALIASES), 1 << 20)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("BINDRIFT_RECORD_CACHE", raising=False)
    return tmp_path / "cache" / "bindrift"


def test_cached_lookups_are_those_of_the_records(tmp_path: Path, cache: Path) -> None:
    files = _records(tmp_path / "info")
    built = _index(files)
    assert type(built) is PackageIndex
    assert (cache / FILE_NAME).stat().st_mode & 0o777 == 0o600 and cache.stat().st_mode & 0o777 == 0o700
    cached = _index(files)
    assert isinstance(cached, CachedIndex)
    assert (cached.count(), cached.dropped) == (built.count(), built.dropped) == (5, 1)
    paths = ["/bin/true", "/usr/bin/true", "/usr/bin/ls", "/usr/sbin/naïve name", "/usr/lib/fw/c", "/usr/lib/fw/a",
             "/usr/lib/fw", "/", "/zzz", "/bin/tru", "/bin/truee"]  # fmt: skip
    assert [cached.lookup(p) for p in paths] == [built.lookup(p) for p in paths]
    assert cached.lookup("/usr/bin/ls") is not None and cached.lookup("/usr/bin/ls").package == "coreutils"  # type: ignore[union-attr]
    with pytest.raises(TypeError):
        cached.merge(built)


def test_a_changed_record_file_rebuilds_the_cache(tmp_path: Path, cache: Path) -> None:
    files = _records(tmp_path / "info")
    _index(files)
    with open(files[0], "a") as handle:  # in place: the directory does not change, the file's ctime does
        handle.write(f"{'4' * 32}  usr/bin/new\n")
    rebuilt = _index(files)
    assert type(rebuilt) is PackageIndex and rebuilt.lookup("/usr/bin/new") is not None
    cached = _index(files)
    assert isinstance(cached, CachedIndex) and cached.lookup("/usr/bin/new") is not None
    os.unlink(files[0])
    assert _index(files[1:]).lookup("/usr/bin/new") is None


def test_a_killed_builds_temporary_file_is_removed_by_the_next_build(tmp_path: Path, cache: Path) -> None:
    files = _records(tmp_path / "info")
    _index(files)
    ended = subprocess.Popen(["true"])
    ended.wait()  # its pid now names no process
    stale, live = cache / f"{FILE_NAME}.{ended.pid}", cache / f"{FILE_NAME}.{os.getppid()}"
    stale.write_bytes(b"half a build")
    live.write_bytes(b"a build in progress")
    with open(files[0], "a") as handle:  # the next scan rebuilds
        handle.write(f"{'5' * 32}  usr/bin/other\n")
    assert type(_index(files)) is PackageIndex
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in cache.iterdir()) == sorted([FILE_NAME, live.name])


def test_a_cache_others_could_write_is_refused(tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = _records(tmp_path / "info")
    _index(files)
    forged = (cache / FILE_NAME).read_bytes().replace(b"\0coreutils\0", b"\0evilutils\0")
    (cache / FILE_NAME).write_bytes(forged)
    assert _index(files).lookup("/bin/true").package == "evilutils"  # type: ignore[union-attr]
    damaged = re.sub(rb"(bin/true\0evilutils\0[0-9a-f]{32}\0)([0-9]+)", lambda m: m[1] + b"x" * len(m[2]), forged)
    (cache / FILE_NAME).write_bytes(damaged)
    assert _index(files).lookup("/bin/true") is None, "a damaged record is no record, never an exception"
    (cache / FILE_NAME).write_bytes(forged)
    (cache / FILE_NAME).chmod(0o666)
    with caplog.at_level(logging.WARNING):
        index = _index(files)
    assert "package record cache refused" in caplog.text
    assert type(index) is PackageIndex and index.lookup("/bin/true").package == "coreutils"  # type: ignore[union-attr]
    caplog.clear()
    cache.chmod(0o777)
    with caplog.at_level(logging.WARNING):
        assert type(_index(files)) is PackageIndex
    assert "directory not owned by the scanning user, or writable by others" in caplog.text
    cache.chmod(0o700)
    os.link(cache / FILE_NAME, tmp_path / "second-link")
    assert type(_index(files)) is PackageIndex, "a file with another link is refused (rewritten since)"


def test_a_symlinked_cache_is_not_followed(tmp_path: Path, cache: Path) -> None:
    files = _records(tmp_path / "info")
    elsewhere = tmp_path / "elsewhere"
    _index(files)
    (cache / FILE_NAME).rename(elsewhere)
    (cache / FILE_NAME).symlink_to(elsewhere)
    assert type(_index(files)) is PackageIndex
    assert not (cache / FILE_NAME).is_symlink(), "replaced by a file of its own"
    cache.parent.rename(tmp_path / "real-cache")
    cache.parent.mkdir()
    cache.symlink_to(tmp_path / "real-cache" / "bindrift")
    assert type(_index(files)) is PackageIndex


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the cache to another user")
def test_a_cache_of_another_user_is_refused(tmp_path: Path, cache: Path) -> None:
    files = _records(tmp_path / "info")
    _index(files)
    os.chown(cache / FILE_NAME, 65534, -1)
    assert type(_index(files)) is PackageIndex
    os.chown(cache, 65534, -1)
    assert type(_index(files)) is PackageIndex


def test_the_cache_can_be_turned_off(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINDRIFT_RECORD_CACHE", "0")
    files = _records(tmp_path / "info")
    _index(files)
    assert type(_index(files)) is PackageIndex and not cache.exists()
