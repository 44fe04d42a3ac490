"""The findings store on SQLAlchemy 2: SQLite (WAL, the embedded default) or PostgreSQL (psycopg 3).

Durability: every write is one transaction; SQLite runs in WAL mode with `synchronous=FULL`, so a
committed finding survives the process being killed (and a power loss); PostgreSQL commits are durable.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import msgspec
from sqlalchemy import Engine, Select, case, create_engine, delete, event, func, or_, select, text, union_all, update
from sqlalchemy.orm import Session, sessionmaker

from bindrift.findings.response import set_incident
from bindrift.findings.suppression import SuppressionRule
from bindrift.schema.dead_letter import DeadLetter
from bindrift.schema.finding import Finding, Incident, ResponseAction, Sighting, State, StateChange
from bindrift.schema.response import EvidenceRecord
from bindrift.schema.severity import Severity, rank
from bindrift.sinks.store.bulk import insert_rows, one_of
from bindrift.sinks.store.models import (
    ActionRow,
    DeadLetterRow,
    EvidenceRow,
    FindingRow,
    IncidentRow,
    IncidentTriageRow,
    IntelSourceRow,
    OutboxRow,
    ProcessedMessageRow,
    SightingRow,
    StateChangeRow,
    SuppressionRow,
)

if TYPE_CHECKING:
    from bindrift.findings.correlation import Correlator

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 30_000
MAX_TIMELINE_ROWS = 1_000_000
MAX_RELATED = 100  # a finding lists this many others of its incident, earliest first (the incident has them all)
MAX_INCIDENT_MEMBERS = 10_000  # finding ids an incident read alone lists, earliest first
MAX_LISTED_MEMBERS = 1_000  # and each of a page of incidents
MEMBER_QUERIES = 200  # incidents whose members one statement reads (SQLite allows 500 terms in a UNION)
MAX_SIGHTINGS = 100  # distinct paths kept per finding; later ones still count in the finding's `count`
_sighting_decoder = msgspec.json.Decoder(Sighting)
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
    severity: str = ""  # exactly this one
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
        """Store one finding as it is (its incident included, no correlation): `store_findings` of one."""
        return self.store_findings([finding], [message_id], None, outbox)[0]

    def store_findings(
        self, findings: Sequence[Finding], message_ids: Sequence[str], correlator: Correlator | None,
        outbox: Sequence[str] = (), hydrate: bool = True,
    ) -> list[Finding]:  # fmt: skip
        """Store a batch in one transaction (`bindrift.findings.store_protocol.FindingStore`). Each finding is
        inserted or merged into its row: count added, first and last seen widened to cover it, state kept,
        the rest from the batch's latest occurrence. Correlation reads only the incidents near the batch and
        writes each finding's own row: an incident's other members are rewritten only when a late finding joins
        two incidents or moves one's start (one UPDATE). The findings of one scope are stored by one
        transaction at a time (PostgreSQL advisory locks, taken in order; SQLite has one writer)."""
        if not findings:
            return []
        from bindrift.findings.identity import scope_key

        ids = list(message_ids) or [""] * len(findings)
        # Encoded before the transaction, which holds its scopes' locks only for the statements.
        merged = _merge(findings)
        values = {key: _finding_values(finding) for key, finding in merged.items()}
        with self._writer(), self._session() as session:
            if self.engine.dialect.name == "postgresql":
                keys = sorted({_lock_key(scope_key(f.resource)) for f in findings})
                session.execute(text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) k"),
                                {"keys": keys})  # fmt: skip
            fresh = self._first_deliveries(session, findings, ids)
            if not all(fresh):  # redelivered messages: their findings are left out
                merged = _merge([finding for finding, first in zip(findings, fresh, strict=True) if first])
                values = {key: _finding_values(finding) for key, finding in merged.items()}
            spans: dict[str, tuple[datetime, datetime]] = {
                row.id: (_utc(row.first_seen), _utc(row.last_seen)) for row in session.execute(
                    select(FindingRow.id, FindingRow.first_seen, FindingRow.last_seen)
                    .where(one_of(FindingRow.id, list(merged), session)))
            }  # fmt: skip
            if correlator is not None and merged:
                for key, incident in self._correlate(session, merged, spans, correlator).items():
                    values[key]["incident_id"] = incident
            self._write_findings(session, merged, list(values.values()), spans)
            self._record_sightings(session, [f for f, first in zip(findings, fresh, strict=True) if first], spans)
            if not (hydrate or outbox):
                return []
            stored = self._stored(session, merged, spans)
            now = datetime.now(UTC)
            session.add_all(OutboxRow(sink=sink, payload=msgspec.json.encode(finding), attempts=0, created_at=now)
                            for finding in stored.values() for sink in outbox)  # fmt: skip
            return [stored.get(f.id) or self._as_stored(session, f) for f in findings]

    def _record_sightings(self, session: Session, findings: Sequence[Finding],
                          stored: dict[str, tuple[datetime, datetime]]) -> None:  # fmt: skip
        """Keep every path each finding was seen at (its writer and process too), not only its last one: one
        row per (finding, path), at most MAX_SIGHTINGS per finding. The sightings of the findings stored before
        (`stored`) are read in two statements; a new finding has none."""
        batch: dict[str, tuple[str, Sighting]] = {}
        for finding in findings:
            key = hashlib.sha256(f"{finding.id}\0{finding.file.path}".encode()).hexdigest()[:32]
            seen = Sighting(finding.file.path, _utc(finding.first_seen), _utc(finding.last_seen), finding.count,
                            finding.writer, finding.process)  # fmt: skip
            earlier = batch.get(key)
            batch[key] = (finding.id, seen if earlier is None else _widen(earlier[1], seen))
        if not batch:
            return
        old = [key for key, (owner, _) in batch.items() if owner in stored]
        found = select(SightingRow.id, SightingRow.body).where(one_of(SightingRow.id, old, session))
        existing: dict[str, bytes] = {key: body for key, body in session.execute(found)} if old else {}
        owners = list({owner for key, (owner, _) in batch.items() if owner in stored and key not in existing})
        known: dict[str, int] = {}
        if owners:
            counted = select(SightingRow.finding_id, func.count()).where(
                one_of(SightingRow.finding_id, owners, session)
            )
            known = {owner: int(n) for owner, n in session.execute(counted.group_by(SightingRow.finding_id))}
        rows: list[dict[str, Any]] = []
        for key, (owner, latest) in batch.items():
            body = existing.get(key)
            if body is None:
                if known.get(owner, 0) >= MAX_SIGHTINGS:
                    continue
                known[owner] = known.get(owner, 0) + 1
            seen = latest if body is None else _widen(_sighting_decoder.decode(body), latest)
            rows.append({"id": key, "finding_id": owner, "first_seen": seen.first_seen, "last_seen": seen.last_seen,
                         "count": seen.count, "body": msgspec.json.encode(seen)})  # fmt: skip
        insert_rows(session, SightingRow, rows,
                    lambda new: {k: new[k] for k in ("first_seen", "last_seen", "count", "body")})  # fmt: skip

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """PostgreSQL needs nothing here (advisory locks inside the transaction); an SQLite database has one
        writer: this process's threads take turns, and other processes wait on the lock file."""
        if self.engine.dialect.name == "postgresql":
            yield
            return
        with self.scope_lock("findings"):
            yield

    def _first_deliveries(self, session: Session, findings: Sequence[Finding], ids: list[str]) -> list[bool]:
        """Record the batch's message ids; False for one recorded before or earlier in the batch. On PostgreSQL
        a concurrent transaction recording the same id makes this one wait for its outcome."""
        wanted = {message: f.id for f, message in zip(findings, ids, strict=True) if message}
        recorded: set[str] = set()
        if wanted:
            now = datetime.now(UTC)
            rows = [{"id": message, "finding_id": finding, "at": now} for message, finding in wanted.items()]
            inserted = insert_rows(session, ProcessedMessageRow, rows, returning="id")
            recorded = set() if inserted is None else set(inserted.scalars())
        first: list[bool] = []
        for message in ids:
            first.append(not message or message in recorded)
            recorded.discard(message)
        return first

    def _correlate(self, session: Session, merged: dict[str, Finding], spans: dict[str, tuple[datetime, datetime]],
                   correlator: Correlator) -> dict[str, str]:  # fmt: skip
        """Store the incidents the batch touched; returns the incident of each finding of the batch."""
        from bindrift.findings.identity import scope_key

        by_scope: defaultdict[str, list[Finding]] = defaultdict(list)
        for finding in merged.values():
            stored = spans.get(finding.id)
            span = finding if stored is None else msgspec.structs.replace(
                finding, first_seen=min(stored[0], _utc(finding.first_seen)),
                last_seen=max(stored[1], _utc(finding.last_seen)))  # fmt: skip
            by_scope[scope_key(finding.resource)].append(span)
        reach = [correlator.reach(_utc(f.first_seen), _utc(f.last_seen)) for g in by_scope.values() for f in g]
        low, high = min(r[0] for r in reach), max(r[1] for r in reach)
        nearby: defaultdict[str, list[Incident]] = defaultdict(list)
        near = (
            one_of(IncidentRow.scope, list(by_scope), session),
            IncidentRow.last_seen >= low,
            IncidentRow.first_seen <= high,
        )
        for row in session.scalars(select(IncidentRow).where(*near)):
            nearby[row.scope].append(_incident_decoder.decode(row.body))
        rows: list[dict[str, Any]] = []
        absorbed: list[tuple[str, str]] = []
        membership: dict[str, str] = {}
        for scope, group in by_scope.items():
            for plan in correlator.plan(group, nearby[scope]):
                incident = plan.incident
                membership.update(dict.fromkeys(plan.members, incident.id))
                rows.append({"id": incident.id, "scope": scope, "first_seen": incident.first_seen,
                             "last_seen": incident.last_seen, "body": msgspec.json.encode(incident)})  # fmt: skip
                absorbed += [(old, incident.id) for old in plan.absorbed]
        for old, new in absorbed:  # a late finding joined incidents, or moved one's start: the id changes
            session.execute(update(FindingRow).where(FindingRow.incident_id == old).values(incident_id=new))
        if absorbed:
            session.execute(delete(IncidentRow).where(IncidentRow.id.in_([old for old, _ in absorbed])))
            started = {i.id: _utc(i.first_seen) for group in nearby.values() for i in group}
            _hand_over_triage(session, absorbed, started)
        insert_rows(session, IncidentRow, rows,
                    lambda new: {k: new[k] for k in ("scope", "first_seen", "last_seen", "body")})  # fmt: skip
        return membership

    def _write_findings(self, session: Session, merged: dict[str, Finding], values: list[dict[str, Any]],
                        spans: dict[str, tuple[datetime, datetime]]) -> None:  # fmt: skip
        if not merged:
            return
        insert_rows(session, FindingRow, values, lambda new: _merged_columns(new, values[0]))
        # A repeat keeps the state and history it has.
        session.add_all(_state_row(f.id, change) for f in merged.values() if f.id not in spans
                        for change in f.state_history)  # fmt: skip

    def _stored(self, session: Session, merged: dict[str, Finding],
                spans: dict[str, tuple[datetime, datetime]]) -> dict[str, Finding]:  # fmt: skip
        """The batch's findings as now stored (the transaction sees its own writes)."""
        session.flush()
        rows = session.scalars(select(FindingRow).where(FindingRow.id.in_(list(merged))))
        stored = {row.id: self._hydrate(session, row, history=False) for row in rows}
        changes, actions = _history(session, [i for i in stored if i in spans])
        sightings = _sightings(session, list(stored))
        for finding in stored.values():
            finding.sightings = sightings[finding.id]
            if finding.id in spans:
                finding.state_history, finding.actions = changes[finding.id], actions[finding.id]
            else:
                finding.state_history = merged[finding.id].state_history
        _fill_related(session, list(stored.values()))
        return stored

    def _as_stored(self, session: Session, finding: Finding) -> Finding:
        """A finding of a message stored before: as it is in the store (or as given, if since purged)."""
        row = session.get(FindingRow, finding.id)
        if row is None:
            return finding
        stored = self._hydrate(session, row)
        _fill_related(session, [stored])
        return stored

    def get_finding(self, finding_id: str) -> Finding | None:
        with self._session() as session:
            row = session.get(FindingRow, finding_id)
            if row is None:
                return None
            finding = self._hydrate(session, row)
            _fill_related(session, [finding])
            return finding

    def get_findings(self, finding_ids: Sequence[str]) -> list[Finding]:
        """The findings named (unknown ids skipped), whole with state history and actions, in three queries."""
        ids = list(finding_ids)
        with self._session() as session:
            found = [self._hydrate(session, row, history=False)
                     for row in session.scalars(select(FindingRow).where(FindingRow.id.in_(ids)))]  # fmt: skip
            changes, actions = _history(session, ids)
            sightings = _sightings(session, ids)
            for finding in found:
                finding.state_history, finding.actions = changes[finding.id], actions[finding.id]
                finding.sightings = sightings[finding.id]
            _fill_related(session, found)
            return found

    def list_findings(self, where: FindingFilter | None = None) -> list[Finding]:
        """Findings matching `where`, sorted (`-last_seen`, `severity`, `-severity`, `first_seen`, `count`…)."""
        where = where or FindingFilter()
        with self._session() as session:
            rows = session.scalars(_paginate(_sort(_filtered(select(FindingRow), where), where.sort), where))
            found = [self._hydrate(session, row, history=False) for row in rows]
            _fill_related(session, found)
            return found

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

    def purge(self, older_than: datetime) -> int:
        """Retention: delete findings last seen before `older_than`, with their history, and the record of
        bus messages processed before it (redeliveries come within minutes)."""
        with self._session() as session:
            session.execute(delete(ProcessedMessageRow).where(ProcessedMessageRow.at < older_than))
            ids = list(session.scalars(select(FindingRow.id).where(FindingRow.last_seen < older_than)))
            session.execute(delete(StateChangeRow).where(StateChangeRow.finding_id.in_(ids)))
            session.execute(delete(SightingRow).where(SightingRow.finding_id.in_(ids)))
            session.execute(delete(FindingRow).where(FindingRow.id.in_(ids)))
            session.execute(delete(IncidentRow).where(IncidentRow.last_seen < older_than))
            session.execute(delete(DeadLetterRow).where(DeadLetterRow.at < older_than))
            return len(ids)

    def _hydrate(self, session: Session, row: FindingRow, history: bool = True) -> Finding:
        finding = _finding_decoder.decode(row.body)
        finding.count, finding.state = row.count, row.state  # type: ignore[assignment]
        finding.first_seen, finding.last_seen = _utc(row.first_seen), _utc(row.last_seen)
        if finding.incident_id != row.incident_id:  # relabelled since: a late finding joined two incidents
            set_incident(finding, row.incident_id)
        if history:
            changes, actions = _history(session, [row.id])
            finding.state_history, finding.actions = changes[row.id], actions[row.id]
            finding.sightings = _sightings(session, [row.id])[row.id]
        return finding

    # Incidents ------------------------------------------------------------------------------------

    def latest_incident(self, scope: str) -> Incident | None:
        with self._session() as session:
            row = session.scalars(
                select(IncidentRow).where(IncidentRow.scope == scope).order_by(IncidentRow.last_seen.desc()).limit(1)
            ).first()
            return None if row is None else _incidents(session, [row], MAX_INCIDENT_MEMBERS)[0]

    @contextmanager
    def scope_lock(self, scope: str) -> Iterator[None]:
        """Serialise the correlation of one container's findings across processes and threads: a
        PostgreSQL advisory lock on the scope, or for SQLite an exclusive lock file beside the database."""
        with self._local_lock:
            if self.engine.dialect.name == "postgresql":
                key = _lock_key(scope)
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

    def get_incident(self, incident_id: str) -> Incident | None:
        with self._session() as session:
            row = session.get(IncidentRow, incident_id)
            return None if row is None else _incidents(session, [row], MAX_INCIDENT_MEMBERS)[0]

    def list_incidents(self, where: FindingFilter | None = None) -> tuple[list[Incident], int]:
        """Incidents with at least one finding matching `where`, sorted by `where.sort` (one of
        INCIDENT_SORTABLE; most recent first by default) over all of them, then paginated; with the number of
        all such incidents."""
        where = where or FindingFilter()
        members = _filtered(select(FindingRow.incident_id).where(FindingRow.incident_id != ""), where)
        query = select(IncidentRow).where(IncidentRow.id.in_(members))
        with self._session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(_paginate(_sort_incidents(query, where.sort), where))
            return _incidents(session, list(rows), MAX_LISTED_MEMBERS), total

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

    # Dead letters (detections that could not be stored) -------------------------------------------

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Set a detection aside; the same message set aside again updates its row (deliveries, error)."""
        row = msgspec.structs.asdict(letter) | {"id": letter.message_id, "error": _text(letter.error),
                                                "at": _utc(letter.at)}  # fmt: skip
        del row["message_id"]
        with self._writer(), self._session() as session:
            insert_rows(session, DeadLetterRow, [row], lambda new: {k: new[k] for k in ("error", "deliveries", "at")})

    def dead_letters(self, limit: int = 100) -> tuple[list[DeadLetter], int]:
        """The latest dead letters, newest first, and how many there are."""
        query = select(DeadLetterRow).order_by(DeadLetterRow.at.desc(), DeadLetterRow.id).limit(max(1, limit))
        with self._session() as session:
            total = session.scalar(select(func.count()).select_from(DeadLetterRow)) or 0
            letters = [DeadLetter(r.id, "bus" if r.source == "bus" else "local", r.node, r.error, r.deliveries,
                                  _utc(r.at), r.size, r.body) for r in session.scalars(query)]  # fmt: skip
            return letters, total

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


def _create_private(url: str) -> None:
    """Create a new SQLite database file 0600 (findings hold process arguments): SQLite then gives its WAL
    and shared-memory files the same mode. An existing file keeps the mode it has."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    with suppress(FileExistsError, FileNotFoundError):  # a missing folder: SQLite says so itself
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))


