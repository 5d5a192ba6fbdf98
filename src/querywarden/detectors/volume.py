"""Volume: a principal sending far more queries per window than the population does.

Every principal's query count per fixed window (default one hour) is compared with the
population's distribution of completed window counts, kept as a log-scale histogram so its
cost and memory do not grow with traffic. A principal whose count in the current window
exceeds ``factor`` times the population's ``quantile`` (and at least ``min_queries``) raises
one ``low`` signal per window: excessive querying is exposure, not an attack pattern on its
own. A principal that keeps exceeding for ``sustained`` consecutive windows raises it to
``medium`` (cost harvesting, AML.T0034.000); with ``sustained_queries`` set, only windows
past that count are a sustained excess. ``querywarden calibrate`` sets ``min_queries`` to
the busiest window of any benign principal and ``sustained_queries`` to ``factor`` times
it, so a steady integration a little busier than every calibrating customer (a monitoring
feed every few seconds, for hours) stays ``low``: a heavy customer, not cost harvesting.

Once the baseline is warm, windows the detector flagged are kept out of it, so an
attacker cannot raise the bar by querying a lot.

Blind spots: a slow attacker under the population's tail; a Sybil split (handled by actor
correlation); the first hour of a brand-new deployment (``min_queries`` applies alone until
``warmup`` windows have completed).
"""

from __future__ import annotations

import math

import numpy as np

from querywarden.core.atlas import EXCESSIVE_QUERIES
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal

_BINS = 64  # log2 buckets: counts up to 2^63


class _State:
    __slots__ = ("count", "far", "far_at", "flagged_run", "limit", "peak", "signalled", "window")

    def __init__(self) -> None:
        self.window = -1
        self.count = 0
        self.peak = 0
        self.signalled = False
        self.limit = 0.0  # the threshold when this window crossed it
        self.far_at = 0.0  # the count past which this window is a sustained excess
        self.far = False
        self.flagged_run = 0  # consecutive sustained-excess windows before this one


class VolumeDetector(Detector):
    name = "volume"
    technique = EXCESSIVE_QUERIES
    description = "queries per window far above the population's tail"

    def __init__(
        self,
        *,
        profile: ModelProfile,
        window: float = 3600.0,
        quantile: float = 0.99,
        factor: float = 5.0,
        min_queries: int = 1000,
        sustained: int = 3,
        sustained_queries: int = 0,
        warmup: int = 50,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if window <= 0 or not 0 < quantile < 1 or factor <= 0 or min_queries < 1 or sustained_queries < 0:
            raise ValueError(
                "volume: window > 0, 0 < quantile < 1, factor > 0, min_queries >= 1 and sustained_queries >= 0 "
                "are required"
            )
        self.window = window
        self.quantile = quantile
        self.factor = factor
        self.min_queries = min_queries
        self.sustained = sustained
        self.sustained_queries = sustained_queries
        self.warmup = warmup
        self.max_principals = max_principals
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)
        self._hist = np.zeros(_BINS, dtype=np.int64)

    def threshold(self) -> float:
        total = int(self._hist.sum())
        if total < self.warmup:
            return float(self.min_queries)
        rank = self.quantile * total
        idx = int(np.searchsorted(np.cumsum(self._hist), rank))
        q = float(2 ** (idx + 1))  # upper edge of the bucket: conservative
        return max(float(self.min_queries), self.factor * q)

    def update(self, interaction: Interaction) -> list[Signal]:
        st = self._states.get(interaction.principal)
        w = math.floor(interaction.ts / self.window)
        if w != st.window:
            if st.window >= 0 and st.count > 0:
                st.flagged_run = st.flagged_run + 1 if st.far and w == st.window + 1 else 0
                if not st.signalled or self._hist.sum() < self.warmup:
                    # until the baseline is warm only min_queries applies, so windows over it
                    # still describe the population; after that, flagged windows stay out
                    self._hist[min(_BINS - 1, int(math.log2(st.count)))] += 1
            st.window, st.count, st.signalled, st.far = w, 0, False, False
        st.count += 1
        if st.count > st.peak:
            st.peak = st.count
        if st.far or st.count < self.min_queries:
            return []
        first = not st.signalled
        if first:
            limit = self.threshold()
            if st.count <= limit:
                return []
            st.signalled, st.limit, st.far_at = True, limit, max(limit, self.sustained_queries)
        elif st.count <= st.far_at:
            return []
        st.far = st.count > st.far_at
        sustained = st.far and st.flagged_run + 1 >= self.sustained
        if not (first or sustained):
            return []  # a sustained excess, not yet for long enough: this window's low is out
        limit = st.limit
        severity = Severity.MEDIUM if sustained else Severity.LOW
        score = min(1.0, 0.3 + 0.1 * math.log2(st.count / limit + 1) + 0.2 * st.flagged_run)
        return [
            self.signal(
                interaction,
                score=score,
                severity=severity,
                evidence={
                    "queries_in_window": st.count,
                    "window_seconds": self.window,
                    "threshold": round(limit, 1),
                    "consecutive_windows": st.flagged_run + 1,
                },
            )
        ]

    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        """``min_queries`` from each benign principal's busiest window; ``sustained_queries`` ``factor`` times it."""
        peaks = tuple(float(st.peak) for _, st in self._states.items())
        return {
            "min_queries": Calibration(values=peaks, alarm_above=True, floor=10.0),
            "sustained_queries": Calibration(
                values=tuple(self.factor * p for p in peaks), alarm_above=True, floor=self.factor * 10.0
            ),
        }
