"""Logprob and logit_bias harvesting: stealing an LLM's final layer through its API.

Carlini et al. (2024) recover the embedding projection layer of production models from
the log-probabilities an API returns. Where the API gives only the top few logprobs, the
attacker adds ``logit_bias`` to a different set of tokens in each request to bring them
into the top-k, and solves for the hidden layer from thousands of such views. What the
attack cannot avoid is *many distinct bias sets*: the same bias (banning one token, a
fixed style nudge) is what applications send; a sweep changes it on every request.

Per principal, and per actor, within a window of ``window`` seconds the detector counts
distinct ``logit_bias`` sets (a set is its sorted (token, bias) pairs); when the engine
merges keys into an actor, their window's counts move into the actor's (``merge``). ``min_bias_sets``
of them (calibrated on benign traffic) raises ``medium``; ``high_bias_sets`` raises
``high``. Requests for logprobs alone are exposure: ``logprob_queries`` of them in one
window raise ``low`` (an application that reads confidences legitimately does this; a
harvester with logprobs and no bias has much less to work with).

Blind spots: a sweep spread more thinly than ``min_bias_sets`` per principal and window
over keys the engine has not linked (the actor count covers keys it has linked);
attacks on top-1 output alone (binary search on a single bias) still need distinct bias
values per request and are counted the same way.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from querywarden.core.atlas import EXTRACTION
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal
from querywarden.detectors.llm_common import is_actor, joined, level, merge_into_actor, subject_evidence, subjects


class _State:
    __slots__ = ("actor", "biased", "level", "logprobs", "peak_logprobs", "peak_sets", "sets", "tokens", "window")

    def __init__(self) -> None:
        self.actor: str | None = None
        self.window = -1
        self.sets: set[int] = set()
        self.tokens: set[str] = set()
        self.logprobs = 0
        self.biased = 0
        self.level = 0
        self.peak_sets = 0
        self.peak_logprobs = 0


def wants_logprobs(params: dict[str, Any]) -> int:
    """How many logprobs per position the request asked for (0 for none)."""
    lp = params.get("logprobs")
    top = params.get("top_logprobs")
    n = 0
    if isinstance(lp, bool):
        n = 1 if lp else 0
    elif isinstance(lp, int):
        n = max(0, lp)
    if isinstance(top, int) and not isinstance(top, bool) and top > 0:
        n = max(n, top)
    return n


def bias_key(bias: Any) -> tuple[int, tuple[str, ...]] | None:
    """A 64-bit key of a ``logit_bias`` mapping, and its tokens; None when there is none."""
    if not isinstance(bias, dict) or not bias:
        return None
    items: list[str] = []
    for token, value in bias.items():
        try:
            items.append(f"{token}={round(float(value), 2)}")
        except (TypeError, ValueError):
            items.append(f"{token}=?")
    items.sort()
    digest = hashlib.blake2b("\x1f".join(items).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little"), tuple(sorted(str(t) for t in bias))[:32]


class LogprobHarvestDetector(Detector):
    name = "llm_logprobs"
    technique = EXTRACTION
    description = "many distinct logit_bias sets with logprobs: final-layer extraction (Carlini et al. 2024)"
    needs = frozenset({"text"})

    def __init__(
        self,
        *,
        profile: ModelProfile,
        min_bias_sets: int = 16,
        high_bias_sets: int = 64,
        logprob_queries: int = 2000,
        window: float = 86_400.0,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if min(min_bias_sets, high_bias_sets, logprob_queries) < 1 or window <= 0:
            raise ValueError("llm_logprobs: thresholds must be >= 1 and window > 0")
        self.min_bias_sets = min_bias_sets
        self.high_bias_sets = high_bias_sets
        self.logprob_queries = logprob_queries
        self.window = window
        self.max_principals = max_principals
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)

    def update(self, interaction: Interaction) -> list[Signal]:
        if interaction.prompt is None and not interaction.messages:
            return []  # not a chat or completion request
        params = interaction.params
        n_lp = wants_logprobs(params) if params else 0
        bias = bias_key(params.get("logit_bias")) if params else None
        if not n_lp and bias is None:
            for key in subjects(interaction):
                self._states.get(key)  # every principal counts in calibration, quiet ones too
            return []
        w = math.floor(interaction.ts / self.window)
        high = max(self.high_bias_sets, self.min_bias_sets + 1)
        signals: list[Signal] = []
        for key in subjects(interaction):
            st = joined(self._states, key, interaction, self._pool)
            if w > st.window:
                st.window, st.logprobs, st.biased, st.level = w, 0, 0, 0
                st.sets.clear()
                st.tokens.clear()
            if n_lp:
                st.logprobs += 1
                st.peak_logprobs = max(st.peak_logprobs, st.logprobs)
            if bias is not None:
                st.biased += 1
                if len(st.sets) <= high:
                    st.sets.add(bias[0])
                if len(st.tokens) < 4096:
                    st.tokens.update(bias[1])
                st.peak_sets = max(st.peak_sets, len(st.sets))
            sev = level(len(st.sets), self.min_bias_sets, high)
            if sev is None and st.logprobs >= self.logprob_queries:
                sev = Severity.LOW
            if sev is not None and sev > st.level:
                st.level = int(sev)
                score = {Severity.LOW: 0.2, Severity.MEDIUM: 0.65, Severity.HIGH: 0.9}[sev]
                signals.append(
                    self.signal(
                        interaction,
                        score=score,
                        severity=sev,
                        evidence={
                            "distinct_bias_sets": len(st.sets),
                            "distinct_biased_tokens": len(st.tokens),
                            "requests_with_bias": st.biased,
                            "requests_with_logprobs": st.logprobs,
                            "top_logprobs": n_lp,
                            "window_seconds": self.window,
                            "threshold": self.min_bias_sets,
                            **subject_evidence(key),
                        },
                    )
                )
        return signals

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        """Pool the parts' window counts into the actor now, so it crosses on its next request."""
        merge_into_actor(self._states, actor, parts, self._pool)

    def _pool(self, into: _State, st: _State, counters: bool) -> None:
        """Add ``st``'s window (its bias sets; its counters once) to the actor's; an older window adds nothing."""
        if st.window < 0 or st.window < into.window:
            return
        if st.window > into.window:
            into.window, into.logprobs, into.biased, into.level = st.window, 0, 0, 0
            into.sets.clear()
            into.tokens.clear()
        if counters:
            into.logprobs += st.logprobs
            into.biased += st.biased
        high = max(self.high_bias_sets, self.min_bias_sets + 1)
        into.sets.update(list(st.sets)[: max(0, high + 1 - len(into.sets))])
        into.tokens.update(list(st.tokens)[: max(0, 4096 - len(into.tokens))])

    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        """Each benign principal's most distinct bias sets, and most logprob requests, in one window."""
        states = [st for key, st in self._states.items() if not is_actor(key)]
        return {
            "min_bias_sets": Calibration(values=tuple(float(s.peak_sets) for s in states), alarm_above=True, floor=4.0),
            "logprob_queries": Calibration(
                values=tuple(float(s.peak_logprobs) for s in states), alarm_above=True, floor=100.0
            ),
        }
