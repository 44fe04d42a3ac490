"""Many rows in one statement. On PostgreSQL: `INSERT … SELECT * FROM unnest(arrays)` and `= ANY(array)`, one
short statement whatever the batch size (parsed once by the driver and the server, each column's values dumped
as one array in C), where an executemany or a long `IN (…)` list costs the client tens of microseconds a row.
On SQLite: an executemany and an `IN` list, which its in-process driver runs cheaply."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    LargeBinary,
    Result,
    Select,
    String,
    Table,
    Text,
    any_,
    bindparam,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session

_ARRAY_TYPES: tuple[tuple[type, str], ...] = (
    (Text, "text"), (String, "text"), (DateTime, "timestamptz"), (Boolean, "bool"), (Integer, "bigint"),
    (LargeBinary, "bytea"),
)  # fmt: skip
# What an insert does with a row whose id exists: nothing (None), or these columns set from `excluded`.
Update = Callable[[Any], dict[str, Any]] | None


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _array_type(table: Table, column: str) -> str:
    kind = table.c[column].type
    return next(name for base, name in _ARRAY_TYPES if isinstance(kind, base))


def insert_rows(session: Session, model: type[DeclarativeBase], rows: Sequence[dict[str, Any]],
                update: Update = None, returning: str = "") -> Result[Any] | None:  # fmt: skip
    """Insert `rows` (all with the same keys) into `model`'s table, resolving a conflict on its primary key by
    `update` (None: the row is left as it is). Returns the RETURNING rows of column `returning` when given."""
    if not rows:
        return None
    table = cast(Table, model.__table__)
    columns = list(rows[0])
    params: Any
    if _postgres(session):
        arrays = ", ".join(f"CAST(:{c} AS {_array_type(table, c)}[])" for c in columns)
        source: Select[Any] = select(literal_column("*")).select_from(text(f"unnest({arrays})"))
        stmt: Any = postgresql.insert(table).from_select(columns, source)
        params = {c: [row[c] for row in rows] for c in columns}
    else:
        stmt, params = sqlite.insert(table), list(rows)
    keys = list(table.primary_key.columns)
    stmt = (stmt.on_conflict_do_nothing(index_elements=keys) if update is None
            else stmt.on_conflict_do_update(index_elements=keys, set_=update(stmt.excluded)))  # fmt: skip
    if returning:
        stmt = stmt.returning(table.c[returning])
    return session.execute(stmt, params)


def one_of(column: InstrumentedAttribute[Any], values: Sequence[str], session: Session) -> ColumnElement[bool]:
    """`column IN values`: one array parameter on PostgreSQL."""
    if _postgres(session):
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(String)))
    return column.in_(list(values))
