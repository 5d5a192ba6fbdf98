"""The store's tables, as SQLAlchemy Core metadata.

This is the shape the queries are written against. The migrations in
``querywarden/migrations/versions`` build the same shape step by step, and a test
compares the two so they cannot drift apart.

Conventions, chosen so SQLite and PostgreSQL behave the same:
- time is epoch seconds in a double (``Interaction.ts`` as the engine saw it);
- severity is its integer rank, so ``severity >= medium`` is an index-friendly compare;
- structured values (evidence, parameters, member lists) are JSON text written by
  msgspec; an analyst can still query them with ``::jsonb`` on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

interactions = sa.Table(
    "interactions",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(256), nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("principal", sa.String(256), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("actor", sa.String(64)),
    sa.Column("client_ip", sa.String(64)),
    sa.Column("user_agent", sa.Text),
    # the sketch: a compact digest of the request, kept in `sketch` and `full` retention
    sa.Column("input_hash", sa.String(32)),
    sa.Column("n_features", sa.Integer),
    sa.Column("l2_norm", sa.Double),
    sa.Column("predicted_class", sa.String(128)),
    sa.Column("top_probability", sa.Double),
    sa.Column("margin", sa.Double),
    sa.Column("prompt_length", sa.Integer),
    # the raw request and response, kept only in `full` retention
    sa.Column("input_json", sa.Text),
    sa.Column("output_json", sa.Text),
    sa.Column("params_json", sa.Text),
    sa.Index("ix_interactions_principal_ts", "principal", "ts"),
    sa.Index("ix_interactions_ts", "ts"),
    sa.Index("ix_interactions_id", "id"),
)

principals = sa.Table(
    "principals",
    metadata,
    sa.Column("principal", sa.String(256), primary_key=True),
    sa.Column("queries", sa.BigInteger, nullable=False),
    sa.Column("first_seen_ts", sa.Double),
    sa.Column("last_seen_ts", sa.Double),
    sa.Index("ix_principals_queries", "queries"),
    sa.Index("ix_principals_last_seen_ts", "last_seen_ts"),
)
"""Every principal the store knows of, with its interaction count and first/last seen.
A principal named only by a finding, decision or actor has 0 queries and no times. Kept
in step with every write so principal lists never scan or group the interactions."""

traffic = sa.Table(
    "traffic",
    metadata,
    sa.Column("principal", sa.String(256), primary_key=True),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("queries", sa.BigInteger, nullable=False),
    sa.Column("first_seen_ts", sa.Double, nullable=False),
    sa.Column("last_seen_ts", sa.Double, nullable=False),
)
"""Per principal and model: how many interactions and when (per-model counts, and the
models each principal used)."""

signals = sa.Table(
    "signals",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("detector", sa.String(128), nullable=False),
    sa.Column("technique", sa.String(32), nullable=False),
    sa.Column("principal", sa.String(256), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("interaction_id", sa.String(256), nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("score", sa.Double, nullable=False),
    sa.Column("severity", sa.SmallInteger, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("related", sa.Text, nullable=False),
    sa.Column("link_weight", sa.Double, nullable=False),
    sa.Index("ix_signals_principal_ts", "principal", "ts"),
    sa.Index("ix_signals_model_technique_ts", "model", "technique", "ts"),
)

findings = sa.Table(
    "findings",
    metadata,
    sa.Column("finding_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("principals", sa.Text, nullable=False),
    sa.Column("actor", sa.String(64)),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("technique_id", sa.String(32), nullable=False),
    sa.Column("technique_name", sa.String(128), nullable=False),
    sa.Column("owasp", sa.Text, nullable=False),
    sa.Column("severity", sa.SmallInteger, nullable=False),
    sa.Column("score", sa.Double, nullable=False),
    sa.Column("detectors", sa.Text, nullable=False),
    sa.Column("first_seen_ts", sa.Double, nullable=False),
    sa.Column("detected_ts", sa.Double, nullable=False),
    sa.Column("updated_ts", sa.Double, nullable=False),
    sa.Column("trigger_id", sa.String(256), nullable=False),
    sa.Column("queries_at_detection", sa.BigInteger, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Index("ix_findings_updated_ts", "updated_ts"),
    sa.Index("ix_findings_status_severity", "status", "severity"),
)
"""The current state of each finding: its latest event."""

finding_principals = sa.Table(
    "finding_principals",
    metadata,
    sa.Column("finding_id", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(256), primary_key=True),
    sa.Index("ix_finding_principals_principal", "principal"),
)
"""Which principals a finding names, so filters by principal use an index."""

finding_events = sa.Table(
    "finding_events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("finding_id", sa.String(64), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("severity", sa.SmallInteger, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.UniqueConstraint("finding_id", "revision", "status", name="uq_finding_events_revision"),
)
"""Every open/updated/closed event. Unique per revision, so replaying the same traffic
into the same store does not duplicate history."""

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("principal", sa.String(256), primary_key=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("finding_id", sa.String(64)),
    sa.Column("actor", sa.String(64)),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("shadow", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
)

decision_audit = sa.Table(
    "decision_audit",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("principal", sa.String(256), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("previous_action", sa.String(16)),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("recorded_at", sa.Double, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("by", sa.String(256), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("finding_id", sa.String(64)),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("shadow", sa.Boolean, nullable=False),
    sa.Index("ix_decision_audit_principal", "principal"),
)
"""Every change of a principal's decision: what, who (engine or an operator), why, when.
``ts`` is the decision's own time; ``recorded_at`` is the wall clock of the write."""

actor_members = sa.Table(
    "actor_members",
    metadata,
    sa.Column("principal", sa.String(256), primary_key=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Index("ix_actor_members_actor", "actor"),
)
"""Each clustered principal's actor. One row per principal, so when actors merge the
principal simply moves to the surviving actor."""

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("blob", sa.LargeBinary, nullable=False),
)

finding_triage = sa.Table(
    "finding_triage",
    metadata,
    sa.Column("finding_id", sa.String(64), primary_key=True),
    sa.Column("acknowledged_by", sa.String(256)),
    sa.Column("acknowledged_at", sa.Double),
    sa.Column("acknowledged_note", sa.Text),
    sa.Column("closed_by", sa.String(256)),
    sa.Column("closed_at", sa.Double),
    sa.Column("closed_note", sa.Text),
    sa.Column("closed_revision", sa.Integer),
)
"""What operators did to a finding: who acknowledged it and who closed it, when (wall
clock) and why. ``closed_revision`` is the finding's revision when it was closed: a later
engine event (a higher revision) re-opens the finding, and the row shows that it did."""

operator_audit = sa.Table(
    "operator_audit",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("recorded_at", sa.Double, nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("by", sa.String(256), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("client_ip", sa.String(64)),
    sa.Index("ix_operator_audit_subject", "subject"),
)
"""What operators did besides decisions: finding triage (``acknowledge``, ``close``) and
console logins (``login``, ``login_failed``, with the client IP; never the secret).
``subject`` is the finding id, or the user name a login was tried for."""
