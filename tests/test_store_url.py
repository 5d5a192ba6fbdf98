"""Store URLs: what is accepted, and errors that name the URL without its password."""

from __future__ import annotations

from pathlib import Path

import pytest

from querywarden.errors import QueryWardenError, StoreError
from querywarden.store import open_store, redact
from querywarden.store.url import parse_url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("querywarden.db", "not a database URL; expected one of: sqlite:///FILE"),
        ("://nothing", "malformed database URL"),
        ("mysql://app:s3cret@db.internal/qw", "unsupported database 'mysql'"),
        ("postgresql+asyncpg://app:s3cret@db.internal/qw", "unsupported PostgreSQL driver 'asyncpg'"),
        ("postgresql+psycopg://app:s3cret@db.internal:notaport/qw", "malformed database URL"),
        ("postgresql+psycopg://app:s3cret@db.internal", "names no database"),
        ("sqlite://somehost/qw.db", "names a file, not a host"),
    ],
)
def test_malformed_or_unsupported_urls_are_store_errors(url: str, reason: str) -> None:
    with pytest.raises(StoreError, match=reason) as caught:
        open_store(url)
    assert isinstance(caught.value, QueryWardenError)
    assert "s3cret" not in str(caught.value)
    assert caught.value.source is not None and str(caught.value).startswith(caught.value.source)


def test_unreachable_postgresql_names_the_url_with_the_password_masked() -> None:
    with pytest.raises(StoreError, match=r"^postgresql\+psycopg://app:\*\*\*@127\.0\.0\.1:1/qw: .*refused") as caught:
        open_store("postgresql://app:s3cret@127.0.0.1:1/qw")
    assert "s3cret" not in str(caught.value)


def test_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(StoreError, match=f"directory {missing} does not exist"):
        open_store(f"sqlite:///{missing}/qw.db")


def test_unknown_retention_lists_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown retention 'forever'; allowed: full, sketch, none"):
        open_store(f"sqlite:///{tmp_path}/qw.db", retention="forever")


def test_postgresql_without_driver_means_psycopg() -> None:
    assert parse_url("postgresql://app@db.internal/qw").url.drivername == "postgresql+psycopg"
    assert parse_url("sqlite://").in_memory and not parse_url("sqlite:////tmp/x.db").in_memory


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql+psycopg://app:s3cret@db:5432/qw", "postgresql+psycopg://app:***@db:5432/qw"),
        ("postgresql+psycopg://app:s3cret@db:port/qw", "postgresql+psycopg://app:***@db:port/qw"),
        ("sqlite:///qw.db", "sqlite:///qw.db"),
    ],
)
def test_redact_masks_passwords_even_in_urls_that_do_not_parse(text: str, shown: str) -> None:
    assert redact(text) == shown
