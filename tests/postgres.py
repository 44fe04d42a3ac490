"""A private PostgreSQL 15 on loopback (initdb into a temporary folder, stopped by pg_ctl at the end), and fresh
databases in it; used by the test fixtures and by the benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def available() -> bool:
    return (PG_BIN / "initdb").exists()


@contextmanager
def private_postgres() -> Iterator[str]:
    """The URL of a PostgreSQL server of our own, on 127.0.0.1 and a free port."""
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


@contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    """A new, empty database `name` on the server, dropped at the end."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def database_name(prefix: str, key: str) -> str:
    return f"{prefix}_{os.getpid()}_{abs(hash(key)) % 10**8}"
