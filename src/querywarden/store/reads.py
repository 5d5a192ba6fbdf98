"""Read queries: each is a function of a connection and returns core records or views.

Every list is paginated (``limit``/``offset``) with a stable order, so the console and
the REST API can page through millions of rows without gaps or repeats. Principal lists
and counts come from the traffic roll-up, never from a scan of the interactions table.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

import sqlalchemy as sa

from querywarden.core.records import Decision, Finding, Severity, Signal
from querywarden.errors import StoreError
from querywarden.store import codec, schema
from querywarden.store.views import (
    ActorSummary,
    AuditEntry,
    FindingDetail,
    PrincipalSummary,
    SnapshotInfo,
    StoredInteraction,
    StoreStats,
)

FINDING_STATUSES = ("open", "updated", "closed", "active")
"""``active`` means not closed: ``open`` or ``updated``."""

PrincipalOrder = Literal["risk", "queries", "last_seen"]
PRINCIPAL_ORDERS: tuple[PrincipalOrder, ...] = ("risk", "queries", "last_seen")

_f = schema.findings
_fp = schema.finding_principals
_d = schema.decisions
_am = schema.actor_members
_t = schema.traffic
_active = _f.c.status != "closed"


def page(limit: int, offset: int) -> tuple[int, int]:
    if limit < 0 or offset < 0:
        raise StoreError(f"limit and offset must be 0 or more, got limit={limit} offset={offset}")
    return limit, offset


def _equal(*pairs: tuple[sa.ColumnElement[Any], object]) -> list[sa.ColumnElement[bool]]:
    """``column == value`` for each pair whose value is given (None filters nothing)."""
    return [column == value for column, value in pairs if value is not None]


def _window(ts: sa.ColumnElement[Any], since: float | None, until: float | None) -> list[sa.ColumnElement[bool]]:
    """``since <= ts < until``, each bound optional: the one half-open window of every time filter."""
    where: list[sa.ColumnElement[bool]] = []
    if since is not None:
        where.append(ts >= since)
    if until is not None:
        where.append(ts < until)
    return where


# -- findings ------------------------------------------------------------------------------
def finding_filter(
    *,
    status: str | None = None,
    severity_at_least: Severity | str | None = None,
    technique: str | None = None,
    principal: str | None = None,
    model: str | None = None,
    actor: str | None = None,
    since: float | None = None,
) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if status is not None:
        if status not in FINDING_STATUSES:
            raise StoreError(f"unknown finding status {status!r}; allowed: {', '.join(FINDING_STATUSES)}")
        where.append(_active if status == "active" else _f.c.status == status)
    if severity_at_least is not None:
        try:
            level = severity_at_least if isinstance(severity_at_least, Severity) else Severity.parse(severity_at_least)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        where.append(_f.c.severity >= int(level))
    where += _equal((_f.c.technique_id, technique), (_f.c.model, model), (_f.c.actor, actor))
    where += _window(_f.c.updated_ts, since, None)
    if principal is not None:
        named = sa.select(_fp.c.finding_id).where(_fp.c.principal == principal, _fp.c.finding_id == _f.c.finding_id)
        where.append(named.exists())
    return where


def findings(conn: sa.Connection, where: list[sa.ColumnElement[bool]], limit: int, offset: int) -> list[Finding]:
    limit, offset = page(limit, offset)
    q = sa.select(_f).where(*where).order_by(_f.c.updated_ts.desc(), _f.c.finding_id).limit(limit).offset(offset)
    return [codec.finding_from(r) for r in conn.execute(q)]


def count_findings(conn: sa.Connection, where: list[sa.ColumnElement[bool]]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(_f).where(*where)).scalar_one())


def finding(conn: sa.Connection, finding_id: str) -> FindingDetail | None:
    row = conn.execute(sa.select(_f).where(_f.c.finding_id == finding_id)).first()
    if row is None:
        return None
    ev = schema.finding_events
    bodies = conn.execute(sa.select(ev.c.body).where(ev.c.finding_id == finding_id).order_by(ev.c.revision, ev.c.seq))
    return FindingDetail(codec.finding_from(row), tuple(codec.finding_event_from(b) for (b,) in bodies))


# -- signals -------------------------------------------------------------------------------
def signals(
    conn: sa.Connection,
    *,
    principal: str | None,
    finding_id: str | None,
    detector: str | None,
    since: float | None,
    until: float | None,
    limit: int,
    offset: int,
) -> list[Signal]:
    """Signals, newest first. With ``finding_id``: the signals behind that finding, i.e.
    its model and technique, from its principals, within its first and last seen times."""
    limit, offset = page(limit, offset)
    s = schema.signals
    where: list[sa.ColumnElement[bool]] = []
    if finding_id is not None:
        row = conn.execute(sa.select(_f).where(_f.c.finding_id == finding_id)).first()
        if row is None:
            return []
        f = codec.finding_from(row)
        where += [
            s.c.model == f.model,
            s.c.technique == f.technique["id"],
            s.c.principal.in_(list(f.principals)),
            s.c.ts >= f.first_seen_ts,
            s.c.ts <= f.updated_ts,
        ]
    where += _equal((s.c.principal, principal), (s.c.detector, detector))
    where += _window(s.c.ts, since, until)
    q = sa.select(s).where(*where).order_by(s.c.ts.desc(), s.c.seq.desc()).limit(limit).offset(offset)
    return [codec.signal_from(r) for r in conn.execute(q)]


# -- interactions --------------------------------------------------------------------------
def interactions(
    conn: sa.Connection,
    *,
    principal: str | None,
    model: str | None,
    since: float | None,
    until: float | None,
    newest_first: bool,
    limit: int,
    offset: int,
) -> list[StoredInteraction]:
    limit, offset = page(limit, offset)
    i = schema.interactions
    where = _equal((i.c.principal, principal), (i.c.model, model)) + _window(i.c.ts, since, until)
    order = (i.c.ts.desc(), i.c.seq.desc()) if newest_first else (i.c.ts, i.c.seq)
    q = sa.select(i).where(*where).order_by(*order).limit(limit).offset(offset)
    return [_stored_interaction(r) for r in conn.execute(q)]


def _stored_interaction(r: Any) -> StoredInteraction:
    return StoredInteraction(
        seq=r.seq,
        id=r.id,
        ts=r.ts,
        principal=r.principal,
        model=r.model,
        actor=r.actor,
        client_ip=r.client_ip,
        user_agent=r.user_agent,
        input_hash=r.input_hash,
        n_features=r.n_features,
        l2_norm=r.l2_norm,
        predicted_class=r.predicted_class,
        top_probability=r.top_probability,
        margin=r.margin,
        prompt_length=r.prompt_length,
        input=codec.loads(r.input_json),
        output=codec.loads(r.output_json),
        params=codec.loads(r.params_json),
    )


# -- principals ----------------------------------------------------------------------------
def principals(
    conn: sa.Connection, *, order_by: str, only: str | None, limit: int, offset: int
) -> list[PrincipalSummary]:
    """Every principal the store knows of (from traffic, findings or decisions), summarized."""
    if order_by not in PRINCIPAL_ORDERS:
        raise StoreError(f"cannot order principals by {order_by!r}; allowed: {', '.join(PRINCIPAL_ORDERS)}")
    limit, offset = page(limit, offset)
    p = schema.principals
    fa_query = (
        sa.select(
            _fp.c.principal,
            sa.func.count().label("open_findings"),
            sa.func.max(_f.c.severity).label("max_severity"),
            sa.func.max(_f.c.score).label("risk"),
        )
        .join(_f, _f.c.finding_id == _fp.c.finding_id)
        .where(_active)
        .group_by(_fp.c.principal)
    )
    if only is not None:
        fa_query = fa_query.where(_fp.c.principal == only)
    fa = fa_query.subquery()
    orders: dict[str, tuple[Any, ...]] = {
        "risk": (
            sa.func.coalesce(fa.c.max_severity, -1).desc(),
            sa.func.coalesce(fa.c.risk, 0.0).desc(),
            p.c.queries.desc(),
        ),
        "queries": (p.c.queries.desc(),),
        "last_seen": (p.c.last_seen_ts.desc().nulls_last(),),
    }
    q = (
        sa.select(
            p,
            fa.c.open_findings,
            fa.c.max_severity,
            fa.c.risk,
            _am.c.actor.label("member_of"),
            *[c.label(f"d_{c.name}") for c in _d.columns],
        )
        .select_from(p)
        .outerjoin(fa, fa.c.principal == p.c.principal)
        .outerjoin(_d, _d.c.principal == p.c.principal)
        .outerjoin(_am, _am.c.principal == p.c.principal)
        .order_by(*orders[order_by], p.c.principal)
        .limit(limit)
        .offset(offset)
    )
    if only is not None:
        q = q.where(p.c.principal == only)
    rows = conn.execute(q).all()
    models: dict[str, list[str]] = {}
    if rows:
        names = [r.principal for r in rows]
        pairs = conn.execute(
            sa.select(_t.c.principal, _t.c.model).where(_t.c.principal.in_(names)).order_by(_t.c.model)
        )
        for name, model in pairs:
            models.setdefault(name, []).append(model)
    return [_principal_summary(r, tuple(models.get(r.principal, ()))) for r in rows]


def _principal_summary(r: Any, models: tuple[str, ...]) -> PrincipalSummary:
    decision = None
    if r.d_principal is not None:
        decision = codec.decision_from(_Prefixed(r, "d_"))
    return PrincipalSummary(
        principal=r.principal,
        queries=int(r.queries or 0),
        first_seen_ts=r.first_seen_ts,
        last_seen_ts=r.last_seen_ts,
        models=models,
        open_findings=int(r.open_findings or 0),
        max_severity=None if r.max_severity is None else Severity(r.max_severity),
        risk=float(r.risk or 0.0),
        decision=decision,
        actor=r.member_of,
    )


class _Prefixed:
    """A row's ``prefix``-named columns, read without the prefix."""

    def __init__(self, row: Any, prefix: str) -> None:
        self._row, self._prefix = row, prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, self._prefix + name)


