"""A real database that refuses findings at one path, through a trigger (SQLite or PostgreSQL): how the dead
letter tests make a detection that no bound can make storable."""

from __future__ import annotations

import sqlalchemy as sa

REFUSAL = "refused by the test trigger"


def refuse_path(engine: sa.Engine, path: str) -> None:
    """Every insert of a finding at `path` fails from now on (the schema must exist: open the store first)."""
    quoted = path.replace("'", "''")
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(f"CREATE TRIGGER refuse_path BEFORE INSERT ON findings WHEN NEW.path = '{quoted}' "
                                 f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END")  # fmt: skip
            return
        conn.exec_driver_sql("CREATE FUNCTION refuse_path() RETURNS trigger LANGUAGE plpgsql AS "
                             f"$$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$")  # fmt: skip
        conn.exec_driver_sql("CREATE TRIGGER refuse_path BEFORE INSERT ON findings FOR EACH ROW "
                             f"WHEN (NEW.path = '{quoted}') EXECUTE FUNCTION refuse_path()")  # fmt: skip