def _lock_key(scope: str) -> int:
    """The PostgreSQL advisory lock key of a scope."""
    return int.from_bytes(hashlib.sha256(scope.encode()).digest()[:8], "big", signed=True)


def _merge(findings: Sequence[Finding]) -> dict[str, Finding]:
    """One finding per id: repeats within a batch add their counts and widen the span; the first occurrence gives
    the state (with its history), the latest everything else."""
    merged: dict[str, Finding] = {}
    for finding in findings:
        seen = merged.get(finding.id)
        merged[finding.id] = finding if seen is None else msgspec.structs.replace(
            finding, count=seen.count + finding.count, state=seen.state, state_history=seen.state_history,
            first_seen=min(_utc(seen.first_seen), _utc(finding.first_seen)),
            last_seen=max(_utc(seen.last_seen), _utc(finding.last_seen)),
        )  # fmt: skip
    return merged


def _hand_over_triage(session: Session, absorbed: list[tuple[str, str]], started: dict[str, datetime]) -> None:
    """Incidents joined into another (or whose start moved, changing their id) hand their triage over to it: the
    surviving incident keeps the owner and state of the oldest triaged incident among it and those it absorbed
    (by first seen, then id); the triage of the others is dropped, and logged."""
    ids = {incident for pair in absorbed for incident in pair}
    triaged = {row.incident_id: row for row in session.scalars(
        select(IncidentTriageRow).where(IncidentTriageRow.incident_id.in_(ids)))}  # fmt: skip
    if not triaged:
        return
    into: defaultdict[str, list[str]] = defaultdict(list)
    for old, new in absorbed:
        into[new].append(old)
    for new, olds in into.items():
        handed = sorted((old for old in olds if old in triaged), key=lambda old: (started[old], old))
        if not handed:
            continue
        if new not in triaged:  # else the survivor, which starts first (its id says so), keeps its own
            first = triaged[handed.pop(0)]
            session.add(IncidentTriageRow(incident_id=new, owner=first.owner, state=first.state, by=first.by,
                                          at=first.at))  # fmt: skip
            session.delete(first)
        for old in handed:
            log.warning("incident %s joined %s: its triage (owner %r, %s, by %r) gives way to the older one's", old,
                        new, triaged[old].owner, triaged[old].state, triaged[old].by)  # fmt: skip
            session.delete(triaged[old])


