"""The findings store on SQLAlchemy 2: SQLite (WAL, the embedded default) or PostgreSQL (psycopg 3).

Durability: every write is one transaction; SQLite runs in WAL mode with `synchronous=FULL`, so a
committed finding survives the process being killed (and a power loss); PostgreSQL commits are durable.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import msgspec
from sqlalchemy import Engine, Select, case, create_engine, delete, event, func, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from bindrift.findings.suppression import SuppressionRule
from bindrift.schema.finding import Finding, Incident, ResponseAction, State, StateChange
from bindrift.schema.response import EvidenceRecord
from bindrift.schema.severity import Severity, rank
from bindrift.sinks.store.models import (
    ActionRow,
    EvidenceRow,
    FindingRow,
    IncidentRow,
    IntelSourceRow,
    OutboxRow,
    ProcessedMessageRow,
    StateChangeRow,
    SuppressionRow,
)

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 30_000
MAX_TIMELINE_ROWS = 1_000_000
_finding_decoder = msgspec.json.Decoder(Finding)
_incident_decoder = msgspec.json.Decoder(Incident)
_rule_decoder = msgspec.json.Decoder(SuppressionRule)
_evidence_decoder = msgspec.json.Decoder(EvidenceRecord)
_action_decoder = msgspec.json.Decoder(ResponseAction)


def default_url() -> str:
    """`BINDRIFT_DB`, or an SQLite file under `$XDG_DATA_HOME/bindrift` (default ~/.local/share)."""
    if os.environ.get("BINDRIFT_DB"):
        return os.environ["BINDRIFT_DB"]
    from bindrift.config import data_dir

    base = data_dir()
    base.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{base / 'bindrift.db'}"


@dataclass(frozen=True, slots=True)
class FindingFilter:
    """Filters for listing findings; empty values do not filter."""

    category: str = ""
    min_severity: Severity | None = None
    state: str = ""
    cluster: str = ""
    namespace: str = ""
    pod: str = ""
    image: str = ""
    node: str = ""
    container_id: str = ""
    incident_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    text: str = ""
    sort: str = "-last_seen"
    limit: int = 100
    offset: int = 0


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SqlStore:
    """Findings, incidents, suppression rules, intelligence sources and the outbox, in one database."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.engine: Engine = _engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Threads of one process sharing this store take turns; other processes wait on the lock itself.
        self._local_lock = threading.Lock()
        self.migrate()

    def migrate(self) -> None:
        """Bring the schema to the latest Alembic revision. Processes opening a fresh database together (a
        deployment's workers and API) take turns, so none sees a half-made schema."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.scope_lock("schema-migration"), self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @property
    def display_url(self) -> str:
        """The database URL with any password masked, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # Findings -------------------------------------------------------------------------------------

    def upsert_finding(self, finding: Finding, outbox: Sequence[str] = (), message_id: str = "") -> Finding:
        """Insert, or merge a repeat: count added, first and last seen widened to cover it, state kept. The
        stored finding is queued for each export sink in `outbox` in the same transaction, so a crash
        can lose neither the finding nor its delivery. With a bus `message_id`, the id is recorded in the
        same transaction and a message already recorded changes nothing (returns the finding as stored)."""
        values = _finding_values(finding)
        with self._session() as session:
            if message_id and not self._first_delivery(session, message_id, finding.id):
                row = session.get(FindingRow, finding.id)
                return finding if row is None else self._hydrate(session, row)
            is_new = session.get(FindingRow, finding.id) is None
            insert = _insert(self.engine)
            stmt = insert(FindingRow).values(**values)
            excluded = stmt.excluded
            merged = {key: getattr(excluded, key) for key in values if key not in ("id", "state")}
            merged["count"] = FindingRow.count + excluded.count
            # Sightings may arrive out of order (bus redeliveries, several workers): the span covers them all.
            merged["last_seen"] = case((excluded.last_seen > FindingRow.last_seen, excluded.last_seen),
                                       else_=FindingRow.last_seen)  # fmt: skip
            merged["first_seen"] = case((excluded.first_seen < FindingRow.first_seen, excluded.first_seen),
                                        else_=FindingRow.first_seen)  # fmt: skip
            session.execute(stmt.on_conflict_do_update(index_elements=[FindingRow.id], set_=merged))
            if is_new:  # a repeat keeps the state and history it has
                session.add_all(_state_row(finding.id, change) for change in finding.state_history)
            row = session.get(FindingRow, finding.id, populate_existing=True)
            assert row is not None
            stored = self._hydrate(session, row)
            now = datetime.now(UTC)
            session.add_all(OutboxRow(sink=sink, payload=msgspec.json.encode(stored), attempts=0, created_at=now)
                            for sink in outbox)  # fmt: skip
            return stored

    def _first_delivery(self, session: Session, message_id: str, finding_id: str) -> bool:
        """Record `message_id`; False when it was recorded before. On PostgreSQL a concurrent transaction
        recording the same id makes this one wait for its outcome, so only one of them stores the finding."""
        stmt = _insert(self.engine)(ProcessedMessageRow).values(id=message_id, finding_id=finding_id,
                                                                 at=datetime.now(UTC))  # fmt: skip
        stmt = stmt.on_conflict_do_nothing(index_elements=[ProcessedMessageRow.id]).returning(ProcessedMessageRow.id)
        return session.execute(stmt).scalar() is not None

    def get_finding(self, finding_id: str) -> Finding | None:
        with self._session() as session:
            row = session.get(FindingRow, finding_id)
            return None if row is None else self._hydrate(session, row)

    def get_findings(self, finding_ids: Sequence[str]) -> list[Finding]:
        """The findings named (unknown ids skipped), whole with state history and actions, in three queries."""
        ids = list(finding_ids)
        with self._session() as session:
            found = [self._hydrate(session, row, history=False)
                     for row in session.scalars(select(FindingRow).where(FindingRow.id.in_(ids)))]  # fmt: skip
            changes, actions = _history(session, ids)
            for finding in found:
                finding.state_history, finding.actions = changes[finding.id], actions[finding.id]
            return found

    def list_findings(self, where: FindingFilter | None = None) -> list[Finding]:
        """Findings matching `where`, sorted (`-last_seen`, `severity`, `-severity`, `first_seen`, `count`…)."""
        where = where or FindingFilter()
        with self._session() as session:
            rows = session.scalars(_paginate(_sort(_filtered(select(FindingRow), where), where.sort), where))
            return [self._hydrate(session, row, history=False) for row in rows]

    def count_findings(self, where: FindingFilter | None = None) -> int:
        where = where or FindingFilter()
        with self._session() as session:
            return session.scalar(_filtered(select(func.count()).select_from(FindingRow), where)) or 0

    def counts_by(self, column: str, where: FindingFilter | None = None) -> dict[str, int]:
        """Counts grouped by `severity`, `category`, `state`, `namespace`…"""
        where = where or FindingFilter()
        field = getattr(FindingRow, column)
        with self._session() as session:
            rows = session.execute(_filtered(select(field, func.count()).group_by(field), where))
            return {str(key): int(n) for key, n in rows}

    def set_state(self, finding_id: str, state: State, by: str, reason: str) -> Finding | None:
        """Mute, resolve or reopen, recording who, when and why."""
        change = StateChange(state, by, reason, datetime.now(UTC))
        with self._session() as session:
            row = session.get(FindingRow, finding_id)
            if row is None:
                return None
            row.state = state
            session.add(_state_row(finding_id, change))
            session.flush()
            return self._hydrate(session, row)

    def set_related(self, finding_id: str, related: list[str], incident_id: str) -> None:
        with self._session() as session:
            row = session.get(FindingRow, finding_id)
            if row is None:
                return
            body = _finding_decoder.decode(row.body)
            body.related, body.incident_id = related, incident_id
            row.body, row.incident_id = msgspec.json.encode(body), incident_id

    def purge(self, older_than: datetime) -> int:
        """Retention: delete findings last seen before `older_than`, with their history, and the record of
        bus messages processed before it (redeliveries come within minutes)."""
        with self._session() as session:
            session.execute(delete(ProcessedMessageRow).where(ProcessedMessageRow.at < older_than))
            ids = list(session.scalars(select(FindingRow.id).where(FindingRow.last_seen < older_than)))
            session.execute(delete(StateChangeRow).where(StateChangeRow.finding_id.in_(ids)))
            session.execute(delete(FindingRow).where(FindingRow.id.in_(ids)))
            session.execute(delete(IncidentRow).where(IncidentRow.last_seen < older_than))
            return len(ids)

    def _hydrate(self, session: Session, row: FindingRow, history: bool = True) -> Finding:
        finding = _finding_decoder.decode(row.body)
        finding.count, finding.state = row.count, row.state  # type: ignore[assignment]
        finding.first_seen, finding.last_seen = _utc(row.first_seen), _utc(row.last_seen)
        if history:
            changes, actions = _history(session, [row.id])
            finding.state_history, finding.actions = changes[row.id], actions[row.id]
        return finding

    # Incidents ------------------------------------------------------------------------------------

    def latest_incident(self, scope: str) -> Incident | None:
        with self._session() as session:
            row = session.scalars(
                select(IncidentRow).where(IncidentRow.scope == scope).order_by(IncidentRow.last_seen.desc()).limit(1)
            ).first()
            return None if row is None else _incident_decoder.decode(row.body)

    @contextmanager
    def scope_lock(self, scope: str) -> Iterator[None]:
        """Serialise the correlation of one container's findings across processes and threads: a
        PostgreSQL advisory lock on the scope, or for SQLite an exclusive lock file beside the database."""
        with self._local_lock:
            if self.engine.dialect.name == "postgresql":
                key = int.from_bytes(hashlib.sha256(scope.encode()).digest()[:8], "big", signed=True)
                with self.engine.connect() as connection:
                    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                    try:
                        yield
                    finally:
                        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                        connection.commit()
                return
            database = self.engine.url.database
            if not database or database == ":memory:":
                yield
                return
            fd = os.open(f"{database}-correlation.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def upsert_incident(self, incident: Incident) -> Incident:
        from bindrift.findings.identity import scope_key

        with self._session() as session:
            session.merge(IncidentRow(id=incident.id, scope=scope_key(incident.resource), last_seen=incident.last_seen,
                                      body=msgspec.json.encode(incident)))  # fmt: skip
        return incident

    def get_incident(self, incident_id: str) -> Incident | None:
        with self._session() as session:
            row = session.get(IncidentRow, incident_id)
            return None if row is None else _incident_decoder.decode(row.body)

    def list_incidents(self, where: FindingFilter | None = None) -> tuple[list[Incident], int]:
        """Incidents with at least one finding matching `where`, most recent first, paginated by `where`;
        with the number of all such incidents."""
        where = where or FindingFilter()
        members = _filtered(select(FindingRow.incident_id).where(FindingRow.incident_id != ""), where)
        query = select(IncidentRow).where(IncidentRow.id.in_(members))
        with self._session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(_paginate(query.order_by(IncidentRow.last_seen.desc(), IncidentRow.id), where))
            return [_incident_decoder.decode(row.body) for row in rows], total

    def first_seen_by_severity(self, where: FindingFilter | None = None) -> list[tuple[datetime, str]]:
        """(first seen, severity) of every finding matching `where`, oldest first: the data of a timeline."""
        where = where or FindingFilter()
        columns = cast(Select[Any], select(FindingRow.first_seen, FindingRow.severity))
        query = _filtered(columns, where).order_by(FindingRow.first_seen)
        with self._session() as session:
            return [(_utc(when), severity) for when, severity in session.execute(query.limit(MAX_TIMELINE_ROWS))]

    # Suppression rules and intelligence sources ---------------------------------------------------

    def add_suppression(self, rule: SuppressionRule) -> None:
        with self._session() as session:
            session.merge(SuppressionRow(id=rule.id, body=msgspec.json.encode(rule)))

    def suppression_rules(self) -> list[SuppressionRule]:
        with self._session() as session:
            return [_rule_decoder.decode(row.body) for row in session.scalars(select(SuppressionRow))]

    def remove_suppression(self, rule_id: str) -> bool:
        with self._session() as session:
            return bool(session.execute(delete(SuppressionRow).where(SuppressionRow.id == rule_id)).rowcount)  # type: ignore[attr-defined]

    def add_intel_source(self, path: str, kind: str) -> None:
        with self._session() as session:
            session.merge(IntelSourceRow(path=path, kind=kind, added_at=datetime.now(UTC)))

    def intel_sources(self) -> list[tuple[str, str]]:
        with self._session() as session:
            return [
                (row.path, row.kind) for row in session.scalars(select(IntelSourceRow).order_by(IntelSourceRow.path))
            ]

    # Response: evidence and the audit log of actions ----------------------------------------------

    def add_evidence(self, record: EvidenceRecord) -> None:
        with self._session() as session:
            session.merge(EvidenceRow(id=record.id, finding_id=record.finding_id, sha256=record.sha256,
                                      size=record.size, captured_at=_utc(record.captured_at),
                                      body=msgspec.json.encode(record)))  # fmt: skip

    def get_evidence(self, evidence_id: str) -> EvidenceRecord | None:
        with self._session() as session:
            row = session.get(EvidenceRow, evidence_id)
            return None if row is None else _evidence_decoder.decode(row.body)

    def list_evidence(self, finding_id: str = "", limit: int = 100) -> list[EvidenceRecord]:
        """Evidence records, newest first, of one finding or of all."""
        query = select(EvidenceRow).order_by(EvidenceRow.captured_at.desc(), EvidenceRow.id)
        if finding_id:
            query = query.where(EvidenceRow.finding_id == finding_id)
        with self._session() as session:
            return [_evidence_decoder.decode(r.body) for r in session.scalars(query.limit(max(1, min(limit, 10_000))))]

    def purge_evidence(self, older_than: datetime) -> tuple[list[EvidenceRecord], set[str]]:
        """Delete records captured before `older_than`; returns them and the SHA-256s still referenced."""
        with self._session() as session:
            rows = list(session.scalars(select(EvidenceRow).where(EvidenceRow.captured_at < _utc(older_than))))
            session.execute(delete(EvidenceRow).where(EvidenceRow.id.in_([r.id for r in rows])))
            shas = {r.sha256 for r in rows}
            kept = set(session.scalars(select(EvidenceRow.sha256).where(EvidenceRow.sha256.in_(shas))))
            return [_evidence_decoder.decode(r.body) for r in rows], kept

    def record_action(self, finding_id: str, action: ResponseAction) -> None:
        """Append to the audit log; the finding shows it in `actions`."""
        with self._session() as session:
            session.add(ActionRow(finding_id=finding_id, action=action.action, by=action.by, at=_utc(action.at),
                                  ok=action.ok, body=msgspec.json.encode(action)))  # fmt: skip

    def audit_log(self, finding_id: str = "", limit: int = 1000) -> list[tuple[str, ResponseAction]]:
        """(finding id, action) pairs in the order they were taken."""
        query = select(ActionRow).order_by(ActionRow.id)
        if finding_id:
            query = query.where(ActionRow.finding_id == finding_id)
        with self._session() as session:
            return [(r.finding_id, _action_decoder.decode(r.body)) for r in session.scalars(query.limit(limit))]

    # Outbox (exports that must survive a restart) --------------------------------------------------

    def enqueue(self, sink: str, payload: bytes) -> None:
        with self._session() as session:
            session.add(OutboxRow(sink=sink, payload=payload, attempts=0, created_at=datetime.now(UTC)))

    def pending(self, sink: str, limit: int = 100) -> list[tuple[int, bytes, int]]:
        with self._session() as session:
            rows = session.scalars(select(OutboxRow).where(OutboxRow.sink == sink).order_by(OutboxRow.id).limit(limit))
            return [(row.id, row.payload, row.attempts) for row in rows]

    def delivered(self, outbox_id: int) -> None:
        with self._session() as session:
            session.execute(delete(OutboxRow).where(OutboxRow.id == outbox_id))

    def attempted(self, outbox_id: int) -> None:
        with self._session() as session:
            session.execute(update(OutboxRow).where(OutboxRow.id == outbox_id).values(attempts=OutboxRow.attempts + 1))


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def _insert(engine: Engine) -> Any:
    """The dialect's INSERT, which has ON CONFLICT DO UPDATE on both SQLite and PostgreSQL."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def _finding_values(finding: Finding) -> dict[str, Any]:
    r, f = finding.resource, finding.file
    process = finding.process
    args = " ".join(process.args) if process else ""
    return {
        "id": finding.id, "category": finding.category, "severity": finding.severity,
        "severity_rank": rank(finding.severity), "state": finding.state, "first_seen": _utc(finding.first_seen),
        "last_seen": _utc(finding.last_seen), "count": finding.count, "cluster": r.cluster, "namespace": r.namespace,
        "pod": r.pod, "container_id": r.container_id, "image": r.image, "node": r.node, "path": f.path,
        "sha256": f.sha256, "incident_id": finding.incident_id,
        "search_text": " ".join((f.path, args, r.container_name, r.pod, r.namespace, r.image, finding.summary)).lower(),
        "body": msgspec.json.encode(finding),
    }  # fmt: skip


def _history(session: Session, ids: list[str]) -> tuple[defaultdict[str, list[StateChange]],
                                                        defaultdict[str, list[ResponseAction]]]:  # fmt: skip
    """The state changes and response actions of the findings `ids`, oldest first, by finding."""
    changes: defaultdict[str, list[StateChange]] = defaultdict(list)
    for c in session.scalars(
        select(StateChangeRow).where(StateChangeRow.finding_id.in_(ids)).order_by(StateChangeRow.id)
    ):
        changes[c.finding_id].append(StateChange(c.state, c.by, c.reason, _utc(c.at)))  # type: ignore[arg-type]
    actions: defaultdict[str, list[ResponseAction]] = defaultdict(list)
    for a in session.scalars(select(ActionRow).where(ActionRow.finding_id.in_(ids)).order_by(ActionRow.id)):
        actions[a.finding_id].append(_action_decoder.decode(a.body))
    return changes, actions


def _state_row(finding_id: str, change: StateChange) -> StateChangeRow:
    return StateChangeRow(finding_id=finding_id, state=change.state, by=change.by, reason=change.reason,
                          at=_utc(change.at))  # fmt: skip


def _filtered(query: Select[Any], where: FindingFilter) -> Select[Any]:
    for column in ("category", "state", "cluster", "namespace", "pod", "node", "container_id", "incident_id"):
        value = getattr(where, column)
        if value:
            query = query.where(getattr(FindingRow, column) == value)
    if where.image:
        query = query.where(or_(FindingRow.image == where.image, FindingRow.image.startswith(where.image + ":"),
                                FindingRow.image.startswith(where.image + "@")))  # fmt: skip
    if where.min_severity:
        query = query.where(FindingRow.severity_rank >= rank(where.min_severity))
    if where.since:
        query = query.where(FindingRow.last_seen >= _utc(where.since))
    if where.until:
        query = query.where(FindingRow.last_seen <= _utc(where.until))
    if where.text:
        query = query.where(FindingRow.search_text.contains(where.text.lower(), autoescape=True))
    return query


SORTABLE = {"last_seen", "first_seen", "severity", "count", "category"}


def _sort(query: Select[Any], sort: str) -> Select[Any]:
    name = sort.lstrip("-")
    if name not in SORTABLE:
        raise ValueError(f"cannot sort by {sort!r}; choose from {', '.join(sorted(SORTABLE))}")
    column = FindingRow.severity_rank if name == "severity" else getattr(FindingRow, name)
    return query.order_by(column.desc() if sort.startswith("-") else column.asc(), FindingRow.id)


def _paginate(query: Select[Any], where: FindingFilter) -> Select[Any]:
    return query.limit(max(1, min(where.limit, 10_000))).offset(max(0, where.offset))
