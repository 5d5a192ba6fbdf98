"""Out-of-distribution inputs: a principal whose queries keep landing far from benign data.

Extraction with out-of-distribution data (KnockoffNets or CopycatCNN fed another dataset,
equation solving with uniform noise, data-free synthetic inputs) needs many distinct inputs
the model was never meant to see. Each query's distance to the benign reference (k-th
nearest neighbour after the ``KnnReference`` projection) is compared with a per-query
threshold set from the reference itself (its ``quantile`` of leave-one-out distances), so a
benign query is out of distribution with a known small probability ``p``. Per principal,
the out-of-distribution share over the last ``window`` queries is tested against ``p`` with
a binomial tail: the surprise is ``-log10 P(X >= count)``. A handful of odd queries in a
short history does not fire; a steady stream does.

Only new out-of-distribution inputs count: one that sits near an out-of-distribution input
the principal sent recently (within ``novelty_fraction`` of the benign nearest-neighbour
spacing) is a variant, e.g.
an edited copy of the same unusual photo, and is skipped. Extraction cannot avoid sending
many distinct inputs; a benign app editing one picture sends few.

Without a reference sample in the profile, the detector first gathers one from live
traffic (``warmup`` queries, at most ``warmup_per_principal`` from any principal) and stays
silent until it has. Whoever queries during that warm-up shapes "benign"; the cap and k > 1
limit what one caller can plant, but a Sybil attacker present from the first minute can
still poison it. Declare a reference sample wherever one exists.

Windows are kept per principal, or per actor once the engine has clustered the principal
into one (``Interaction.actor``), so the keys of one Sybil attacker share a window; at the
merge each key's window moves to the actor's (``merge``).

Severities: ``medium`` when the surprise reaches ``surprise`` and the share reaches
``min_share`` after at least ``min_queries`` queries; ``high`` when a full window holds at
least twice ``min_share``. Signals are emitted when the level rises.

Blind spots: natural in-distribution extraction data (by design, the extraction budget
ledger's job); an attacker who mixes each synthetic input with many natural ones, keeping
the share under ``min_share``; a reference sample that misses a benign sub-population
(customers from that population look out of distribution: calibrate on benign traffic).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from querywarden.core.atlas import EXTRACTION
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal
from querywarden.detectors.event_window import fold_events, push_event, share_calibration
from querywarden.detectors.reference import (
    KnnReference,
    QuerySpace,
    Reservoir,
    binomial_surprise,
    reference_rows,
    spacing,
)
from querywarden.errors import DetectorError

_FLOORS = (6.0, 0.25)
"""The shipped ``surprise`` and ``min_share``: calibration never sets laxer ones."""


class _State:
    __slots__ = ("count", "flags", "level", "n", "novel", "novel_n", "pos", "worst_share", "worst_surprise")

    def __init__(self) -> None:
        self.flags: npt.NDArray[np.uint8] | None = None
        self.pos = 0
        self.n = 0
        self.count = 0
        self.novel: npt.NDArray[np.float64] | None = None
        self.novel_n = 0
        self.level = Severity.INFO
        self.worst_surprise = 0.0
        self.worst_share = 0.0


class OodDetector(Detector):
    name = "ood"
    technique = EXTRACTION
    description = "share of a principal's distinct inputs far from the benign reference sample"
    needs = frozenset({"features"})

    def __init__(
        self,
        *,
        profile: ModelProfile,
        surprise: float = 6.0,
        min_share: float = 0.25,
        min_queries: int = 20,
        window: int = 128,
        quantile: float = 0.99,
        k: int = 3,
        novelty_fraction: float = 0.5,
        novelty_memory: int = 16,
        warmup: int = 1000,
        warmup_per_principal: int = 50,
        max_dims: int = 64,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if surprise <= 0 or not 0 < min_share <= 1 or not 0 < quantile < 1:
            raise DetectorError("ood: surprise > 0, 0 < min_share <= 1 and 0 < quantile < 1 are required")
        if min_queries < 1 or window < min_queries or k < 1 or novelty_memory < 1:
            raise DetectorError("ood: min_queries >= 1, window >= min_queries, k >= 1 and novelty_memory >= 1")
        if warmup < 2 * k + 2 or warmup_per_principal < 1:
            raise DetectorError("ood: warmup must be at least 2k + 2 and warmup_per_principal must be >= 1")
        self.surprise = surprise
        self.min_share = min_share
        self.min_queries = min_queries
        self.window = window
        self.quantile = quantile
        self.k = k
        self.novelty_fraction = novelty_fraction
        self.novelty_memory = novelty_memory
        self.warmup = warmup
        self.warmup_per_principal = warmup_per_principal
        self.max_dims = max_dims
        self.max_principals = max_principals
        self._space = QuerySpace.from_profile(profile, max_dims=max_dims)
        self._reference: KnnReference | None = None
        self._reservoir: Reservoir | None = None
        rows = reference_rows(profile, self._space) if self._space is not None else None
        self._novelty_radius = novelty_fraction * spacing(rows, self._space.out_dim if self._space else 1)
        if rows is not None and rows.shape[0] >= 2 * k + 2:
            self._reference = KnnReference.build(rows, k=k, quantile=quantile)
        elif self._space is not None:
            self._reservoir = Reservoir(capacity=warmup, per_principal=warmup_per_principal)
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)

    @property
    def reference(self) -> KnnReference | None:
        """The benign reference in use (None while warming up from traffic)."""
        return self._reference

    def update(self, interaction: Interaction) -> list[Signal]:
        space = self._space
        if space is None:
            return []
        z = space.transform_of(interaction)
        if z is None:
            return []
        ref = self._reference
        if ref is None:
            self._warm(interaction.principal, z)
            return []
        st = self._states.get(interaction.actor or interaction.principal)
        e = ref.embed(z)
        if ref.within(e, ref.threshold):
            push_event(st, 0, self.window)
            return []
        dist = ref.distance(e)
        if not self._novel(st, z):
            return []
        push_event(st, 1, self.window)
        if st.n < self.min_queries:
            return []
        share = st.count / st.n
        surprise = binomial_surprise(st.count, st.n, ref.expected_rate)
        st.worst_share = max(st.worst_share, share)
        st.worst_surprise = max(st.worst_surprise, surprise)
        if surprise < self.surprise or share < self.min_share:
            return []
        full = st.n >= self.window
        level = Severity.HIGH if full and share >= min(1.0, 2 * self.min_share) else Severity.MEDIUM
        if level <= st.level:
            return []
        st.level = level
        score = min(1.0, 0.5 + 0.5 * share * min(1.0, surprise / (4 * self.surprise)))
        return [
            self.signal(
                interaction,
                score=score,
                severity=level,
                evidence={
                    "ood_queries": st.count,
                    "window_queries": st.n,
                    "ood_share": round(share, 4),
                    "expected_share": round(ref.expected_rate, 4),
                    "surprise": round(surprise, 2),
                    "distance": round(dist, 4),
                    "threshold": round(ref.threshold, 4),
                },
            )
        ]

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        self._states.fold(actor, parts, self._fold)

    def _fold(self, into: _State, other: _State) -> None:
        """Add another principal's window and recent out-of-distribution inputs to an actor's."""
        fold_events(into, other, self.window)
        if other.novel is not None:
            filled = min(other.novel_n, self.novelty_memory)
            for z in other.novel[:filled]:
                if into.novel is None:
                    into.novel = np.zeros_like(other.novel)
                into.novel[into.novel_n % self.novelty_memory] = z
                into.novel_n += 1
        into.level = max(into.level, other.level)

    def _novel(self, st: _State, z: npt.NDArray[np.float64]) -> bool:
        """Remember ``z``; True unless it is a variant of a recent out-of-distribution input.

        Compared in the full feature space: the reference embedding folds everything off the
        benign subspace into one coordinate, where two different noise inputs look alike."""
        mem = st.novel
        if mem is None:
            mem = st.novel = np.zeros((self.novelty_memory, z.shape[0]), dtype=np.float64)
        filled = min(st.novel_n, self.novelty_memory)
        if filled:
            diff = mem[:filled] - z
            nearest = math.sqrt(float(np.einsum("ij,ij->i", diff, diff).min()))
            if nearest <= self._novelty_radius:
                return False
        mem[st.novel_n % self.novelty_memory] = z
        st.novel_n += 1
        return True

    def _warm(self, principal: str, z: npt.NDArray[np.float64]) -> None:
        res = self._reservoir
        if res is None:
            return
        res.offer(principal, z)
        if len(res) >= self.warmup:
            rows = res.rows()
            self._reference = KnnReference.build(rows, k=self.k, quantile=self.quantile, trim=True)
            self._novelty_radius = self.novelty_fraction * spacing(rows, rows.shape[1])
            res.release()
            self._reservoir = None

    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        return share_calibration((st for _, st in self._states.items()), self.min_queries, _FLOORS)
