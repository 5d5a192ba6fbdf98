"""Line searches: a query that lies on the segment between two earlier queries.

Decision-based evasion attacks (HopSkipJump, the Boundary attack, Sign-OPT, QEBA) find the
decision boundary by bisecting between a point of another class, often a uniform random
draw far from the data, and the input they attack, and they step from the boundary back
towards that input along the line joining them. Their queries are interpolations of
earlier ones, exact up to float rounding. Extraction with random or out-of-distribution
inputs (equation solving, Knockoff) sends independent draws, and customers send records:
neither lands on the segment between two of its earlier inputs, except by a measure-zero
accident. ``ood`` uses this to tell an evasion attack's random starts from extraction.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

TOLERANCE = 1e-3
"""Distance from the segment, as a share of its length, that still counts as on it (float32
storage and an API that rounds its inputs move a point off the exact line by far less)."""

_INNER = (1e-4, 1.0 - 1e-4)
"""The point must lie strictly between the two ends: a bisection, not an extrapolation."""


def between(z: npt.NDArray[np.floating], points: npt.NDArray[np.floating], tolerance: float = TOLERANCE) -> bool:
    """True when ``z`` lies on the segment joining two of ``points`` (rows), strictly inside it."""
    n = int(points.shape[0])
    if n < 2 or z.shape[0] < 4:  # on three features or fewer, lines through points are too easy to hit
        return False
    i, j = np.triu_indices(n, 1)
    a = points[i].astype(np.float64)
    u = points[j].astype(np.float64) - a
    w = z.astype(np.float64) - a
    uu = np.einsum("ij,ij->i", u, u)
    usable = uu > 0.0
    t = np.einsum("ij,ij->i", w, u) / np.where(usable, uu, 1.0)
    off = np.einsum("ij,ij->i", w, w) - t * t * uu  # squared distance from the line
    on = usable & (t > _INNER[0]) & (t < _INNER[1]) & (off <= tolerance * tolerance * uu)
    return bool(on.any())
