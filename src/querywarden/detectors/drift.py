"""Drift: telling a random walk from a walk that circles one point or heads somewhere.

A monitoring feed whose readings drift for hours sends a chain of near-identical inputs, as
a boundary walk or an optimiser does. Its shape differs: a random walk's position after
``LAG`` steps is about sqrt(5) = 2.24 steps from where it was, while an evasion or
membership walk circles one point (candidates around its current point, gradient probes:
about one step away) and an optimiser or a bisection heads somewhere (up to ``LAG`` steps
away, or more as bisection steps shrink). The *spread ratio* of a step is its distance to the
input ``LAG`` before over its distance to the one just before; a chain diffuses when the
median of its last ratios lies in ``BAND``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from querywarden.core.records import Vector

LAG = 5
BAND = (1.5, 4.5)
"""Median spread ratios of a random walk, over 32 steps: 1.5-4.5 measured on drifting
readings, clipped at their ranges included; the benchmark's evasion and membership walks
measured 0.7-1.35."""
MIN_RATIOS = 16
"""Ratios needed before a chain can be judged to diffuse."""


class Spread:
    """The last ``LAG`` inputs of a chain and the spread ratios of its last steps."""

    __slots__ = ("last", "ratios")

    def __init__(self) -> None:
        self.last: deque[Vector] = deque(maxlen=LAG)
        self.ratios: deque[float] = deque(maxlen=2 * MIN_RATIOS)

    def add(self, x: Vector) -> None:
        """One more input of the chain (in any units that weigh the features alike)."""
        if not np.isfinite(x).all():
            return  # an odd input (NaN, infinity) is no step of a walk
        last = self.last
        if len(last) == LAG:
            step = float(np.linalg.norm(x - last[-1]))
            if step > 0.0:
                self.ratios.append(float(np.linalg.norm(x - last[0])) / step)
        last.append(x)

    def median(self) -> float:
        return float(np.median(np.fromiter(self.ratios, dtype=np.float64))) if self.ratios else 0.0

    def diffusing(self) -> bool:
        """True when enough steps are known and their median spread ratio is a random walk's."""
        return len(self.ratios) >= MIN_RATIOS and BAND[0] <= self.median() <= BAND[1]
