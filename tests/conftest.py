"""Shared fixtures: the real foreign-architecture binaries and UPX fetched by tests/assets/fetch-binaries.sh, and
store backends: SQLite in a temporary folder, and a private PostgreSQL 15 started on loopback (tests/postgres.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bindrift.sinks.store.sql_store import SqlStore
from tests import postgres

PROJECT = Path(__file__).resolve().parent.parent
SHARED = PROJECT.parent / "shared"
CORPUS = SHARED / "corpus"


def _binaries_dir() -> Path:
    return Path(os.environ.get("BINDRIFT_TEST_BINARIES", PROJECT / ".cache" / "test-binaries"))


@pytest.fixture(scope="session")
def test_binaries() -> Path:
    """Folder of real Debian binaries for other architectures, plus UPX 4.2.2 (fetched once, cached)."""
    dest = _binaries_dir()
    if not (dest / ".complete").exists():
        result = subprocess.run(
            ["bash", str(PROJECT / "tests" / "assets" / "fetch-binaries.sh"), str(dest)],
            check=False, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if result.returncode != 0:
            message = f"could not fetch test binaries: {result.stderr[-2000:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    return dest


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    """A fresh store in an SQLite file of the test's own (tests/store overrides it with both backends)."""
    opened = SqlStore(f"sqlite:///{tmp_path / 'findings.db'}")
    yield opened
    opened.close()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A private tmpfs (root only): a file system of the test's own, so the machine's other activity stays out."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "bindrift-test", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The labelled development corpus beside the project (../shared/corpus)."""
    if not (CORPUS / "labels.csv").exists():
        pytest.skip("../shared/corpus is not beside the project")
    return CORPUS


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of the tests' own, on 127.0.0.1 and a free port (tests/postgres.py)."""
    if not postgres.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL 15 binaries are missing")
        pytest.skip("PostgreSQL 15 is not installed")
    with postgres.private_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bindrift.db'}"
        return
    server: str = request.getfixturevalue("postgres_url")
    with postgres.fresh_database(server, postgres.database_name("t", request.node.nodeid)) as url:
        yield url
