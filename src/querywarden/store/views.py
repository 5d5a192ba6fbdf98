"""What the store's reads return beyond the core records: small frozen views.

Findings, signals and decisions come back as the core's own ``Finding``, ``Signal`` and
``Decision``. The shapes below exist only where the store knows more (or less) than one
core record: a stored interaction may hold a sketch instead of its input, a principal
summary joins several tables, an audit entry says who changed what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from querywarden.core.records import Decision, Finding, Severity


@dataclass(frozen=True, slots=True)
class StoredInteraction:
    """An interaction as kept under the store's retention (see ``codec.Retention``)."""

    seq: int
    id: str
    ts: float
    principal: str
    model: str
    actor: str | None
    client_ip: str | None
    user_agent: str | None
    input_hash: str | None
    n_features: int | None
    l2_norm: float | None
    predicted_class: str | None
    top_probability: float | None
    margin: float | None
    prompt_length: int | None
    input: dict[str, Any] | None
    """``{"features": [...]}``, ``{"prompt": ...}`` or ``{"messages": [...]}``; ``full`` retention only."""
    output: dict[str, Any] | None
    params: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Triage:
    """What operators did to a finding (times are the wall clock of the change).

    ``reopened`` is True when the operator closed the finding and the engine raised it
    again since (a later revision): the finding is active again and the close stays on
    record.
    """

    finding_id: str
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    acknowledged_note: str | None = None
    closed_by: str | None = None
    closed_at: float | None = None
    closed_note: str | None = None
    closed_revision: int | None = None
    reopened: bool = False


@dataclass(frozen=True, slots=True)
class FindingDetail:
    """A finding's current state, every event that led to it (oldest first) and what
    operators did to it."""

    finding: Finding
    events: tuple[Finding, ...]
    triage: Triage | None = None


@dataclass(frozen=True, slots=True)
class PrincipalSummary:
    """One principal at a glance, as the console's principal list shows it.

    ``risk`` is the highest score among the principal's active (not closed) findings,
    0 when it has none.
    """

    principal: str
    queries: int
    first_seen_ts: float | None
    last_seen_ts: float | None
    models: tuple[str, ...]
    open_findings: int
    max_severity: Severity | None
    risk: float
    decision: Decision | None
    actor: str | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change of a principal's decision. ``action`` is ``clear`` when a decision was lifted."""

    seq: int
    principal: str
    action: str
    previous_action: str | None
    ts: float
    recorded_at: float
    source: str
    """``engine`` or ``operator``."""
    by: str
    note: str
    reason: str
    finding_id: str | None
    params: dict[str, Any]
    shadow: bool


@dataclass(frozen=True, slots=True)
class OperatorEvent:
    """One operator action other than a decision: ``acknowledge`` or ``close`` of a finding
    (``subject`` is its id), ``login`` or ``login_failed`` (``subject`` is the user name
    tried, ``token`` for an API token; never the password or token)."""

    seq: int
    recorded_at: float
    event: str
    by: str
    subject: str
    note: str
    client_ip: str | None


@dataclass(frozen=True, slots=True)
class ActorSummary:
    """An actor (a cluster of principals one adversary is believed to control)."""

    actor: str
    members: tuple[str, ...]
    first_linked_ts: float
    open_findings: int
    max_severity: Severity | None


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    name: str
    ts: float
    size: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts for the console's overview.

    ``findings_per_hour`` holds ``(hour_start_ts, count)`` by detection time, oldest first,
    with empty hours left out.
    """

    interactions: int
    principals: int
    signals: int
    findings: int
    interactions_per_model: dict[str, int]
    findings_per_status: dict[str, int]
    findings_per_severity: dict[str, int]
    findings_per_technique: dict[str, int]
    findings_per_hour: tuple[tuple[float, int], ...]
    decisions_per_action: dict[str, int]
