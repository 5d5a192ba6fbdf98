"""Database URLs: which backends the store accepts, and how each is connected.

Two backends are supported:
- ``sqlite:///path/to/file.db`` (the default) and ``sqlite://`` for a private in-memory
  database. File databases run in WAL mode with a busy timeout, so readers never block
  the single writer nor each other.
- ``postgresql+psycopg://user:password@host:port/dbname``. ``postgresql://`` is read as
  the same thing, since psycopg 3 is the only PostgreSQL driver the project ships.

A password never appears in an error: every message names the URL with it masked.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from querywarden.errors import StoreError

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite connection waits for another process's write lock before failing."""

SUPPORTED = "sqlite:///FILE, sqlite:// (in memory), postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A validated database URL."""

    url: URL

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    @property
    def in_memory(self) -> bool:
        return self.backend == "sqlite" and self.url.database in (None, "", ":memory:")

    @property
    def redacted(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def error(self, reason: str) -> StoreError:
        return StoreError(reason, source=self.redacted)


def parse_url(text: str) -> StoreURL:
    """Validate ``text`` as a store URL or raise ``StoreError`` naming what is accepted."""
    shown = redact(text)
    if "://" not in text:
        raise StoreError(f"not a database URL; expected one of: {SUPPORTED}", source=shown)
    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(f"malformed database URL ({exc}); expected one of: {SUPPORTED}", source=shown) from None
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite":
        if driver not in ("pysqlite", "sqlite"):
            raise StoreError(f"unsupported SQLite driver {driver!r}; use sqlite:///FILE", source=shown)
        if url.host or url.username:
            raise StoreError("a SQLite URL names a file, not a host; use sqlite:///FILE", source=shown)
        return StoreURL(url.set(drivername="sqlite"))
    if backend == "postgresql":
        if driver not in ("psycopg", "psycopg2"):
            raise StoreError(f"unsupported PostgreSQL driver {driver!r}; use postgresql+psycopg://", source=shown)
        if not url.database:
            raise StoreError("the PostgreSQL URL names no database", source=shown)
        return StoreURL(url.set(drivername="postgresql+psycopg"))
    raise StoreError(f"unsupported database {backend!r}; expected one of: {SUPPORTED}", source=shown)


def redact(text: str) -> str:
    """``text`` with any password replaced by ``***``, even when it does not parse."""
    try:
        return make_url(text).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        scheme, sep, rest = text.partition("://")
        if not sep or "@" not in rest:
            return text
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in credentials else text


def create_engines(url: StoreURL) -> tuple[sa.Engine, sa.Engine]:
    """The (writer, reader) engines for ``url``.

    On a SQLite file the writer is a one-connection engine whose transactions start with
    ``BEGIN IMMEDIATE`` (take the write lock up front, so a second process waits on the
    busy timeout instead of failing half-way), while readers get a pool of ordinary
    connections. An in-memory SQLite database exists only inside one connection, so
    both roles share it. On PostgreSQL one pooled engine serves both.
    """
    if url.backend == "postgresql":
        engine = sa.create_engine(url.url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        return engine, engine
    if url.in_memory:
        engine = sa.create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        _sqlite_events(engine, begin="BEGIN IMMEDIATE", wal=False)
        return engine, engine
    writer = sa.create_engine(url.url, pool_size=1, max_overflow=0, connect_args={"check_same_thread": False})
    _sqlite_events(writer, begin="BEGIN IMMEDIATE", wal=True)
    reader = sa.create_engine(url.url, pool_size=8, max_overflow=8, connect_args={"check_same_thread": False})
    _sqlite_events(reader, begin="BEGIN", wal=True)
    return writer, reader


def _sqlite_events(engine: sa.Engine, *, begin: str, wal: bool) -> None:
    """Let SQLAlchemy, not the sqlite3 module, decide when transactions begin."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own implicit BEGIN is off
        cursor = dbapi_connection.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql(begin)
