"""Persistence for QueryWarden: SQLite by default, PostgreSQL by URL.

``open_store(url, retention=...)`` returns a ``Store``; see ``querywarden.store.store``
for the API and docs/store.md for the tables, retention modes and operations.
"""

from __future__ import annotations

from querywarden.store.codec import Retention
from querywarden.store.store import DEFAULT_URL, Store, open_store
from querywarden.store.triage import OPERATOR_EVENTS, TRIAGE_ACTIONS, TriageRefused
from querywarden.store.url import redact
from querywarden.store.views import (
    ActorSummary,
    AuditEntry,
    FindingDetail,
    OperatorEvent,
    PrincipalSummary,
    SnapshotInfo,
    StoredInteraction,
    StoreStats,
    Triage,
)

__all__ = [
    "DEFAULT_URL",
    "OPERATOR_EVENTS",
    "TRIAGE_ACTIONS",
    "ActorSummary",
    "AuditEntry",
    "FindingDetail",
    "OperatorEvent",
    "PrincipalSummary",
    "Retention",
    "SnapshotInfo",
    "Store",
    "StoreStats",
    "StoredInteraction",
    "Triage",
    "TriageRefused",
    "open_store",
    "redact",
]
