"""The first schema: interactions, principal and traffic roll-ups, signals, findings and their events,
decisions and their audit, actors, snapshots and meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _seq() -> sa.Column[int]:
    """An auto-numbered key: BIGINT on PostgreSQL, SQLite's rowid alias there."""
    return sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "interactions",
        _seq(),
        sa.Column("id", sa.String(256), nullable=False),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(64)),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("user_agent", sa.Text),
        sa.Column("input_hash", sa.String(32)),
        sa.Column("n_features", sa.Integer),
        sa.Column("l2_norm", sa.Double),
        sa.Column("predicted_class", sa.String(128)),
        sa.Column("top_probability", sa.Double),
        sa.Column("margin", sa.Double),
        sa.Column("prompt_length", sa.Integer),
        sa.Column("input_json", sa.Text),
        sa.Column("output_json", sa.Text),
        sa.Column("params_json", sa.Text),
    )
    op.create_index("ix_interactions_principal_ts", "interactions", ["principal", "ts"])
    op.create_index("ix_interactions_ts", "interactions", ["ts"])
    op.create_index("ix_interactions_id", "interactions", ["id"])
    op.create_table(
        "principals",
        sa.Column("principal", sa.String(256), primary_key=True),
        sa.Column("queries", sa.BigInteger, nullable=False),
        sa.Column("first_seen_ts", sa.Double),
        sa.Column("last_seen_ts", sa.Double),
    )
    op.create_index("ix_principals_queries", "principals", ["queries"])
    op.create_index("ix_principals_last_seen_ts", "principals", ["last_seen_ts"])
    op.create_table(
        "traffic",
        sa.Column("principal", sa.String(256), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("queries", sa.BigInteger, nullable=False),
        sa.Column("first_seen_ts", sa.Double, nullable=False),
        sa.Column("last_seen_ts", sa.Double, nullable=False),
    )
    op.create_table(
        "signals",
        _seq(),
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
    )
    op.create_index("ix_signals_principal_ts", "signals", ["principal", "ts"])
    op.create_index("ix_signals_model_technique_ts", "signals", ["model", "technique", "ts"])
    op.create_table(
        "findings",
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
    )
    op.create_index("ix_findings_updated_ts", "findings", ["updated_ts"])
    op.create_index("ix_findings_status_severity", "findings", ["status", "severity"])
    op.create_table(
        "finding_principals",
        sa.Column("finding_id", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(256), primary_key=True),
    )
    op.create_index("ix_finding_principals_principal", "finding_principals", ["principal"])
    op.create_table(
        "finding_events",
        _seq(),
        sa.Column("finding_id", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("severity", sa.SmallInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.UniqueConstraint("finding_id", "revision", "status", name="uq_finding_events_revision"),
    )
    op.create_table(
        "decisions",
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
    op.create_table(
        "decision_audit",
        _seq(),
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
    )
    op.create_index("ix_decision_audit_principal", "decision_audit", ["principal"])
    op.create_table(
        "actor_members",
        sa.Column("principal", sa.String(256), primary_key=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("ts", sa.Double, nullable=False),
    )
    op.create_index("ix_actor_members_actor", "actor_members", ["actor"])
    op.create_table(
        "snapshots",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("blob", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "snapshots",
        "actor_members",
        "decision_audit",
        "decisions",
        "finding_events",
        "finding_principals",
        "findings",
        "signals",
        "traffic",
        "principals",
        "interactions",
        "meta",
    ):
        op.drop_table(table)
