"""JSON shapes of the REST API: one function per record, the same field names as DESIGN.md.

Severities are labels (``high``), times are epoch seconds, evidence passes through as
the detector wrote it (numpy values become plain numbers).
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from querywarden.console.exposure import Exposure
from querywarden.console.intel import FeedView, MatchView
from querywarden.core.records import Decision, Finding, Signal
from querywarden.store import (
    ActorSummary,
    AuditEntry,
    OperatorEvent,
    PrincipalSummary,
    StoredInteraction,
    StoreStats,
    Triage,
)


def plain(value: Any) -> Any:
    """Evidence and params as JSON-safe builtins."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def finding(f: Finding) -> dict[str, Any]:
    return {
        "finding_id": f.finding_id,
        "status": f.status,
        "principals": list(f.principals),
        "actor": f.actor,
        "model": f.model,
        "technique": dict(f.technique),
        "owasp": list(f.owasp),
        "severity": f.severity.label,
        "score": f.score,
        "detectors": list(f.detectors),
        "first_seen_ts": f.first_seen_ts,
        "detected_ts": f.detected_ts,
        "updated_ts": f.updated_ts,
        "trigger_id": f.trigger_id,
        "queries_at_detection": f.queries_at_detection,
        "evidence": plain(f.evidence),
        "action": f.action,
        "revision": f.revision,
    }


def triaged(f: Finding, t: Triage | None) -> dict[str, Any]:
    """A finding with what operators did to it (``triage`` is null when nothing)."""
    return {**finding(f), "triage": triage(t)}


def triage(t: Triage | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "acknowledged_by": t.acknowledged_by,
        "acknowledged_at": t.acknowledged_at,
        "acknowledged_note": t.acknowledged_note,
        "closed_by": t.closed_by,
        "closed_at": t.closed_at,
        "closed_note": t.closed_note,
        "closed_revision": t.closed_revision,
        "reopened": t.reopened,
    }


def operator_event(e: OperatorEvent) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "recorded_at": e.recorded_at,
        "event": e.event,
        "by": e.by,
        "subject": e.subject,
        "note": e.note,
        "client_ip": e.client_ip,
    }


def decision(d: Decision | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "principal": d.principal,
        "action": d.action.value,
        "ts": d.ts,
        "reason": d.reason,
        "finding_id": d.finding_id,
        "actor": d.actor,
        "params": plain(d.params),
        "shadow": d.shadow,
        "source": d.source,
    }


def signal(s: Signal) -> dict[str, Any]:
    return {
        "detector": s.detector,
        "technique": s.technique,
        "principal": s.principal,
        "model": s.model,
        "interaction_id": s.interaction_id,
        "ts": s.ts,
        "score": s.score,
        "severity": s.severity.label,
        "evidence": plain(s.evidence),
        "related": list(s.related),
    }


def principal(p: PrincipalSummary) -> dict[str, Any]:
    return {
        "principal": p.principal,
        "queries": p.queries,
        "first_seen_ts": p.first_seen_ts,
        "last_seen_ts": p.last_seen_ts,
        "models": list(p.models),
        "open_findings": p.open_findings,
        "max_severity": p.max_severity.label if p.max_severity is not None else None,
        "risk": p.risk,
        "decision": decision(p.decision),
        "actor": p.actor,
    }


def actor(a: ActorSummary) -> dict[str, Any]:
    return {
        "actor": a.actor,
        "members": list(a.members),
        "first_linked_ts": a.first_linked_ts,
        "open_findings": a.open_findings,
        "max_severity": a.max_severity.label if a.max_severity is not None else None,
    }


def audit(e: AuditEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "principal": e.principal,
        "action": e.action,
        "previous_action": e.previous_action,
        "ts": e.ts,
        "recorded_at": e.recorded_at,
        "source": e.source,
        "by": e.by,
        "note": e.note,
        "reason": e.reason,
        "finding_id": e.finding_id,
        "params": plain(e.params),
        "shadow": e.shadow,
    }


def interaction(i: StoredInteraction) -> dict[str, Any]:
    return {
        "id": i.id,
        "ts": i.ts,
        "principal": i.principal,
        "model": i.model,
        "actor": i.actor,
        "client_ip": i.client_ip,
        "predicted_class": i.predicted_class,
        "top_probability": i.top_probability,
        "margin": i.margin,
        "input_hash": i.input_hash,
        "n_features": i.n_features,
        "prompt_length": i.prompt_length,
        "input": plain(i.input),
        "output": plain(i.output),
        "params": plain(i.params),
    }


def stats(s: StoreStats) -> dict[str, Any]:
    return {
        "interactions": s.interactions,
        "principals": s.principals,
        "signals": s.signals,
        "findings": s.findings,
        "interactions_per_model": s.interactions_per_model,
        "findings_per_status": s.findings_per_status,
        "findings_per_severity": s.findings_per_severity,
        "findings_per_technique": s.findings_per_technique,
        "findings_per_hour": [[ts, n] for ts, n in s.findings_per_hour],
        "decisions_per_action": s.decisions_per_action,
    }


def exposure(e: Exposure) -> dict[str, Any]:
    return {
        "model": e.model,
        "output_kind": e.output_kind,
        "classes": e.classes,
        "reveals": list(e.reveals),
        "probabilities": e.probabilities,
        "precision_decimals": e.precision_decimals,
        "logprobs": e.logprobs,
        "interactions": e.interactions,
        "calls_per_day": e.calls_per_day,
        "principals": e.principals,
        "open_findings": e.open_findings,
        "hardening": list(e.hardening),
        "decisions": e.decisions,
        "score": e.score,
        "reasons": [{"points": p, "reason": r} for p, r in e.reasons],
        "inferred": e.inferred,
    }


def feed(f: FeedView) -> dict[str, Any]:
    return {
        "name": f.name,
        "kind": f.kind,
        "source": f.source,
        "indicators": f.indicators,
        "loaded_ts": f.loaded_ts,
        "skipped": f.skipped,
    }


def intel_match(m: MatchView) -> dict[str, Any]:
    return {
        "ts": m.ts,
        "principal": m.principal,
        "model": m.model,
        "interaction_id": m.interaction_id,
        "indicator": m.indicator,
        "feed": m.feed,
        "on": m.on,
        "value": m.value,
        "name": m.name,
        "severity": m.severity.label,
        "confidence": m.confidence,
    }
