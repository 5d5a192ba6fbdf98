"""Write jobs: each is a function of a connection, run by the single writer in a transaction.

Rows go in with ``executemany`` so a batch of interactions costs one statement round,
and upserts use the dialect's ``ON CONFLICT`` so SQLite and PostgreSQL behave alike.
Writes are idempotent where a replay might repeat them: a finding event is unique per
revision and a finding's current row only moves forward in revision. Upserted rows go in
key order, so two processes writing the same PostgreSQL database lock rows in the same
order and cannot deadlock each other.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from querywarden.core.records import Decision, Finding, Interaction, Signal
from querywarden.store import codec, schema
from querywarden.store.codec import Retention


def insert_for(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _least(a: Any, b: Any) -> Any:
    return sa.case((a < b, a), else_=b)


def _greatest(a: Any, b: Any) -> Any:
    return sa.case((a > b, a), else_=b)


# -- interactions --------------------------------------------------------------------------
def add_interactions(conn: sa.Connection, items: Sequence[Interaction], retention: Retention) -> int:
    if not items:
        return 0
    conn.execute(schema.interactions.insert(), [codec.interaction_row(i, retention) for i in items])
    rollup: dict[tuple[str, str], list[float]] = {}
    for i in items:
        entry = rollup.get((i.principal, i.model))
        if entry is None:
            rollup[(i.principal, i.model)] = [1, i.ts, i.ts]
        else:
            entry[0] += 1
            entry[1] = min(entry[1], i.ts)
            entry[2] = max(entry[2], i.ts)
    bump_traffic(conn, rollup)
    return len(items)


def bump_traffic(conn: sa.Connection, rollup: Mapping[tuple[str, str], Sequence[float]]) -> None:
    """Add ``(count, first_ts, last_ts)`` per (principal, model) to the traffic roll-up."""
    t = schema.traffic
    stmt = insert_for(conn, t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.principal, t.c.model],
        set_={
            "queries": t.c.queries + stmt.excluded.queries,
            "first_seen_ts": _least(t.c.first_seen_ts, stmt.excluded.first_seen_ts),
            "last_seen_ts": _greatest(t.c.last_seen_ts, stmt.excluded.last_seen_ts),
        },
    )
    rows = [
        {"principal": p, "model": m, "queries": int(v[0]), "first_seen_ts": v[1], "last_seen_ts": v[2]}
        for (p, m), v in sorted(rollup.items())
    ]
    conn.execute(stmt, rows)
    per_principal: dict[str, list[float]] = {}
    for (p, _), v in rollup.items():
        entry = per_principal.get(p)
        if entry is None:
            per_principal[p] = [v[0], v[1], v[2]]
        else:
            entry[0] += v[0]
            entry[1] = min(entry[1], v[1])
            entry[2] = max(entry[2], v[2])
    pt = schema.principals
    stmt = insert_for(conn, pt)
    stmt = stmt.on_conflict_do_update(
        index_elements=[pt.c.principal],
        set_={
            "queries": pt.c.queries + stmt.excluded.queries,
            "first_seen_ts": _least(pt.c.first_seen_ts, stmt.excluded.first_seen_ts),
            "last_seen_ts": _greatest(pt.c.last_seen_ts, stmt.excluded.last_seen_ts),
        },
    )
    conn.execute(
        stmt,
        [
            {"principal": p, "queries": int(v[0]), "first_seen_ts": v[1], "last_seen_ts": v[2]}
            for p, v in sorted(per_principal.items())
        ],
    )


def know_principals(conn: sa.Connection, names: Iterable[str]) -> None:
    """Make sure each principal is listed, even one that a finding or decision names
    before (or without) any of its interactions being stored."""
    unique = sorted(set(names))
    if unique:
        pt = schema.principals
        conn.execute(
            insert_for(conn, pt).on_conflict_do_nothing(index_elements=[pt.c.principal]),
            [{"principal": p, "queries": 0, "first_seen_ts": None, "last_seen_ts": None} for p in unique],
        )


# -- signals -------------------------------------------------------------------------------
def add_signals(conn: sa.Connection, items: Sequence[Signal]) -> int:
    if items:
        conn.execute(schema.signals.insert(), [codec.signal_row(s) for s in items])
    return len(items)


# -- findings ------------------------------------------------------------------------------
def add_findings(conn: sa.Connection, items: Sequence[Finding]) -> int:
    """Append each event to the history and move the finding's current row forward."""
    if not items:
        return 0
    ev = schema.finding_events
    conn.execute(
        insert_for(conn, ev).on_conflict_do_nothing(index_elements=[ev.c.finding_id, ev.c.revision, ev.c.status]),
        [codec.finding_event_row(f) for f in items],
    )
    latest: dict[str, Finding] = {}
    for f in items:
        seen = latest.get(f.finding_id)
        if seen is None or f.revision >= seen.revision:
            latest[f.finding_id] = f
    t = schema.findings
    stmt = insert_for(conn, t)
    columns = [c.name for c in t.columns if c.name != "finding_id"]
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.finding_id],
        set_={name: stmt.excluded[name] for name in columns},
        # forward only; an operator's close holds against the engine's events of the same
        # revision (a replay) and gives way to a later one (the engine raised it again)
        where=sa.or_(
            t.c.revision < stmt.excluded.revision,
            sa.and_(t.c.revision == stmt.excluded.revision, t.c.status != "closed"),
        ),
    )
    conn.execute(stmt, [codec.finding_row(latest[k]) for k in sorted(latest)])
    fp = schema.finding_principals
    pairs = {(f.finding_id, p) for f in latest.values() for p in f.principals}
    conn.execute(
        insert_for(conn, fp).on_conflict_do_nothing(index_elements=[fp.c.finding_id, fp.c.principal]),
        [{"finding_id": fid, "principal": p} for fid, p in sorted(pairs)],
    )
    know_principals(conn, (p for _, p in pairs))
    members: dict[str, tuple[str, float]] = {}
    for f in latest.values():
        if f.actor is not None:
            for p in f.principals:
                members[p] = (f.actor, f.updated_ts)
    if members:
        _upsert_members(conn, members)
    return len(items)


