"""The store tests run on both backends: `store` is a fresh database of each (`store_url`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bindrift.sinks.store.sql_store import SqlStore


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(store_url)
    try:
        yield opened
    finally:
        opened.close()
