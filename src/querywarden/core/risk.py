"""The risk engine: signals become findings with a lifecycle, and principals carry risk.

A finding is keyed by (subject, model, technique), where the subject is the principal's
actor when it has one, else the principal itself. Its severity is the highest severity
its signals reported, raised one level when two or more different detectors report the
same technique at ``medium`` or above (independent evidence agrees), capped at critical.

Lifecycle events:
- ``open``    the first signal at ``min_severity`` or above;
- ``updated`` severity rose, a new detector joined, or more principals joined the actor;
- ``closed``  no signal for ``close_after`` seconds (interaction time), found by ``sweep``.

``detected_ts``, ``trigger_id`` and ``queries_at_detection`` name the moment the finding
first reached ``medium`` (an attack pattern); for a finding that never did, its opening.

Principal risk is a time-decayed noisy-or of signal scores with half-life ``half_life``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from querywarden.core.atlas import technique as lookup_technique
from querywarden.core.records import Finding, Severity, Signal


@dataclass(slots=True)
class _Open:
    finding_id: str
    subject: str
    model: str
    technique: str
    principals: list[str]
    actor: str | None
    first_seen_ts: float
    detected_ts: float
    last_ts: float
    trigger_id: str
    queries_at_detection: int
    detector_severity: dict[str, Severity] = field(default_factory=dict)
    detector_score: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: Severity = Severity.INFO
    revision: int = 1
    action: str = "alert"

    def combined_severity(self) -> Severity:
        sev = max(self.detector_severity.values(), default=Severity.INFO)
        strong = sum(1 for s in self.detector_severity.values() if s >= Severity.MEDIUM)
        if strong >= 2:
            sev = Severity(min(Severity.CRITICAL, sev + 1))
        return sev

    def combined_score(self) -> float:
        miss = 1.0
        for s in self.detector_score.values():
            miss *= 1.0 - s
        return 1.0 - miss


class RiskEngine:
    def __init__(
        self,
        *,
        min_severity: Severity = Severity.LOW,
        close_after: float = 86_400.0,
        half_life: float = 3_600.0,
        max_open: int = 100_000,
    ) -> None:
        self.min_severity = min_severity
        self.close_after = close_after
        self.half_life = half_life
        self.max_open = max_open
        self._open: dict[tuple[str, str, str], _Open] = {}
        self._risk: dict[str, tuple[float, float]] = {}
        self._seq = 0

    # -- risk ---------------------------------------------------------------------------
    def risk(self, principal: str, now: float) -> float:
        value, ts = self._risk.get(principal, (0.0, now))
        return value * math.exp(-max(0.0, now - ts) * math.log(2) / self.half_life)

    def _add_risk(self, principal: str, score: float, now: float) -> None:
        current = self.risk(principal, now)
        self._risk[principal] = (1.0 - (1.0 - current) * (1.0 - score), now)

    # -- findings -----------------------------------------------------------------------
    def observe(
        self,
        signal: Signal,
        *,
        actor: str | None,
        principals: tuple[str, ...],
        queries: int,
    ) -> Finding | None:
        """Fold one signal in; return the finding event it causes, if any."""
        self._add_risk(signal.principal, signal.score * _SEVERITY_WEIGHT[signal.severity], signal.ts)
        subject = actor or signal.principal
        key = (subject, signal.model, signal.technique)
        f = self._open.get(key)
        if f is None and actor is not None:
            f = self._adopt_member_finding(key, principals)
        if f is None:
            if signal.severity < self.min_severity:
                return None
            if len(self._open) >= self.max_open:
                self._evict_oldest()
            self._seq += 1
            f = _Open(
                finding_id=_finding_id(subject, signal.model, signal.technique, signal.ts, self._seq),
                subject=subject,
                model=signal.model,
                technique=signal.technique,
                principals=list(principals),
                actor=actor,
                first_seen_ts=signal.ts,
                detected_ts=signal.ts,
                last_ts=signal.ts,
                trigger_id=signal.interaction_id,
                queries_at_detection=queries,
            )
            self._open[key] = f
            self._fold(f, signal)
            f.severity = f.combined_severity()
            return self._event(f, "open")
        before = (f.severity, len(f.detector_severity), len(f.principals))
        if signal.severity < self.min_severity and signal.detector not in f.detector_severity:
            f.last_ts = max(f.last_ts, signal.ts)
            return None
        self._fold(f, signal)
        for p in principals:
            if p not in f.principals:
                f.principals.append(p)
        f.actor = actor or f.actor
        f.severity = max(f.severity, f.combined_severity())
        if before[0] < Severity.MEDIUM <= f.severity:
            # an exposure finding became an attack finding: that is the detection moment
            f.detected_ts, f.trigger_id, f.queries_at_detection = signal.ts, signal.interaction_id, queries
        after = (f.severity, len(f.detector_severity), len(f.principals))
        if after != before:
            f.revision += 1
            return self._event(f, "updated")
        return None

    def set_action(self, finding_id: str, action: str) -> None:
        for f in self._open.values():
            if f.finding_id == finding_id:
                f.action = action

    def sweep(self, now: float) -> list[Finding]:
        """Close findings with no signal for ``close_after`` seconds of interaction time."""
        stale = [k for k, f in self._open.items() if now - f.last_ts >= self.close_after]
        events = []
        for key in stale:
            f = self._open.pop(key)
            f.revision += 1
            events.append(self._event(f, "closed"))
        return events

    def open_findings(self) -> list[Finding]:
        return [self._event(f, "open" if f.revision == 1 else "updated") for f in self._open.values()]

    def flagged(self, principal: str) -> bool:
        """True when the principal is part of an open finding at medium or above."""
        return any(principal in f.principals and f.severity >= Severity.MEDIUM for f in self._open.values())

    # -- internals ----------------------------------------------------------------------
    def _fold(self, f: _Open, signal: Signal) -> None:
        d = signal.detector
        if signal.severity >= f.detector_severity.get(d, Severity.INFO):
            f.detector_severity[d] = signal.severity
            f.evidence[d] = dict(signal.evidence)
        f.detector_score[d] = max(f.detector_score.get(d, 0.0), signal.score)
        f.last_ts = max(f.last_ts, signal.ts)
        if signal.principal not in f.principals:
            f.principals.append(signal.principal)

    def _adopt_member_finding(self, key: tuple[str, str, str], principals: tuple[str, ...]) -> _Open | None:
        """When principals merge into an actor, their open findings become the actor's."""
        _, model, tech = key
        adopted: _Open | None = None
        for p in principals:
            member = self._open.pop((p, model, tech), None)
            if member is None:
                continue
            if adopted is None:
                adopted = member
                adopted.subject = key[0]
            else:
                for d, s in member.detector_severity.items():
                    adopted.detector_severity[d] = max(s, adopted.detector_severity.get(d, Severity.INFO))
                for d, sc in member.detector_score.items():
                    adopted.detector_score[d] = max(sc, adopted.detector_score.get(d, 0.0))
                adopted.principals.extend(x for x in member.principals if x not in adopted.principals)
                adopted.first_seen_ts = min(adopted.first_seen_ts, member.first_seen_ts)
        if adopted is not None:
            self._open[key] = adopted
        return adopted

    def _evict_oldest(self) -> None:
        key = min(self._open, key=lambda k: self._open[k].last_ts)
        del self._open[key]

    def _event(self, f: _Open, status: str) -> Finding:
        tech = lookup_technique(f.technique)
        return Finding(
            finding_id=f.finding_id,
            status=status,
            principals=tuple(f.principals),
            actor=f.actor,
            model=f.model,
            technique=tech.to_dict(),
            owasp=tech.owasp,
            severity=f.severity,
            score=round(f.combined_score(), 4),
            detectors=tuple(sorted(f.detector_severity)),
            first_seen_ts=f.first_seen_ts,
            detected_ts=f.detected_ts,
            updated_ts=f.last_ts,
            trigger_id=f.trigger_id,
            queries_at_detection=f.queries_at_detection,
            evidence={k: dict(v) for k, v in f.evidence.items()},
            action=f.action,
            revision=f.revision,
        )


_SEVERITY_WEIGHT = {
    Severity.INFO: 0.05,
    Severity.LOW: 0.2,
    Severity.MEDIUM: 0.6,
    Severity.HIGH: 0.9,
    Severity.CRITICAL: 1.0,
}


def _finding_id(subject: str, model: str, technique: str, ts: float, seq: int) -> str:
    digest = hashlib.blake2b(f"{subject}|{model}|{technique}|{ts!r}|{seq}".encode(), digest_size=8).hexdigest()
    return f"fnd-{digest}"