def _merged_columns(new: Any, example: dict[str, Any]) -> dict[str, Any]:
    """What a finding stored again changes in its row: the count added; first and last seen widened (sightings
    may arrive out of order: bus redeliveries, several workers); the state kept; the rest from the new one."""
    row = FindingRow.__table__.c
    changed = {key: new[key] for key in example if key not in ("id", "state")}
    changed["count"] = row["count"] + new["count"]
    changed["last_seen"] = case((new["last_seen"] > row["last_seen"], new["last_seen"]), else_=row["last_seen"])
    changed["first_seen"] = case((new["first_seen"] < row["first_seen"], new["first_seen"]), else_=row["first_seen"])
    return changed


def _members(session: Session, incident_ids: set[str], limit: int) -> dict[str, list[str]]:
    """Up to `limit` finding ids of each incident, earliest first: one indexed, limited read per incident."""
    ids = sorted(i for i in incident_ids if i)
    found: dict[str, list[str]] = {}
    for start in range(0, len(ids), MEMBER_QUERIES):
        columns = select(FindingRow.incident_id, FindingRow.first_seen, FindingRow.id)
        parts = [columns.where(FindingRow.incident_id == i).order_by(FindingRow.first_seen, FindingRow.id).limit(limit)
                 for i in ids[start : start + MEMBER_QUERIES]]  # fmt: skip
        query = parts[0] if len(parts) == 1 else union_all(*(select(part.subquery()) for part in parts))
        for incident, _, finding in sorted(session.execute(query), key=lambda r: (r[0], _utc(r[1]), r[2])):
            found.setdefault(incident, []).append(finding)
    return found


