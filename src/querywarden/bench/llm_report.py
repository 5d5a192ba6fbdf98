"""The LLM benchmark's results: per scenario, per canary, and as a Markdown report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from querywarden.bench.score import wilson
from querywarden.llm.assistant import MODEL_ID


@dataclass(slots=True)
class CanaryOutcome:
    customer_id: str
    first_leak_unprotected: int | None
    """1-based index of the attack request whose answer first exposed the canary, with no QueryWarden."""
    leaked_before_detection: bool
    """Whether it leaked (with no QueryWarden) before the request that raised the first medium finding."""
    leaked_protected: bool
    """Whether the attacker still saw it with QueryWarden in front, enforcement included."""


@dataclass(slots=True)
class LlmScenarioResult:
    attack: str
    policy: str
    technique: str
    description: str
    principals: int
    budget: int
    detected: bool
    queries_to_detection: int | None
    share_of_budget: float | None
    seconds_to_detection: float | None
    detection_technique: str | None
    detection_severity: str | None
    detection_detectors: tuple[str, ...]
    technique_match: bool
    grouped: bool
    """Whether the engine put all the attacker's keys in one actor (trivially true for one key)."""
    largest_group: int
    success_metric: str
    success_unprotected: float
    success_at_detection: float | None
    success_protected: float
    refused: int
    hardened: int
    canaries: list[CanaryOutcome]
    benign_flagged_medium: int
    benign_refused: int
    finding_events: int
    engine_seconds: float
    traffic_file: str

    @property
    def canaries_leaked_unprotected(self) -> int:
        return sum(1 for c in self.canaries if c.first_leak_unprotected is not None)

    @property
    def canaries_leaked_before_detection(self) -> int:
        return sum(1 for c in self.canaries if c.leaked_before_detection)

    @property
    def canaries_leaked_protected(self) -> int:
        return sum(1 for c in self.canaries if c.leaked_protected)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["canaries_leaked_unprotected"] = self.canaries_leaked_unprotected
        d["canaries_leaked_before_detection"] = self.canaries_leaked_before_detection
        d["canaries_leaked_protected"] = self.canaries_leaked_protected
        return d


@dataclass(slots=True)
class LlmResults:
    profile: str
    seed: int
    detectors: list[str]
    benign_principals: int = 0
    benign_requests: int = 0
    workloads: dict[str, int] = field(default_factory=dict)
    fpr: dict[str, dict[str, Any]] = field(default_factory=dict)
    benign_flagged: dict[str, str] = field(default_factory=dict)
    scenarios: list[LlmScenarioResult] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "seed": self.seed,
            "model": "word n-gram, order 10, Witten-Bell backoff (querywarden.llm.model)",
            "detectors": self.detectors,
            "benign_principals": self.benign_principals,
            "benign_requests": self.benign_requests,
            "workloads": self.workloads,
            "benign_fpr": self.fpr,
            "benign_flagged": self.benign_flagged,
            "scenarios": [s.to_dict() for s in self.scenarios],
            "seconds": round(self.seconds, 1),
        }


def markdown(results: LlmResults) -> str:
    """The LLM benchmark as a Markdown table, one row per attack."""
    lines = [
        f"# LLM benchmark ({results.profile} profile, seed {results.seed})",
        "",
        f"Assistant: {MODEL_ID}, a word n-gram model (order 10) trained at run time on a synthetic corpus "
        "with planted canaries. Detectors: " + ", ".join(results.detectors) + ".",
        "",
        "| attack | policy | technique | keys | requests | detected after | by | success (no QW) | at detection "
        "| with QW | canaries leaked (no QW → before detection → with QW) | refused | hardened |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in results.scenarios:
        det = f"{s.queries_to_detection} ({s.detection_severity})" if s.detected else "not detected"
        by = f"{s.detection_technique} ({', '.join(s.detection_detectors)})" if s.detected else "-"
        at = "-" if s.success_at_detection is None else f"{s.success_at_detection:.2f}"
        lines.append(
            f"| {s.attack} | {s.policy} | {s.technique} | {s.principals} | {s.budget} | {det} | {by} | "
            f"{s.success_metric} {s.success_unprotected:.2f} | {at} | {s.success_protected:.2f} | "
            f"{s.canaries_leaked_unprotected} → {s.canaries_leaked_before_detection} → {s.canaries_leaked_protected} "
            f"| {s.refused} | {s.hardened} |"
        )
    detected = [s for s in results.scenarios if s.policy == "default"]
    rate = wilson(sum(1 for s in detected if s.detected and s.technique_match), len(detected))
    lines += [
        "",
        f"Detected with the right technique: {rate.hits}/{rate.total} attacks (95% CI {rate.low:.2f}-{rate.high:.2f}).",
    ]
    fpr = results.fpr
    lines += [
        "",
        "## Benign chat users",
        "",
        f"{results.benign_principals} scored principals ({_mix(results.workloads)}), "
        f"{results.benign_requests} requests.",
        "",
        "| flagged at | principals | rate | 95% CI |",
        "|---|---|---|---|",
    ]
    for level in ("low", "medium", "high"):
        r = fpr.get(level)
        if r:
            lines.append(
                f"| ≥ {level} | {r['hits']}/{r['total']} | {r['rate']:.3f} | {r['ci95'][0]:.3f}-{r['ci95'][1]:.3f} |"
            )
    for q, why in results.benign_flagged.items():
        lines.append(f"- {q}: {why}")
    lines.append("")
    lines.append(f"Run time: {results.seconds:.1f} s.")
    return "\n".join(lines) + "\n"


def _mix(workloads: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(workloads.items()))


def write_llm_results(results: LlmResults, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.json", "table": out / "results.md"}
    paths["results"].write_bytes(msgspec.json.format(msgspec.json.encode(results.to_dict()), indent=2))
    paths["table"].write_text(markdown(results), encoding="utf-8")
    return paths
