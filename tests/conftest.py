"""Shared fixtures: the real foreign-architecture binaries and UPX fetched by tests/assets/fetch-binaries.sh, and
store backends: SQLite in a temporary folder, and a private PostgreSQL 15 started on loopback by the tests themselves
(initdb into a temporary folder, stopped by pg_ctl at the end)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bindrift.sinks.store.sql_store import SqlStore

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


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The labelled development corpus beside the project (../shared/corpus)."""
    if not (CORPUS / "labels.csv").exists():
        pytest.skip("../shared/corpus is not beside the project")
    return CORPUS


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of the tests' own, on 127.0.0.1 and a free port."""
    if not (PG_BIN / "initdb").exists():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL 15 binaries are missing")
        pytest.skip("PostgreSQL 15 is not installed")
    data = Path(tempfile.mkdtemp(prefix="bindrift-pg-"))
    shutil.chown(data, "postgres", "postgres")
    port = _free_port()
    init = _as_postgres(f"{PG_BIN}/initdb -D {data}/db -A trust -U postgres")
    assert init.returncode == 0, init.stderr
    start = _as_postgres(f"{PG_BIN}/pg_ctl -D {data}/db -l {data}/log -w -o "
                         f"'-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=on' start")  # fmt: skip
    assert start.returncode == 0, start.stderr + (data / "log").read_text()
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres(f"{PG_BIN}/pg_ctl -D {data}/db -m immediate -w stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bindrift.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    name = f"t_{os.getpid()}_{abs(hash(request.node.nodeid)) % 10**8}"
    from sqlalchemy import create_engine, text

    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
