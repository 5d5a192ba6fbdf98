"""Alembic environment: migrate the connection the store hands over.

The store opens the database itself and passes its connection in
``config.attributes["connection"]``, so the URL, pragmas and error handling live in one
place. On PostgreSQL a transaction-scoped advisory lock serializes migrations, so
several gateway processes starting at once do not race to create the same tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

MIGRATION_LOCK = 0x5157_4D49_4752  # arbitrary, stable: "QWMIGR"


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("querywarden migrations run through open_store(), which passes a connection")
    context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("querywarden migrations run online only")
run_migrations_online()
