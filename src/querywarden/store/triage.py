"""Operators' part in a finding's lifecycle, and the operator audit log.

The engine owns a finding's lifecycle (open, updated, closed). An operator can also:

- **acknowledge** it: the finding stays as it is (and stays in the active lists), marked
  with who acknowledged it, when and why;
- **close** it: the current row becomes ``closed`` and the history gains a ``closed``
  event at the finding's current revision. The engine's next event for the finding has a
  higher revision and moves the row forward as every engine event does, so a finding the
  engine raises again re-opens; the triage row keeps the close on record (``reopened``).

Each change is written with its ``operator_audit`` row in one transaction. Logins are
audited in the same table (``login``, ``login_failed``), with the client IP and the name
tried, never the secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import sqlalchemy as sa

from querywarden.core.records import Finding
from querywarden.errors import StoreError
from querywarden.store import codec, reads, schema
from querywarden.store.views import OperatorEvent, Triage
from querywarden.store.writes import insert_for

TRIAGE_ACTIONS = ("acknowledge", "close")
OPERATOR_EVENTS = (*TRIAGE_ACTIONS, "login", "login_failed")


class TriageRefused(StoreError):
    """The finding's state does not allow the change (it is closed, or changed meanwhile)."""


def check_action(action: str) -> None:
    if action not in TRIAGE_ACTIONS:
        raise ValueError(f"unknown triage action {action!r}; allowed: {', '.join(TRIAGE_ACTIONS)}")


def check_event(event: str) -> None:
    if event not in OPERATOR_EVENTS:
        raise ValueError(f"unknown operator event {event!r}; allowed: {', '.join(OPERATOR_EVENTS)}")


def triage_finding(
    conn: sa.Connection,
    finding_id: str,
    action: str,
    *,
    by: str,
    note: str,
    now: float,
    client_ip: str | None = None,
) -> Finding | None:
    """Acknowledge or close a finding and audit it; the finding as it is now, None if unknown."""
    check_action(action)
    f_t = schema.findings
    row = conn.execute(sa.select(f_t).where(f_t.c.finding_id == finding_id)).first()
    if row is None:
        return None
    finding = codec.finding_from(row)
    if finding.status == "closed":
        raise TriageRefused(f"finding {finding_id} is closed; it re-opens when the engine raises it again")
    values: dict[str, Any]
    if action == "acknowledge":
        values = {"acknowledged_by": by, "acknowledged_at": now, "acknowledged_note": note}
    else:
        values = {"closed_by": by, "closed_at": now, "closed_note": note, "closed_revision": finding.revision}
        moved = conn.execute(
            sa.update(f_t)
            .where(f_t.c.finding_id == finding_id, f_t.c.revision == finding.revision)
            .values(status="closed")
        )
        if moved.rowcount != 1:
            raise TriageRefused(f"finding {finding_id} changed while it was being closed; reload it and try again")
        finding = msgspec.structs.replace(finding, status="closed")
        ev = schema.finding_events
        conn.execute(
            insert_for(conn, ev).on_conflict_do_nothing(index_elements=[ev.c.finding_id, ev.c.revision, ev.c.status]),
            [codec.finding_event_row(finding)],
        )
    t = schema.finding_triage
    stmt = insert_for(conn, t).on_conflict_do_update(index_elements=[t.c.finding_id], set_=values)
    conn.execute(stmt, {"finding_id": finding_id, **values})
    audit(conn, action, by=by, subject=finding_id, note=note, now=now, client_ip=client_ip)
    return finding


def audit(
    conn: sa.Connection, event: str, *, by: str, subject: str, note: str, now: float, client_ip: str | None
) -> None:
    """Append one operator event to the audit log."""
    check_event(event)
    conn.execute(
        schema.operator_audit.insert(),
        {"recorded_at": now, "event": event, "by": by, "subject": subject, "note": note, "client_ip": client_ip},
    )


# -- reads ---------------------------------------------------------------------------------
def triage(conn: sa.Connection, finding_ids: Sequence[str]) -> dict[str, Triage]:
    """What operators did to each of ``finding_ids`` (only those with a triage row)."""
    if not finding_ids:
        return {}
    t, f_t = schema.finding_triage, schema.findings
    q = (
        sa.select(t, f_t.c.revision.label("revision"))
        .join(f_t, f_t.c.finding_id == t.c.finding_id)
        .where(t.c.finding_id.in_(list(dict.fromkeys(finding_ids))))
    )
    out = {}
    for r in conn.execute(q):
        out[r.finding_id] = Triage(
            finding_id=r.finding_id,
            acknowledged_by=r.acknowledged_by,
            acknowledged_at=r.acknowledged_at,
            acknowledged_note=r.acknowledged_note,
            closed_by=r.closed_by,
            closed_at=r.closed_at,
            closed_note=r.closed_note,
            closed_revision=r.closed_revision,
            reopened=r.closed_revision is not None and r.revision > r.closed_revision,
        )
    return out


def operator_events(
    conn: sa.Connection, *, event: str | None, subject: str | None, limit: int, offset: int
) -> list[OperatorEvent]:
    """Operator events, newest first."""
    limit, offset = reads.page(limit, offset)
    a = schema.operator_audit
    q = sa.select(a).order_by(a.c.seq.desc()).limit(limit).offset(offset)
    if event is not None:
        q = q.where(a.c.event == event)
    if subject is not None:
        q = q.where(a.c.subject == subject)
    return [
        OperatorEvent(
            seq=r.seq,
            recorded_at=r.recorded_at,
            event=r.event,
            by=r.by,
            subject=r.subject,
            note=r.note,
            client_ip=r.client_ip,
        )
        for r in conn.execute(q)
    ]