# -- decisions, audit, actors, snapshots ---------------------------------------------------
def load_decisions(conn: sa.Connection) -> list[Decision]:
    return [codec.decision_from(r) for r in conn.execute(sa.select(_d).order_by(_d.c.principal))]


def audit(conn: sa.Connection, *, principal: str | None, limit: int, offset: int) -> list[AuditEntry]:
    limit, offset = page(limit, offset)
    a = schema.decision_audit
    q = sa.select(a).order_by(a.c.seq.desc()).limit(limit).offset(offset)
    if principal is not None:
        q = q.where(a.c.principal == principal)
    return [
        AuditEntry(
            seq=r.seq,
            principal=r.principal,
            action=r.action,
            previous_action=r.previous_action,
            ts=r.ts,
            recorded_at=r.recorded_at,
            source=r.source,
            by=r.by,
            note=r.note,
            reason=r.reason,
            finding_id=r.finding_id,
            params=codec.loads(r.params),
            shadow=bool(r.shadow),
        )
        for r in conn.execute(q)
    ]


def actors(conn: sa.Connection, *, only: str | None = None) -> list[ActorSummary]:
    """Every actor (or just ``only``) with its members, in actor id order."""
    q = sa.select(_am).order_by(_am.c.actor, _am.c.ts, _am.c.principal)
    if only is not None:
        q = q.where(_am.c.actor == only)
    rows = conn.execute(q).all()
    grouped: dict[str, list[Any]] = {}
    for r in rows:
        grouped.setdefault(r.actor, []).append(r)
    stats = conn.execute(
        sa.select(_f.c.actor, sa.func.count(), sa.func.max(_f.c.severity))
        .where(_active, _f.c.actor.is_not(None) if only is None else _f.c.actor == only)
        .group_by(_f.c.actor)
    )
    open_by_actor = {a: (int(n), sev) for a, n, sev in stats}
    out = []
    for actor, members in grouped.items():
        n, sev = open_by_actor.get(actor, (0, None))
        out.append(
            ActorSummary(
                actor=actor,
                members=tuple(m.principal for m in members),
                first_linked_ts=min(m.ts for m in members),
                open_findings=n,
                max_severity=None if sev is None else Severity(sev),
            )
        )
    return out