def _fill_related(session: Session, findings: list[Finding]) -> None:
    """Each finding's `related`: the other members of its incident, read through the membership."""
    members = _members(session, {f.incident_id for f in findings}, MAX_RELATED + 1)
    for finding in findings:
        finding.related = [m for m in members.get(finding.incident_id, ()) if m != finding.id][:MAX_RELATED]


def _incidents(session: Session, rows: list[IncidentRow], limit: int) -> list[Incident]:
    """Incidents with (up to `limit` of) their findings, read through the membership."""
    incidents = [_incident_decoder.decode(row.body) for row in rows]
    members = _members(session, {i.id for i in incidents}, limit)
    for incident in incidents:
        incident.finding_ids = members.get(incident.id, [])
    return incidents


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _create_private(url)
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
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.driver == "psycopg":

        @event.listens_for(engine, "connect")
        def _binary_arrays(dbapi_connection: Any, _record: Any) -> None:
            """Arrays (the store's bulk statements) travel in binary: the text format escapes every element
            with a regular expression in Python, bytea doubled in hex first."""
            from psycopg.types.array import ListBinaryDumper

            dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)

    return engine


def _finding_values(finding: Finding) -> dict[str, Any]:
    r, f = finding.resource, finding.file
    process = finding.process
    args = " ".join(process.args) if process else ""
    return {
        "id": finding.id, "category": finding.category, "severity": finding.severity,
        "severity_rank": rank(finding.severity), "state": finding.state, "first_seen": _utc(finding.first_seen),
        "last_seen": _utc(finding.last_seen), "count": finding.count, "cluster": r.cluster, "namespace": r.namespace,
        "pod": r.pod, "container_id": r.container_id, "image": r.image, "node": r.node, "path": _text(f.path),
        "sha256": f.sha256, "incident_id": finding.incident_id,
        "search_text": _text(" ".join((f.path, args, r.container_name, r.pod, r.namespace, r.image,
                                        finding.summary)).lower()),
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


def _sightings(session: Session, ids: list[str]) -> defaultdict[str, list[Sighting]]:
    """The sightings (paths seen) of the findings `ids`, oldest first, by finding."""
    found: defaultdict[str, list[Sighting]] = defaultdict(list)
    query = select(SightingRow).where(SightingRow.finding_id.in_(ids)).order_by(SightingRow.first_seen)
    for row in session.scalars(query):
        found[row.finding_id].append(_sighting_decoder.decode(row.body))
    return found


def _widen(earlier: Sighting, later: Sighting) -> Sighting:
    """Two sightings of one path as one: the span covering both, counts added, the later process, the writer
    the later one names (or the earlier one's)."""
    return Sighting(
        later.path,
        min(earlier.first_seen, later.first_seen),
        max(earlier.last_seen, later.last_seen),
        earlier.count + later.count,
        later.writer or earlier.writer,
        later.process or earlier.process,
    )


def _state_row(finding_id: str, change: StateChange) -> StateChangeRow:
    return StateChangeRow(finding_id=finding_id, state=change.state, by=change.by, reason=_text(change.reason),
                          at=_utc(change.at))  # fmt: skip


def _text(value: str) -> str:
    """Free text for a column: PostgreSQL refuses NUL characters (the whole record keeps them, in `body`)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _filtered(query: Select[Any], where: FindingFilter) -> Select[Any]:
    for column in ("category", "state", "cluster", "namespace", "pod", "node", "container_id", "incident_id"):
        value = getattr(where, column)
        if value:
            query = query.where(getattr(FindingRow, column) == value)
    if where.image:
        query = query.where(or_(FindingRow.image == where.image, FindingRow.image.startswith(where.image + ":"),
                                FindingRow.image.startswith(where.image + "@")))  # fmt: skip
    if where.severity:
        query = query.where(FindingRow.severity == where.severity)
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


# Incidents sort by their own columns, by what their members say (highest severity, number of findings) and
# by their triage (owner; state in its order new → investigating → closed, never triaged being new).
INCIDENT_SORTABLE = {"last_seen", "first_seen", "severity", "count", "owner", "state"}


def _sort_incidents(query: Select[Any], sort: str) -> Select[Any]:
    name = sort.lstrip("-")
    if name not in INCIDENT_SORTABLE:
        raise ValueError(f"cannot sort incidents by {sort!r}; choose from {', '.join(sorted(INCIDENT_SORTABLE))}")
    column: Any
    if name in ("first_seen", "last_seen"):
        column = getattr(IncidentRow, name)
    elif name in ("severity", "count"):
        members = (select(FindingRow.incident_id, func.max(FindingRow.severity_rank).label("severity"),
                          func.count().label("count"))
                   .where(FindingRow.incident_id != "").group_by(FindingRow.incident_id).subquery())  # fmt: skip
        query = query.outerjoin(members, members.c.incident_id == IncidentRow.id)
        column = func.coalesce(members.c[name], 0)
    else:
        query = query.outerjoin(IncidentTriageRow, IncidentTriageRow.incident_id == IncidentRow.id)
        column = (func.coalesce(IncidentTriageRow.owner, "") if name == "owner" else
                  case({"investigating": 1, "closed": 2}, value=IncidentTriageRow.state, else_=0))  # fmt: skip
    ordered = column.desc() if sort.startswith("-") else column.asc()
    return query.order_by(ordered, IncidentRow.last_seen.desc(), IncidentRow.id)


def _paginate(query: Select[Any], where: FindingFilter) -> Select[Any]:
    return query.limit(max(1, min(where.limit, 10_000))).offset(max(0, where.offset))
