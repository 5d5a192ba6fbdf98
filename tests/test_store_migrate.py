"""Migrations: they build exactly the tables the queries are written against, run on open,
undo cleanly, and refuse a database from a newer QueryWarden."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from querywarden.errors import StoreError
from querywarden.store import migrate, open_store, schema


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/qw.db"
    return str(request.getfixturevalue("postgres_server").new_database())


def test_migrations_build_exactly_the_schema_the_code_queries(store_url: str) -> None:
    open_store(store_url).close()
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
            tables = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert diff == []
    assert tables == set(schema.metadata.tables) | {"alembic_version"}


def test_downgrade_to_empty_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/qw.db"
    open_store(url).close()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            cfg = migrate._config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
            assert set(sa.inspect(conn).get_table_names()) == {"alembic_version"}
            assert migrate.current(conn) is None
    finally:
        engine.dispose()
    with open_store(url) as store:
        assert store.schema_revision == migrate.head() == "0002"


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/qw.db"
    open_store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0042'"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"qw\.db: the database is at schema revision '0042', newer than"):
        open_store(url)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(StoreError, match=r"notes\.db: file is not a database"):
        open_store(f"sqlite:///{tmp_path}/notes.db")


def test_a_store_at_the_first_schema_gains_the_triage_tables_and_keeps_its_findings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/qw.db"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            cfg = migrate._config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")  # a store written before operators could triage findings
            conn.execute(
                sa.text(
                    "INSERT INTO findings VALUES ('fnd-1', 'open', '[\"key_a\"]', NULL, 'credit', 'AML.T0024.002',"
                    " 'Extract AI Model', '[]', 3, 0.6, '[]', 1.0, 2.0, 2.0, 'req-1', 5, '{}', 'harden', 1)"
                )
            )
    finally:
        engine.dispose()
    with open_store(url) as store:
        assert store.schema_revision == "0002"
        assert store.triage_finding("fnd-1", "close", "seen", by="alice") is not None
        assert store.finding("fnd-1").finding.status == "closed"  # type: ignore[union-attr]