def load_snapshot(conn: sa.Connection, name: str) -> bytes | None:
    blob = conn.execute(sa.select(schema.snapshots.c.blob).where(schema.snapshots.c.name == name)).scalar()
    return None if blob is None else bytes(blob)


def snapshots(conn: sa.Connection) -> list[SnapshotInfo]:
    s = schema.snapshots
    q = sa.select(s.c.name, s.c.ts, sa.func.length(s.c.blob)).order_by(s.c.name)
    return [SnapshotInfo(name, ts, int(size)) for name, ts, size in conn.execute(q)]


def meta(conn: sa.Connection) -> dict[str, str]:
    return {k: v for k, v in conn.execute(sa.select(schema.meta.c.key, schema.meta.c.value))}


# -- stats ---------------------------------------------------------------------------------
def stats(conn: sa.Connection, *, since: float | None) -> StoreStats:
    def grouped(column: Any, table: sa.Table, *where: sa.ColumnElement[bool]) -> dict[Any, int]:
        q = sa.select(column, sa.func.count()).select_from(table).where(*where).group_by(column)
        return {k: int(n) for k, n in conn.execute(q)}

    def count(table: sa.Table) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    per_model = {
        m: int(n) for m, n in conn.execute(sa.select(_t.c.model, sa.func.sum(_t.c.queries)).group_by(_t.c.model))
    }
    pt = schema.principals
    n_principals = conn.execute(sa.select(sa.func.count()).select_from(pt).where(pt.c.queries > 0)).scalar_one()
    window = [] if since is None else [_f.c.detected_ts >= since]
    hours: Counter[float] = Counter()
    for (ts,) in conn.execute(sa.select(_f.c.detected_ts).where(*window)):
        hours[ts - ts % 3600.0] += 1
    return StoreStats(
        interactions=sum(per_model.values()),
        principals=int(n_principals),
        signals=count(schema.signals),
        findings=count(_f),
        interactions_per_model=per_model,
        findings_per_status=grouped(_f.c.status, _f),
        findings_per_severity={Severity(k).label: n for k, n in grouped(_f.c.severity, _f).items()},
        findings_per_technique=grouped(_f.c.technique_id, _f),
        findings_per_hour=tuple(sorted(hours.items())),
        decisions_per_action=grouped(_d.c.action, _d),
    )
