"""Store backends for the tests: SQLite in a temporary folder, and a private PostgreSQL 15 started on
loopback by the tests themselves (initdb into a temporary folder, stopped by pg_ctl at the end)."""

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


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(store_url)
    try:
        yield opened
    finally:
        opened.close()
