"""Fixtures of the bus tests: a three-server JetStream cluster (tests/nats_cluster.py), a fresh PostgreSQL database."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests import postgres
from tests.nats_cluster import NATS_SERVER, NatsCluster


def _cluster(size: int) -> Iterator[NatsCluster]:
    if not os.access(NATS_SERVER, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail("nats-server is missing (apt-get install nats-server)")
        pytest.skip("nats-server is not installed")
    folder = Path(tempfile.mkdtemp(prefix="bindrift-nats-"))
    cluster = NatsCluster(folder, size)
    try:
        for i in range(size):
            cluster.start(i)
        cluster.wait_jetstream()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def nats_cluster() -> Iterator[NatsCluster]:
    """Three JetStream servers in one cluster."""
    yield from _cluster(3)


@pytest.fixture
def nats_folder() -> Iterator[Path]:
    """A folder for a server the test starts itself (e.g. later than its publisher)."""
    folder = Path(tempfile.mkdtemp(prefix="bindrift-nats-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty PostgreSQL database."""
    with postgres.fresh_database(postgres_url, postgres.database_name("bus", request.node.nodeid)) as url:
        yield url
