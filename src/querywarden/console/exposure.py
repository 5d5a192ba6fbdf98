"""The exposure inventory: what each protected model's API gives away, and how much.

Extraction and inversion feed on what an answer reveals. A full probability vector at
six decimals teaches a copy far more than a label; logprobs do the same for an LLM. This
module reads the model's profile and a recent sample of its stored interactions and turns
them into a score from 0 to 100 with the reasons that add up to it, so a person can see
why one model is more exposed than another and what would bring the number down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from querywarden.core.policy import Policy
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Action
from querywarden.store import PrincipalSummary, Store, StoredInteraction

SAMPLE = 500
"""Recent interactions read per model to see what its answers reveal."""
OUTPUT_POINTS = {"probabilities": 30, "scores": 35, "logprobs": 35, "text": 10, "label": 5}


@dataclass(frozen=True, slots=True)
class Exposure:
    model: str
    output_kind: str
    classes: int | None
    probabilities: bool
    precision_decimals: int | None
    logprobs: bool
    interactions: int
    calls_per_day: float
    principals: int
    open_findings: int
    hardening: tuple[str, ...]
    decisions: dict[str, int]
    score: int
    reasons: tuple[tuple[int, str], ...]
    inferred: bool
    reveals: tuple[str, ...] = field(default=())


def decimals_of(value: float) -> int:
    """How many decimals a probability was given with (16 means unrounded float64)."""
    exponent = Decimal(repr(float(value))).as_tuple().exponent
    return min(16, max(0, -exponent)) if isinstance(exponent, int) else 16


def _asks_logprobs(params: Mapping[str, Any] | None, output: Mapping[str, Any] | None) -> bool:
    if params and (params.get("logprobs") or params.get("top_logprobs")):
        return True
    return bool(output and output.get("logprobs"))


def assess(
    profile: ModelProfile,
    sample: Iterable[StoredInteraction],
    *,
    interactions: int,
    span_seconds: float,
    principals: Iterable[PrincipalSummary],
    open_findings: int,
    policy: Policy,
) -> Exposure:
    """Score one model from its profile, a sample of its traffic and the current decisions."""
    rows = list(sample)
    tops = [r.top_probability for r in rows if r.top_probability is not None]
    decimals = max((decimals_of(t) for t in tops), default=None)
    logprobs = profile.output_kind == "logprobs" or any(_asks_logprobs(r.params, r.output) for r in rows)
    probabilities = bool(tops) or profile.output_kind in ("probabilities", "scores")
    days = max(span_seconds / 86_400.0, 1.0)
    decisions: dict[str, int] = {}
    seen = 0
    for p in principals:
        if profile.id not in p.models:
            continue
        seen += 1
        if p.decision is not None and not p.decision.shadow and p.decision.action is not Action.ALLOW:
            decisions[p.decision.action.value] = decisions.get(p.decision.action.value, 0) + 1
    hardening = tuple(_rule_text(r.min_severity.label, r.action.value, r.params, r.shadow) for r in policy.rules)

    reasons: list[tuple[int, str]] = []
    kind = "probabilities" if tops and profile.output_kind == "label" else profile.output_kind
    reasons.append((OUTPUT_POINTS.get(kind, 10), f"answers carry {kind}"))
    reveals = [_reveal_text(kind, profile.n_classes)]
    if probabilities and decimals is not None:
        reveals.append("unrounded floats" if decimals >= 16 else f"{decimals} decimals")
        if decimals >= 4:
            reasons.append(
                (15, "probabilities unrounded" if decimals >= 16 else f"probabilities given to {decimals} decimals")
            )
        elif decimals >= 2:
            reasons.append((8, f"probabilities rounded to {decimals} decimals"))
    if probabilities and (profile.n_classes or 0) > 2:
        reasons.append((5, f"{profile.n_classes} classes per answer"))
    if logprobs:
        reveals.append("logprobs")
        reasons.append((20, "callers receive logprobs"))
    enforcing = [r for r in policy.rules if not r.shadow and r.action in (Action.HARDEN, Action.BLOCK)]
    if not enforcing:
        reasons.append((15, "the policy neither hardens nor blocks on findings"))
    if open_findings:
        reasons.append((min(20, 10 * open_findings), f"{open_findings} active finding(s) on this model"))
    rate = interactions / days
    if rate > 10_000:
        reasons.append((5, f"{rate:,.0f} calls per day"))
    score = min(100, sum(points for points, _ in reasons))
    return Exposure(
        model=profile.id,
        output_kind=profile.output_kind,
        classes=profile.n_classes,
        probabilities=probabilities,
        precision_decimals=decimals,
        logprobs=logprobs,
        interactions=interactions,
        calls_per_day=round(rate, 1),
        principals=seen,
        open_findings=open_findings,
        hardening=hardening,
        decisions=decisions,
        score=score,
        reasons=tuple(sorted(reasons, key=lambda r: -r[0])),
        inferred=profile.inferred,
        reveals=tuple(reveals),
    )


def _reveal_text(kind: str, classes: int | None) -> str:
    if kind in ("probabilities", "scores"):
        what = "full probability vectors" if kind == "probabilities" else "raw scores (logits)"
        return f"{what} over {classes} classes" if classes else what
    return {"label": "the label only", "text": "generated text", "logprobs": "token logprobs"}.get(kind, kind)


def _rule_text(severity: str, action: str, params: Mapping[str, Any], shadow: bool) -> str:
    detail = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    text = f"{severity} and up -> {action}" + (f" ({detail})" if detail else "")
    return text + (" [shadow]" if shadow else "")


def inventory(store: Store, profiles: Mapping[str, ModelProfile], policy: Policy) -> list[Exposure]:
    """Every model the config or the traffic names, most exposed first."""
    stats = store.stats()
    models = dict(profiles)
    for name in stats.interactions_per_model:
        models.setdefault(name, ModelProfile(id=name, inferred=True))
    principals = store.principals(order_by="risk", limit=1000)
    out = []
    for name, profile in models.items():
        newest = store.interactions(model=name, limit=SAMPLE)
        oldest = store.interactions(model=name, limit=1, newest_first=False)
        span = newest[0].ts - oldest[0].ts if newest and oldest else 0.0
        out.append(
            assess(
                profile,
                newest,
                interactions=stats.interactions_per_model.get(name, 0),
                span_seconds=span if math.isfinite(span) else 0.0,
                principals=principals,
                open_findings=store.count_findings(status="active", model=name, severity_at_least="medium"),
                policy=policy,
            )
        )
    return sorted(out, key=lambda e: (-e.score, e.model))
