"""Operators acknowledge and close findings, and the console audits logins: the
finding_triage and operator_audit tables.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finding_triage",
        sa.Column("finding_id", sa.String(64), primary_key=True),
        sa.Column("acknowledged_by", sa.String(256)),
        sa.Column("acknowledged_at", sa.Double),
        sa.Column("acknowledged_note", sa.Text),
        sa.Column("closed_by", sa.String(256)),
        sa.Column("closed_at", sa.Double),
        sa.Column("closed_note", sa.Text),
        sa.Column("closed_revision", sa.Integer),
    )
    op.create_table(
        "operator_audit",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.Double, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("by", sa.String(256), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("client_ip", sa.String(64)),
    )
    op.create_index("ix_operator_audit_subject", "operator_audit", ["subject"])


def downgrade() -> None:
    op.drop_index("ix_operator_audit_subject", table_name="operator_audit")
    op.drop_table("operator_audit")
    op.drop_table("finding_triage")
