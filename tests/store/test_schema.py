"""The schema the migrations build is the one the models declare, on both backends, with no redundant index."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bindrift.sinks.store.models import Base
from bindrift.sinks.store.sql_store import SqlStore


def test_migrations_build_the_models_schema(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []


def test_no_index_is_the_leading_part_of_another(store: SqlStore) -> None:
    """An index whose columns lead another index on the same table only costs writes."""
    inspector = sa.inspect(store.engine)
    for table in inspector.get_table_names():
        indexes = [tuple(ix["column_names"]) for ix in inspector.get_indexes(table)]
        for columns in indexes:
            covering = [other for other in indexes if other != columns and other[: len(columns)] == columns]
            assert not covering, f"{table}: index on {columns} is led by {covering}"
