"""Persistence for QueryWarden: SQLite by default, PostgreSQL by URL.

``open_store(url, retention=...)`` returns a ``Store``; see ``querywarden.store.store``
for the API and docs/store.md for the tables, retention modes and operations.
"""

from __future__ import annotations

from querywarden.store.codec import Retention
from querywarden.store.store import DEFAULT_URL, Store, open_store
from querywarden.store.url import redact
from querywarden.store.views import (
    ActorSummary,
    AuditEntry,
    FindingDetail,
    PrincipalSummary,
    SnapshotInfo,
    StoredInteraction,
    StoreStats,
)

__all__ = [
    "DEFAULT_URL",
    "ActorSummary",
    "AuditEntry",
    "FindingDetail",
    "PrincipalSummary",
    "Retention",
    "SnapshotInfo",
    "Store",
    "StoreStats",
    "StoredInteraction",
    "open_store",
    "redact",
]