# -- decisions -----------------------------------------------------------------------------
def set_decisions(conn: sa.Connection, items: Sequence[Decision], *, note: str, by: str | None) -> int:
    """Make each decision current and audit the change (engine or operator, who, why)."""
    if not items:
        return 0
    latest: dict[str, Decision] = {}
    for d in items:
        latest[d.principal] = d
    d_t = schema.decisions
    found = conn.execute(sa.select(d_t.c.principal, d_t.c.action).where(d_t.c.principal.in_(list(latest))))
    previous: dict[str, str] = {p: a for p, a in found}
    stmt = insert_for(conn, d_t)
    columns = [c.name for c in d_t.columns if c.name != "principal"]
    stmt = stmt.on_conflict_do_update(
        index_elements=[d_t.c.principal], set_={name: stmt.excluded[name] for name in columns}
    )
    conn.execute(stmt, [codec.decision_row(latest[k]) for k in sorted(latest)])
    know_principals(conn, latest)
    now = time.time()
    audit = []
    for d in items:
        audit.append(
            {
                "principal": d.principal,
                "action": d.action.value,
                "previous_action": previous.get(d.principal),
                "ts": d.ts,
                "recorded_at": now,
                "source": d.source,
                "by": by or d.source,
                "note": note,
                "reason": d.reason,
                "finding_id": d.finding_id,
                "params": codec.dumps(d.params),
                "shadow": d.shadow,
            }
        )
        previous[d.principal] = d.action.value
    conn.execute(schema.decision_audit.insert(), audit)
    return len(items)


def clear_decision(conn: sa.Connection, principal: str, *, ts: float, note: str, by: str) -> bool:
    """Lift a principal's decision (back to allow); audited as ``clear``. False if it had none."""
    d_t = schema.decisions
    previous = conn.execute(sa.select(d_t.c.action).where(d_t.c.principal == principal)).scalar()
    if previous is None:
        return False
    conn.execute(sa.delete(d_t).where(d_t.c.principal == principal))
    conn.execute(
        schema.decision_audit.insert(),
        {
            "principal": principal,
            "action": "clear",
            "previous_action": previous,
            "ts": ts,
            "recorded_at": time.time(),
            "source": "operator",
            "by": by,
            "note": note,
            "reason": "",
            "finding_id": None,
            "params": "{}",
            "shadow": False,
        },
    )
    return True


# -- retention in time ---------------------------------------------------------------------
def prune(conn: sa.Connection, before: float) -> tuple[int, int]:
    """Delete interactions and signals older than ``before``; return how many of each.

    Findings, their history, decisions and the audit stay: they are the security record,
    and they are small. The roll-ups keep counting the pruned traffic.
    """
    i, s = schema.interactions, schema.signals
    gone_i = conn.execute(sa.delete(i).where(i.c.ts < before)).rowcount
    gone_s = conn.execute(sa.delete(s).where(s.c.ts < before)).rowcount
    return int(gone_i), int(gone_s)


# -- actors, snapshots, meta ---------------------------------------------------------------
def save_actors(conn: sa.Connection, actors: Mapping[str, Iterable[str]], ts: float) -> None:
    members = {p: (actor, ts) for actor, principals in actors.items() for p in principals}
    if members:
        _upsert_members(conn, members)


def _upsert_members(conn: sa.Connection, members: Mapping[str, tuple[str, float]]) -> None:
    know_principals(conn, members)
    t = schema.actor_members
    stmt = insert_for(conn, t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.principal],
        set_={"actor": stmt.excluded.actor, "ts": stmt.excluded.ts},
        where=t.c.actor != stmt.excluded.actor,
    )
    conn.execute(stmt, [{"principal": p, "actor": a, "ts": ts} for p, (a, ts) in sorted(members.items())])


def save_snapshot(conn: sa.Connection, name: str, blob: bytes, ts: float) -> None:
    t = schema.snapshots
    stmt = insert_for(conn, t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.name], set_={"ts": stmt.excluded.ts, "blob": stmt.excluded.blob}
    )
    conn.execute(stmt, {"name": name, "ts": ts, "blob": blob})


def set_meta(conn: sa.Connection, values: Mapping[str, str]) -> None:
    t = schema.meta
    stmt = insert_for(conn, t)
    stmt = stmt.on_conflict_do_update(index_elements=[t.c.key], set_={"value": stmt.excluded.value})
    conn.execute(stmt, [{"key": k, "value": v} for k, v in values.items()])
