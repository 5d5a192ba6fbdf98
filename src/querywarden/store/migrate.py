"""Bring a database to the newest schema with the Alembic scripts shipped in the package.

Runs on every open: a new file becomes a store, an old store gains new tables, and an
up-to-date one costs a single read of ``alembic_version``. A database written by a newer
QueryWarden (a revision these scripts do not know) is refused rather than guessed at.
"""

from __future__ import annotations

from importlib.resources import files

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from querywarden.errors import StoreError


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("querywarden") / "migrations"))
    return cfg


def head() -> str:
    """The newest schema revision these scripts build."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    if revision is None:
        raise StoreError("the store's migration scripts are missing")
    return revision


def current(conn: sa.Connection) -> str | None:
    """The schema revision the database is at, None for an empty database."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(conn: sa.Connection) -> str:
    """Migrate to the newest revision inside the caller's transaction; return it."""
    target = head()
    at = current(conn)
    if at == target:
        return target
    scripts = ScriptDirectory.from_config(_config())
    known = {script.revision for script in scripts.walk_revisions()}
    if at is not None and at not in known:
        raise StoreError(f"the database is at schema revision {at!r}, newer than this QueryWarden ({target!r})")
    cfg = _config()
    cfg.attributes["connection"] = conn
    try:
        command.upgrade(cfg, "head")
    except CommandError as exc:
        raise StoreError(f"cannot migrate the database: {exc}") from exc
    return target
