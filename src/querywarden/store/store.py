"""The store: where interactions, signals, findings, decisions and engine state persist.

    store = open_store("sqlite:///querywarden.db", retention="sketch")
    store.record(interactions, step.signals, step.findings, step.decisions)
    engine.load_decisions(store.load_decisions())      # after a restart
    store.findings(status="active", severity_at_least="medium")

Writes go through one writer thread (see ``writer``); reads run concurrently on their own
connections. Most writes take ``wait``: True returns once the write is committed; False
buffers it and returns at once, for callers on a hot path (replay, the gateway), and the
writer commits everything buffered in its next transaction (see ``behind``). ``flush()``
is the barrier. A buffered write that fails raises on the next call. The buffer is capped,
so a fast producer waits instead of growing memory. Operator decisions and snapshots are
always durable on return.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

import querywarden
from querywarden.core.engine import Step
from querywarden.core.records import Decision, Finding, Interaction, Severity, Signal
from querywarden.errors import StoreError
from querywarden.store import migrate, reads, triage, writes
from querywarden.store.behind import Part, WriteBehind, write_parts
from querywarden.store.codec import Retention
from querywarden.store.url import StoreURL, create_engines, parse_url
from querywarden.store.views import (
    ActorSummary,
    AuditEntry,
    FindingDetail,
    OperatorEvent,
    PrincipalSummary,
    SnapshotInfo,
    StoredInteraction,
    StoreStats,
    Triage,
)
from querywarden.store.writer import Writer

T = TypeVar("T")

DEFAULT_URL = "sqlite:///querywarden.db"
MAX_PENDING_WRITES = 64
"""Queued write jobs before a producer is held back."""
MAX_BEHIND_ROWS = 50_000
"""Records given without waiting that may sit in memory before a producer is held back."""


def open_store(url: str = DEFAULT_URL, *, retention: str = "sketch") -> Store:
    """Open (creating and migrating as needed) the store at ``url``.

    ``retention`` is how much of each request is kept: ``full``, ``sketch`` or ``none``
    (see ``querywarden.store.codec``). Raises ``StoreError`` naming the URL, password
    masked, when the URL is malformed or the database cannot be reached or migrated.
    """
    return Store(parse_url(url), Retention.parse(retention))


class Store:
    def __init__(self, url: StoreURL, retention: Retention) -> None:
        self.url = url
        self.retention = retention
        if url.backend == "sqlite" and not url.in_memory and url.url.database:
            parent = Path(url.url.database).resolve().parent
            if not parent.is_dir():
                raise url.error(f"directory {parent} does not exist")
        self._write_engine, self._read_engine = create_engines(url)
        self._serial_reads = url.in_memory
        self.schema_revision = self._migrate()
        self._writer = Writer(self._write_engine, self._wrap, max_pending=MAX_PENDING_WRITES)
        self._behind = WriteBehind(self._writer, retention, self._wrap, max_rows=MAX_BEHIND_ROWS)

    def _wrap(self, exc: BaseException) -> StoreError:
        """A database error as a StoreError naming the URL: the driver's own first line,
        without SQLAlchemy's statement dump (which could echo stored values)."""
        text = str(getattr(exc, "orig", None) or exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        return self.url.error(reason)

    def _migrate(self) -> str:
        try:
            with self._write_engine.begin() as conn:
                revision = migrate.upgrade(conn)
                writes.set_meta(conn, {"schema_revision": revision, "querywarden_version": querywarden.__version__})
                return revision
        except StoreError as exc:
            self._dispose()
            raise self.url.error(exc.reason) from exc
        except SQLAlchemyError as exc:
            self._dispose()
            raise self._wrap(exc) from exc

    # -- lifecycle ----------------------------------------------------------------------
    def flush(self) -> None:
        """Wait for every queued write; raise the first one that failed."""
        self._writer.flush()

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._dispose()

    def _dispose(self) -> None:
        self._write_engine.dispose()
        self._read_engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url.redacted!r}, retention={self.retention.value!r})"

    # -- writes -------------------------------------------------------------------------
    def _put(self, part: Part, wait: bool) -> None:
        if not wait:
            self._behind.add(part)
            return
        retention = self.retention
        self._writer.call(lambda conn: write_parts(conn, [part], retention))

    def record(
        self,
        interactions: Iterable[Interaction] = (),
        signals: Iterable[Signal] = (),
        findings: Iterable[Finding] = (),
        decisions: Iterable[Decision] = (),
        *,
        wait: bool = True,
    ) -> None:
        """Store what the engine saw and did, in one transaction (an engine ``Step``'s parts)."""
        self._put(Part(list(interactions), list(signals), list(findings), list(decisions)), wait)

    def save_step(self, interactions: Sequence[Interaction], step: Step, *, wait: bool = False) -> None:
        """Store an engine ``Step`` and the interactions that caused it.

        Written behind by default: the gateway's worker calls this once per request and must
        not wait on the disk; the writer commits whatever has queued up in one transaction.
        """
        items = list(interactions)
        actors = {step.actor: tuple(i.principal for i in items)} if step.actor is not None and items else {}
        last_ts = max((i.ts for i in items), default=0.0)
        part = Part(items, list(step.signals), list(step.findings), list(step.decisions), actors, last_ts)
        self._put(part, wait)

    def add_interactions(self, interactions: Iterable[Interaction], *, wait: bool = True) -> None:
        self._put(Part(interactions=list(interactions)), wait)

    def add_signals(self, signals: Iterable[Signal], *, wait: bool = True) -> None:
        self._put(Part(signals=list(signals)), wait)

    def add_findings(self, findings: Iterable[Finding], *, wait: bool = True) -> None:
        """Upsert each finding's current state and append the event to its history."""
        self._put(Part(findings=list(findings)), wait)

    def set_decisions(self, decisions: Iterable[Decision], *, wait: bool = True) -> None:
        """Engine decisions, audited as the engine's."""
        self._put(Part(decisions=list(decisions)), wait)

    def save_actors(self, actors: Mapping[str, Iterable[str]], ts: float, *, wait: bool = True) -> None:
        """Record actor membership (actor id -> principals); a principal moves when actors merge."""
        self._put(Part(actors={a: tuple(ps) for a, ps in actors.items()}, actors_ts=ts), wait)

    def set_decision(self, decision: Decision, actor_note: str = "", *, by: str | None = None) -> None:
        """Make ``decision`` the principal's current one and audit it; durable on return.

        ``actor_note`` says why (shown in the audit); ``by`` names who, e.g. an operator's
        login (default: the decision's ``source``, ``engine`` or ``operator``).
        """
        self._writer.call(lambda conn: writes.set_decisions(conn, [decision], note=actor_note, by=by))

    def clear_decision(self, principal: str, actor_note: str = "", *, by: str = "operator") -> bool:
        """Lift the principal's decision (back to allow); audited. False if it had none."""
        ts = time.time()
        return bool(
            self._writer.call(lambda conn: writes.clear_decision(conn, principal, ts=ts, note=actor_note, by=by))
        )

    def triage_finding(
        self, finding_id: str, action: str, note: str = "", *, by: str, client_ip: str | None = None
    ) -> Finding | None:
        """An operator acknowledges or closes a finding (``action``), audited under ``by``;
        durable on return. The finding as it is now, None when the store has no such finding;
        ``TriageRefused`` when it is closed (or changed meanwhile)."""
        triage.check_action(action)
        now = time.time()
        found: Finding | None = self._writer.call(
            lambda conn: triage.triage_finding(conn, finding_id, action, by=by, note=note, now=now, client_ip=client_ip)
        )
        return found

    def audit_operator(
        self, event: str, *, by: str, subject: str, note: str = "", client_ip: str | None = None
    ) -> None:
        """Append an operator event (e.g. ``login``, ``login_failed``) to the audit; durable on return."""
        triage.check_event(event)
        now = time.time()
        self._writer.call(
            lambda conn: triage.audit(conn, event, by=by, subject=subject, note=note, now=now, client_ip=client_ip)
        )

    def prune(self, before: float) -> tuple[int, int]:
        """Delete interactions and signals with ``ts < before`` (epoch seconds); return the
        numbers of each deleted. Findings, decisions and the audit are kept."""
        result: tuple[int, int] = self._writer.call(lambda conn: writes.prune(conn, before))
        return result

    def save_snapshot(self, name: str, blob: bytes, ts: float) -> None:
        """Keep engine state under ``name`` (replacing the previous one); durable on return."""
        self._writer.call(lambda conn: writes.save_snapshot(conn, name, blob, ts))

    # -- reads --------------------------------------------------------------------------
    def _read(self, query: Callable[[sa.Connection], T]) -> T:
        if self._serial_reads:  # an in-memory database lives in the writer's one connection
            result: T = self._writer.call(query)
            return result
        self._writer.raise_deferred()
        try:
            with self._read_engine.connect() as conn:
                return query(conn)
        except SQLAlchemyError as exc:
            raise self._wrap(exc) from exc

    def load_decisions(self) -> list[Decision]:
        """Every principal's current decision, to hand to ``Engine.load_decisions`` on start."""
        return self._read(reads.load_decisions)

    def load_snapshot(self, name: str) -> bytes | None:
        return self._read(lambda conn: reads.load_snapshot(conn, name))

    def snapshots(self) -> list[SnapshotInfo]:
        return self._read(reads.snapshots)

    def findings(
        self,
        status: str | None = None,
        severity_at_least: Severity | str | None = None,
        technique: str | None = None,
        principal: str | None = None,
        model: str | None = None,
        *,
        actor: str | None = None,
        since: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Finding]:
        """Findings' current states, most recently updated first.

        ``status`` is ``open``, ``updated``, ``closed`` or ``active`` (not closed).
        """
        where = reads.finding_filter(
            status=status,
            severity_at_least=severity_at_least,
            technique=technique,
            principal=principal,
            model=model,
            actor=actor,
            since=since,
        )
        return self._read(lambda conn: reads.findings(conn, where, limit, offset))

    def count_findings(
        self,
        status: str | None = None,
        severity_at_least: Severity | str | None = None,
        technique: str | None = None,
        principal: str | None = None,
        model: str | None = None,
        *,
        actor: str | None = None,
        since: float | None = None,
    ) -> int:
        """How many findings ``findings`` would page through with the same filters."""
        where = reads.finding_filter(
            status=status,
            severity_at_least=severity_at_least,
            technique=technique,
            principal=principal,
            model=model,
            actor=actor,
            since=since,
        )
        return self._read(lambda conn: reads.count_findings(conn, where))

    def finding(self, finding_id: str) -> FindingDetail | None:
        """One finding's current state, its open/updated/closed events and its triage."""

        def query(conn: sa.Connection) -> FindingDetail | None:
            detail = reads.finding(conn, finding_id)
            if detail is None:
                return None
            return FindingDetail(detail.finding, detail.events, triage.triage(conn, [finding_id]).get(finding_id))

        return self._read(query)

    def triage(self, finding_ids: Sequence[str]) -> dict[str, Triage]:
        """What operators did to each of the findings (those with no triage are left out)."""
        return self._read(lambda conn: triage.triage(conn, finding_ids))

    def operator_audit(
        self, limit: int = 50, offset: int = 0, *, event: str | None = None, subject: str | None = None
    ) -> list[OperatorEvent]:
        """Operator events other than decisions (finding triage, logins), newest first."""
        return self._read(
            lambda conn: triage.operator_events(conn, event=event, subject=subject, limit=limit, offset=offset)
        )

    def principals(self, order_by: str = "risk", limit: int = 50, offset: int = 0) -> list[PrincipalSummary]:
        """Principal summaries ordered by ``risk`` (severity, then score, then queries),
        ``queries`` or ``last_seen``, highest first."""
        return self._read(lambda conn: reads.principals(conn, order_by=order_by, only=None, limit=limit, offset=offset))

    def principal(self, principal: str) -> PrincipalSummary | None:
        found = self._read(lambda conn: reads.principals(conn, order_by="risk", only=principal, limit=1, offset=0))
        return found[0] if found else None

    def interactions(
        self,
        principal: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        *,
        model: str | None = None,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[StoredInteraction]:
        """Stored interactions with ``since <= ts < until``, newest first by default."""
        return self._read(
            lambda conn: reads.interactions(
                conn,
                principal=principal,
                model=model,
                since=since,
                until=until,
                newest_first=newest_first,
                limit=limit,
                offset=offset,
            )
        )

    def signals(
        self,
        principal: str | None = None,
        finding_id: str | None = None,
        *,
        detector: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Signal]:
        """Signals, newest first; with ``finding_id``, the ones behind that finding."""
        return self._read(
            lambda conn: reads.signals(
                conn,
                principal=principal,
                finding_id=finding_id,
                detector=detector,
                since=since,
                until=until,
                limit=limit,
                offset=offset,
            )
        )

    def actors(self) -> list[ActorSummary]:
        """Every actor with its members, active findings and highest severity."""
        return self._read(reads.actors)

    def actor(self, actor: str) -> ActorSummary | None:
        found = self._read(lambda conn: reads.actors(conn, only=actor))
        return found[0] if found else None

    def audit(self, limit: int = 50, offset: int = 0, *, principal: str | None = None) -> list[AuditEntry]:
        """Decision changes, newest first."""
        return self._read(lambda conn: reads.audit(conn, principal=principal, limit=limit, offset=offset))

    def stats(self, *, since: float | None = None) -> StoreStats:
        """Counts per model, severity, technique and status; findings per hour since ``since``."""
        return self._read(lambda conn: reads.stats(conn, since=since))

    def meta(self) -> dict[str, str]:
        return self._read(reads.meta)
