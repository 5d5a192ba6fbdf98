"""The ``intel`` detector: a principal or client that threat intelligence already names.

It reads a feed snapshot handed in as its ``feed`` parameter (an ``IntelMatcher`` built at
the edge from STIX bundles, TAXII collections and lists, or the inline list form a config
can hold) and looks up each interaction's principal, client address and query fingerprint
in it. The feed is data: loading it (files, HTTP) happens in ``querywarden.intel.registry``,
never here, so the detector does no I/O and reads no clock.

A match raises a signal on AML.T0040 (AI Model Inference API Access: a known-bad party is
using the model's API) at the indicator's severity, with its confidence as the score. The
risk engine folds it into the principal's risk and its findings like any other signal, so
a match shows on the principal's findings and, at ``medium`` and up, lets the policy act.
Each (principal, indicator) pair signals once per ``renotify`` seconds of interaction
time, so a listed address does not flood the findings; state is capped at
``max_principals`` principals, least recently matched evicted first.

Blind spots: an attacker on an address, key or probe no feed has seen yet; a fingerprint
only matches the exact query (after rounding or text normalisation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from querywarden.core import snapshot
from querywarden.core.atlas import API_ACCESS
from querywarden.core.detector import Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Signal
from querywarden.intel.indicators import indicator_from_dict
from querywarden.intel.matcher import IntelMatcher

Feed = IntelMatcher | Sequence[Mapping[str, Any]] | None


def _state() -> dict[str, float]:
    return {}


class IntelDetector(Detector):
    name = "intel"
    technique = API_ACCESS
    description = "principal, client address or query fingerprint named by threat intelligence"

    def __init__(
        self,
        *,
        profile: ModelProfile,
        feed: Feed = None,
        renotify: float = 86_400.0,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if renotify <= 0 or max_principals < 1:
            raise ValueError("intel: renotify > 0 and max_principals >= 1 are required")
        self.feed = feed
        self.renotify = renotify
        self.max_principals = max_principals
        self._matcher = _as_matcher(feed)
        self._seen: PrincipalStates[dict[str, float]] = PrincipalStates(_state, max_principals)

    def update(self, interaction: Interaction) -> list[Signal]:
        matcher = self._matcher
        if matcher is None:
            return []
        matches = matcher.match(interaction)
        if not matches:
            return []
        seen = self._seen.get(interaction.principal)
        out = []
        for on, value, ind in matches:
            last = seen.get(ind.ref)
            if last is not None and interaction.ts - last < self.renotify:
                continue
            seen[ind.ref] = interaction.ts
            evidence = {
                "indicator": ind.ref,
                "feed": ind.feed,
                "on": on,
                "value": value,
                "confidence": ind.confidence,
            }
            if ind.name:
                evidence["name"] = ind.name
            out.append(self.signal(interaction, score=ind.confidence, severity=ind.severity, evidence=evidence))
        return out

    def set_feed(self, feed: IntelMatcher) -> None:
        """Swap in a reloaded feed (the edge's refresher calls this); what was learned stays."""
        self.feed = feed
        self._matcher = _as_matcher(feed)

    def state_size(self) -> int:
        return len(self._seen)

    def snapshot(self) -> bytes:
        """Only what was learned (who matched what, when); the feed is config, not state."""
        return snapshot.dumps((type(self).__qualname__, {"_seen": self._seen}))


def _as_matcher(feed: Feed) -> IntelMatcher | None:
    if feed is None:
        return None
    if isinstance(feed, IntelMatcher):
        return feed if len(feed) else None
    if isinstance(feed, str | bytes) or not isinstance(feed, Sequence):
        raise ValueError("intel: feed must be a list of indicator tables, e.g. [{kind = 'network', value = '...'}]")
    indicators = []
    for i, raw in enumerate(feed):
        if not isinstance(raw, Mapping):
            raise ValueError(f"intel: feed[{i}] must be a table")
        try:
            indicators.append(indicator_from_dict(raw, feed="inline", ref=f"inline[{i}]"))
        except ValueError as exc:
            raise ValueError(f"intel: feed[{i}]: {exc}") from None
    return IntelMatcher(indicators) if indicators else None


__all__ = ["IntelDetector"]
