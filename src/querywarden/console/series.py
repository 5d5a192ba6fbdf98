"""Time series for the principal and actor pages, built from stored interactions and signals.

A person judges a principal faster from four plots than from a table of requests:
- **query volume**: interactions per time bucket;
- **output margin and target-class confidence**: inversion climbs the confidence of one
  class, boundary probing and extraction sit at small margins;
- **near-duplicate rate**: share of each bucket's queries whose input repeats an earlier
  one exactly (the stored input hash), with the near-duplicate detector's chain counts;
- **extraction-budget progress**: bits disclosed against the daily threshold and the
  share of the input space covered, from the budget ledger's signals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from querywarden.console.charts import Point
from querywarden.core.records import Signal
from querywarden.store import StoredInteraction

BUCKETS = 40


@dataclass(frozen=True, slots=True)
class PrincipalSeries:
    volume: list[Point] = field(default_factory=list)
    bucket_seconds: float = 60.0
    margin: list[Point] = field(default_factory=list)
    confidence: list[Point] = field(default_factory=list)
    repeat_rate: list[Point] = field(default_factory=list)
    neardup_hits: list[Point] = field(default_factory=list)
    budget_bits: list[Point] = field(default_factory=list)
    budget_threshold: float | None = None
    coverage: list[Point] = field(default_factory=list)
    signal_scores: dict[str, list[Point]] = field(default_factory=dict)
    answers: list[Point] = field(default_factory=list)
    """Cumulative distinct inputs answered: what the budget counts, when it raised no signal."""


def bucket_size(span: float) -> float:
    """A round bucket width giving at most ``BUCKETS`` buckets over ``span`` seconds."""
    for width in (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 6 * 3600, 86_400, 7 * 86_400):
        if span / width <= BUCKETS:
            return float(width)
    return 30 * 86_400.0


def build(interactions: Sequence[StoredInteraction], signals: Sequence[Signal]) -> PrincipalSeries:
    """Series from interactions (any order) and signals (any order)."""
    rows = sorted(interactions, key=lambda i: (i.ts, i.seq))
    sigs = sorted(signals, key=lambda s: s.ts)
    if not rows and not sigs:
        return PrincipalSeries()
    times = [i.ts for i in rows] or [s.ts for s in sigs]
    width = bucket_size(max(times) - min(times))
    counts: dict[float, int] = {}
    repeats: dict[float, int] = {}
    seen: set[str] = set()
    margin, confidence, answers = [], [], []
    distinct = 0
    for i in rows:
        b = i.ts - i.ts % width
        counts[b] = counts.get(b, 0) + 1
        if i.input_hash is not None:
            if i.input_hash in seen:
                repeats[b] = repeats.get(b, 0) + 1
            else:
                distinct += 1
                answers.append((i.ts, float(distinct)))
            seen.add(i.input_hash)
        if i.margin is not None:
            margin.append((i.ts, i.margin))
        if i.top_probability is not None:
            confidence.append((i.ts, i.top_probability))
    starts = _buckets(counts, width)
    volume = [(b + width / 2, float(counts.get(b, 0))) for b in starts]
    repeat_rate = [(b + width / 2, repeats.get(b, 0) / counts[b]) for b in starts if counts.get(b)] if seen else []

    neardup: list[Point] = []
    bits: list[Point] = []
    cover: list[Point] = []
    scores: dict[str, list[Point]] = {}
    threshold = None
    for s in sigs:
        scores.setdefault(s.detector, []).append((s.ts, s.score))
        ev = s.evidence
        if s.detector == "neardup" and isinstance(ev.get("near_duplicate_hits_total"), int | float):
            neardup.append((s.ts, float(ev["near_duplicate_hits_total"])))
        if s.detector == "budget" and isinstance(ev.get("bits_disclosed"), int | float):
            bits.append((s.ts, float(ev["bits_disclosed"])))
            if isinstance(ev.get("daily_threshold_bits"), int | float):
                threshold = float(ev["daily_threshold_bits"])
            if isinstance(ev.get("coverage_share"), int | float):
                cover.append((s.ts, float(ev["coverage_share"])))
    return PrincipalSeries(
        volume=volume,
        bucket_seconds=width,
        margin=margin,
        confidence=confidence,
        repeat_rate=repeat_rate,
        neardup_hits=neardup,
        budget_bits=bits,
        budget_threshold=threshold,
        coverage=cover,
        signal_scores=scores,
        answers=answers,
    )


def _buckets(counts: dict[float, int], width: float) -> list[float]:
    """Every bucket start from the first to the last, empty ones included, so gaps show."""
    if not counts:
        return []
    first, last = min(counts), max(counts)
    n = round((last - first) / width)
    return [first + k * width for k in range(n + 1)]
