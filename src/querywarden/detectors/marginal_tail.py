"""Marginal tails: how many of a query's features lie well beyond every benign value.

Equation solving and other box-filling extraction draw each feature uniformly over the
range the API documents. On a skewed feature most of that range holds almost no benign
data (proline runs to 1,680 on wine while most records sit under 1,000), so a uniform draw
lands past the reference's extremes on several features at once. A natural record, or a
synthetic record whose every column is drawn from natural values, sits past the reference's
extremes on a feature only about as often as a new draw exceeds the extremes of the sample
(about ``2 / (n + 1)`` per feature for ``n`` reference rows), and then only just.

Per feature, the benign interval is the reference's span widened by ``margin`` times that
span on either side. A query's *tail count* is the number of features outside their
interval. The per-feature rate is the leave-one-out share of reference cells outside the
interval of the other rows, pooled over every row and feature (more cells than rows, so it
is steady on a reference of 18 rows, where the 0.99 quantile of any per-row statistic is
its largest value). A query is *far* when its tail count reaches ``min_count``: the
smallest count, and at least two, whose binomial tail under that rate is at most ``alpha``. Features of one
record move together (radius, perimeter and area), so benign records reach it more often
than the binomial says; ``expected_rate`` is the larger of that tail and the leave-one-out
share of reference rows that reach it.

Works in raw feature units, before any projection: a random projection of a wide input
mixes features, and a tail of one feature no longer stands out.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from querywarden.detectors.small_arrays import count_nonzero
from querywarden.errors import DetectorError

Matrix = npt.NDArray[np.float64]
Vector = npt.NDArray[np.float64]

_MIN_COUNT = 2
"""One feature past its interval is what one unusual record, or a what-if edit of one field,
sends; box-filling draws are past it on several features at once."""


def binomial_tail(count: int, trials: int, rate: float) -> float:
    """P(X >= count) for X ~ Binomial(trials, rate)."""
    if count <= 0:
        return 1.0
    if count > trials:
        return 0.0
    if rate <= 0.0:
        return 0.0
    if rate >= 1.0:
        return 1.0
    return min(
        1.0,
        sum(math.comb(trials, j) * rate**j * (1.0 - rate) ** (trials - j) for j in range(count, trials + 1)),
    )


class MarginalTail:
    """Per-feature benign intervals from a reference sample, and the tail count of a query."""

    __slots__ = ("expected_rate", "feature_rate", "high", "low", "min_count")

    def __init__(self, *, low: Vector, high: Vector, min_count: int, feature_rate: float, expected_rate: float) -> None:
        self.low = low
        self.high = high
        self.min_count = min_count
        self.feature_rate = feature_rate
        self.expected_rate = expected_rate

    @classmethod
    def build(cls, rows: Matrix, *, margin: float = 0.05, alpha: float = 0.01) -> MarginalTail | None:
        """Fit on benign ``rows`` (raw features); None when no count is rare enough.

        Needs at least 8 rows and 2 features. With a per-feature rate so high, or so few
        features, that even every feature outside its interval is not rarer than ``alpha``,
        the test cannot tell and is off.
        """
        if margin < 0 or not 0 < alpha < 1:
            raise DetectorError("marginal tail: margin >= 0 and 0 < alpha < 1 are required")
        rows = np.asarray(rows, dtype=np.float64)
        n, d = rows.shape
        if n < 8 or d < 2:
            return None
        loo = _leave_one_out_counts(rows, margin)
        rate = max(float(loo.sum()) / (n * d), 0.5 / (n * d))
        min_count = next((c for c in range(_MIN_COUNT, d + 1) if binomial_tail(c, d, rate) <= alpha), None)
        if min_count is None:
            return None
        expected = max(binomial_tail(min_count, d, rate), float(np.mean(loo >= min_count)))
        lo, hi = rows.min(axis=0), rows.max(axis=0)
        widen = margin * (hi - lo)
        return cls(low=lo - widen, high=hi + widen, min_count=min_count, feature_rate=rate, expected_rate=expected)

    def count(self, features: Vector) -> int:
        """How many of ``features`` lie outside their benign interval."""
        return count_nonzero(features < self.low) + count_nonzero(features > self.high)

    def far(self, features: Vector | None) -> bool:
        """True when the query's tail count reaches ``min_count`` (False for a missing or misshapen one)."""
        if features is None or features.shape != self.low.shape:
            return False
        return self.count(features) >= self.min_count


def _leave_one_out_counts(rows: Matrix, margin: float) -> npt.NDArray[np.int64]:
    """Each row's tail count against the interval of the other rows.

    Only a row holding a feature's minimum or maximum changes that feature's interval when
    left out; the others see the full span. So the span without row ``i`` is the second
    smallest or largest value where ``i`` holds the extreme, the full span elsewhere."""
    n = rows.shape[0]
    order = np.sort(rows, axis=0)
    lo1, lo2, hi1, hi2 = order[0], order[1], order[-1], order[-2]
    argmin, argmax = rows.argmin(axis=0), rows.argmax(axis=0)
    idx = np.arange(n)[:, None]
    lo = np.where(idx == argmin[None, :], lo2[None, :], lo1[None, :])
    hi = np.where(idx == argmax[None, :], hi2[None, :], hi1[None, :])
    widen = margin * (hi - lo)
    outside = (rows < lo - widen) | (rows > hi + widen)
    return np.asarray(outside.sum(axis=1), dtype=np.int64)
