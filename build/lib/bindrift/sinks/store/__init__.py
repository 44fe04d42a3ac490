"""Durable store for findings, incidents, suppression rules, intelligence sources and the export outbox:
SQLAlchemy 2 on SQLite (embedded default, WAL) or PostgreSQL (psycopg 3), schema managed by Alembic.
The entry point is `bindrift.sinks.store.sql_store.SqlStore`."""
