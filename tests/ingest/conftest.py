"""The bus tests' fixtures (a three-server JetStream cluster, a fresh PostgreSQL database) for `ingest --bus`."""

from tests.bus.conftest import nats_cluster, pg_url

__all__ = ["nats_cluster", "pg_url"]
