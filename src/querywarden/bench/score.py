"""Scoring: what the engine caught, how fast, and how often it cried wolf.

The scorer watches the engine's findings as a scenario's traffic streams through it and
keeps only what the benchmark reports:

- per attacker: the first finding at ``medium`` or above that names one of the attacker's
  principals or its actor, the number of attack queries sent up to that moment, and
  whether the attacker's principals ended up in one actor;
- per benign principal: the highest severity any finding ever gave it.

Rates come with a Wilson 95% interval, because a false-positive rate of 0 out of 150
principals is not the same claim as 0 out of 5,000.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from querywarden.core.records import Finding, Severity

Z95 = 1.959963984540054
"""The two-sided 95% normal quantile."""


@dataclass(frozen=True, slots=True)
class Rate:
    """A proportion with its Wilson 95% interval."""

    hits: int
    total: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, float | int | list[float]]:
        return {
            "hits": self.hits,
            "total": self.total,
            "rate": round(self.value, 6),
            "ci95": [round(self.low, 6), round(self.high, 6)],
        }


def wilson(hits: int, total: int, z: float = Z95) -> Rate:
    """The Wilson score interval: honest at rates near 0, where the normal interval is not."""
    if total < 0 or not 0 <= hits <= max(total, 0):
        raise ValueError(f"need 0 <= hits <= total, got {hits}/{total}")
    if total == 0:
        return Rate(0, 0, 0.0, 1.0)
    p = hits / total
    z2 = z * z
    denom = 1.0 + z2 / total
    centre = (p + z2 / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / denom
    low = 0.0 if hits == 0 else max(0.0, centre - half)
    high = 1.0 if hits == total else min(1.0, centre + half)
    return Rate(hits, total, low, high)


@dataclass(frozen=True, slots=True)
class Detection:
    """The first finding at medium or above against the attacker."""

    attack_queries: int
    """Attack interactions the engine had processed when the finding was raised (all
    attacker principals together: the attacker's cost to be caught)."""
    ts: float
    technique: str
    severity: Severity
    detectors: tuple[str, ...]
    principal_queries: int
    """``queries_at_detection`` of the finding: the triggering principal's own count."""


@dataclass(slots=True)
class ScenarioWatch:
    """Follows one scenario's findings. Feed it every finding event the engine emits."""

    attackers: frozenset[str]
    benign: frozenset[str]
    detection: Detection | None = None
    benign_worst: dict[str, Severity] = field(default_factory=dict)
    benign_why: dict[str, set[str]] = field(default_factory=dict)
    """For each flagged benign principal: ``technique by detector`` of its findings."""
    attacker_findings: int = 0

    def observe(self, finding: Finding, attack_queries: int, attacker_actors: Iterable[str]) -> None:
        """Fold one finding event in. ``attack_queries`` counts attack interactions so far."""
        named = set(finding.principals)
        actors = set(attacker_actors)
        on_attacker = bool(named & self.attackers) or (finding.actor is not None and finding.actor in actors)
        if on_attacker:
            self.attacker_findings += 1
            if self.detection is None and finding.severity >= Severity.MEDIUM and finding.status != "closed":
                self.detection = Detection(
                    attack_queries=attack_queries,
                    ts=finding.detected_ts,
                    technique=finding.technique["id"],
                    severity=finding.severity,
                    detectors=finding.detectors,
                    principal_queries=finding.queries_at_detection,
                )
        for p in named & self.benign:
            worst = self.benign_worst.get(p)
            if worst is None or finding.severity > worst:
                self.benign_worst[p] = finding.severity
            why = self.benign_why.setdefault(p, set())
            why.update(f"{finding.technique['id']} by {d}" for d in finding.detectors)


def benign_rates(worst: dict[str, Severity], principals: Iterable[str]) -> dict[str, Rate]:
    """Share of benign principals with a finding at >= low, >= medium and >= high."""
    population = set(principals)
    total = len(population)
    out = {}
    for label, floor in (("low", Severity.LOW), ("medium", Severity.MEDIUM), ("high", Severity.HIGH)):
        hits = sum(1 for p, sev in worst.items() if p in population and sev >= floor)
        out[label] = wilson(hits, total)
    return out


def grouped(actor_of: dict[str, str | None]) -> tuple[bool, int]:
    """Whether every attacker principal sits in one actor, and the largest such group.

    A single principal counts as grouped (there is nothing to group).
    """
    if len(actor_of) <= 1:
        return True, len(actor_of)
    counts: dict[str, int] = {}
    for actor in actor_of.values():
        if actor is not None:
            counts[actor] = counts.get(actor, 0) + 1
    largest = max(counts.values(), default=1)
    return largest == len(actor_of), largest


def median(values: Iterable[float]) -> float | None:
    xs = sorted(values)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One attack, one variant, interleaved with one victim's scored benign traffic."""

    victim: str
    attack: str
    technique: str
    family: str
    variant: str
    budget: int
    principals: int
    detected: bool
    queries_to_detection: int | None
    share_of_budget: float | None
    seconds_to_detection: float | None
    """Attack-timeline seconds from the attack's first request to the detection."""
    detection_technique: str | None
    detection_severity: str | None
    detection_detectors: tuple[str, ...]
    technique_match: bool
    success_metric: str
    success_at_detection: float | None
    success_at_end: float
    grouped: bool
    largest_group: int
    benign_flagged_medium: int
    """Benign principals with a finding at medium or above in this scenario."""
    interactions: int
    caught_before_end: bool
    """The scenario stopped when the attacker was caught (detected, all principals in one
    actor) before its traffic ran out; from then on the policy acts on it."""
    finding_events: int
    findings_digest: str
    """A digest of every finding event (id, status, severity, principals) in order: replaying
    the scenario's traffic file must reproduce it."""
    engine_seconds: float
    traffic_file: str

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True, slots=True)
class VictimResult:
    """Benign false positives for one victim, from its scored benign traffic alone."""

    victim: str
    description: str
    calibration_principals: int
    scored_principals: int
    scored_interactions: int
    workloads: dict[str, int]
    fpr: dict[str, Rate]
    fpr_with_attacks: dict[str, Rate]
    """A benign principal counts when any scenario of this victim gave it a finding."""
    flagged: dict[str, str]
    """Benign principals with a finding: workload, worst severity, technique and detectors."""
    calibrated: bool
    thresholds: list[dict[str, object]]
    engine_seconds: float
    finding_events: int = 0
    findings_digest: str = ""
    """Replaying ``benign-scored.jsonl`` with the victim's config must reproduce these."""
    by_workload: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per workload: scored principals, and how many had a finding at ``low`` and at ``medium`` or above."""

    def to_dict(self) -> dict[str, object]:
        return {
            "victim": self.victim,
            "description": self.description,
            "calibration_principals": self.calibration_principals,
            "scored_principals": self.scored_principals,
            "scored_interactions": self.scored_interactions,
            "workloads": dict(self.workloads),
            "fpr": {k: v.to_dict() for k, v in self.fpr.items()},
            "fpr_with_attacks": {k: v.to_dict() for k, v in self.fpr_with_attacks.items()},
            "flagged": dict(self.flagged),
            "calibrated": self.calibrated,
            "thresholds": list(self.thresholds),
            "engine_seconds": round(self.engine_seconds, 3),
            "finding_events": self.finding_events,
            "findings_digest": self.findings_digest,
            "by_workload": {k: dict(v) for k, v in self.by_workload.items()},
        }


def pooled(victims: Iterable[VictimResult], field_name: str) -> dict[str, Rate]:
    """Benign FPR over every victim's scored principals together (they are distinct principals)."""
    hits: dict[str, int] = {}
    total = 0
    for v in victims:
        rates: dict[str, Rate] = getattr(v, field_name)
        total += v.scored_principals
        for k, r in rates.items():
            hits[k] = hits.get(k, 0) + r.hits
    return {k: wilson(h, total) for k, h in hits.items()}
