"""Threat intelligence as the console and the API show it: loaded feeds, and matches.

Feeds come from the intel registry of this process (``querywarden.intel.load_registry``
on the config), when the intel package is installed and the config names feeds. Matches
come from the store: every signal of the ``intel`` detector, so a standalone console sees
the matches of every gateway writing to the store, and they survive restarts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from querywarden.core.records import Severity, Signal
from querywarden.store import Store

INTEL_DETECTOR = "intel"


@dataclass(frozen=True, slots=True)
class FeedView:
    name: str
    kind: str
    source: str
    indicators: int
    loaded_ts: float
    skipped: int


@dataclass(frozen=True, slots=True)
class MatchView:
    """One interaction whose principal, client address or query fingerprint a feed names."""

    ts: float
    principal: str
    model: str
    interaction_id: str
    indicator: str
    feed: str
    on: str
    value: str
    name: str
    severity: Severity
    confidence: float


def feeds(registry: Any) -> list[FeedView]:
    """The registry's feeds; empty when intel is not installed or the config names none."""
    if registry is None:
        return []
    return [
        FeedView(
            name=str(f.name),
            kind=str(f.kind),
            source=str(f.source),
            indicators=int(f.indicators),
            loaded_ts=float(f.loaded_ts),
            skipped=len(getattr(f, "skipped", ())),
        )
        for f in registry.feeds()
    ]


def match_of(s: Signal) -> MatchView:
    ev = s.evidence
    return MatchView(
        ts=s.ts,
        principal=s.principal,
        model=s.model,
        interaction_id=s.interaction_id,
        indicator=str(ev.get("indicator", "")),
        feed=str(ev.get("feed", "")),
        on=str(ev.get("on", "")),
        value=str(ev.get("value", "")),
        name=str(ev.get("name", "")),
        severity=s.severity,
        confidence=float(ev.get("confidence", s.score)),
    )


def matches(store: Store, *, principal: str | None = None, limit: int = 200, offset: int = 0) -> list[MatchView]:
    """Intel matches recorded in the store, newest first."""
    return [match_of(s) for s in store.signals(principal, detector=INTEL_DETECTOR, limit=limit, offset=offset)]


def per_feed(found: list[MatchView]) -> list[tuple[str, int]]:
    return Counter(m.feed for m in found).most_common()
