"""Sign steps: the per-query trace of Jacobian-based dataset augmentation.

Papernot et al.'s augmentation sends, for points it already sent, ``x + lambda *
sign(gradient)`` (clipped at the input box): a query that differs from an earlier one by the
same amount in nearly every feature it changes, in both directions. "The same amount" is in
the attacker's units: a share of each feature's range (inputs normalised to the box) or the
API's raw units; both are tried. Steps in standard deviations the attacker estimated from
its own records are not recognised: its estimate and the reference's differ by more than
the tolerance (a few percent on a few hundred rows). Benign edits do not look like that: a
what-if user changes a field or two, a brightness edit moves every pixel the same way, a
posterised or re-encoded copy of a photo moves pixels by whole steps of the value grid, by
varying amounts.

Pure numpy; ``prada`` holds the state and does the counting.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from querywarden.detectors.small_arrays import count_nonzero

_F32 = npt.NDArray[np.float32]

UNIT_NAMES = ("range", "raw")
ZERO = 1e-6
"""Changes smaller than this (in range units) are no change: float32 storage noise."""
CHANGED = 0.25
"""A sign step changes at least this share of the features."""
EQUAL = 0.9
"""Of the changed features strictly inside the box, at least this share change by the largest amount."""
TOLERANCE = 0.02
"""Relative tolerance of "the same amount" (an attacker rounding its inputs stays within it)."""
MINORITY = 0.1
"""At least this share of the equal changes go each way."""
_TOP = (1.0 - TOLERANCE) / (1.0 + TOLERANCE)


class StepUnits:
    """The candidate units of a step, as factors from range units (one row per unit kept).

    Units that are proportional to an earlier one (every feature with the same range, so raw
    units are range units) are dropped: the test would only repeat itself."""

    __slots__ = ("factors", "names")

    def __init__(self, width: npt.NDArray[np.float64]) -> None:
        candidates = (np.ones_like(width), width)
        kept: list[npt.NDArray[np.float64]] = []
        names: list[str] = []
        for name, factor in zip(UNIT_NAMES, candidates, strict=True):
            top = float(factor.max())
            if top <= 0:
                continue
            norm = factor / top
            if any(np.allclose(norm, k, rtol=1e-9, atol=1e-12) for k in kept):
                continue
            kept.append(norm)
            names.append(name)
        self.factors: _F32 = np.ascontiguousarray(np.vstack(kept), dtype=np.float32)
        self.names = tuple(names)


def sign_step(query: _F32, step: _F32, quantum: float, units: StepUnits) -> tuple[float, str] | None:
    """``(size, unit)`` when ``query`` (range units) is a sign step ``step`` away from an earlier
    query, else None; ``size`` is the median change of the equal features in range units.

    The step changes at least ``CHANGED`` of the features; of those it leaves strictly inside
    the box, at least ``EQUAL`` change by the largest amount in one of the ``units`` (within
    ``TOLERANCE``), at least ``MINORITY`` of them each way; features left on the box's edge
    were clipped and change less, never more. Equal changes of one ``quantum`` of the data's
    own value grid are re-encoding noise on integer pixels, not a step."""
    mag_z = np.abs(step)
    for k, factor in enumerate(units.factors):
        mag = mag_z if k == 0 else mag_z * factor  # the first unit is the range itself
        top = float(np.maximum.reduce(mag))
        # the cheap common exit: a natural neighbour's largest change is nearly always alone
        if top <= ZERO or count_nonzero(mag >= _TOP * top) < 3:
            continue
        found = _equal_step(query, step, mag_z, mag, top, quantum)
        if found is not None:
            return found, units.names[k]
    return None


def _equal_step(query: _F32, step: _F32, mag_z: _F32, mag: _F32, top: float, quantum: float) -> float | None:
    """The median range-unit change of the equal features, when ``mag`` (the step's size per
    feature in one unit) makes ``step`` a sign step (see ``sign_step``)."""
    changed = mag_z > ZERO
    if int(np.count_nonzero(changed)) < max(3, CHANGED * step.shape[0]):
        return None
    inside = changed & (query > ZERO) & (query < 1.0 - ZERO)
    n_inside = int(np.count_nonzero(inside))
    if n_inside < 3:
        return None
    size = float(mag[inside].max())
    if top > (1.0 + TOLERANCE) * size:
        return None  # a feature moved more than the common step
    equal = inside & (mag >= (1.0 - TOLERANCE) * size)
    n_equal = int(np.count_nonzero(equal))
    if n_equal < EQUAL * n_inside:
        return None
    up = int(np.count_nonzero(step[equal] > 0))
    if min(up, n_equal - up) < MINORITY * n_equal:
        return None  # every feature the same way: a brightness edit
    moved = mag_z[equal]
    if quantum > 0 and bool(np.all(np.abs(moved - quantum) <= TOLERANCE * quantum)):
        return None  # one step of the value grid
    return float(np.median(moved))


def value_quantum(rows: npt.NDArray[np.float64]) -> float:
    """The typical smallest gap between distinct values of one feature in benign ``rows``
    (range units): 1/16 for digits' integer pixels, near zero for measured quantities."""
    gaps = []
    for column in rows.T:
        values = np.unique(column)
        if values.shape[0] > 1:
            gaps.append(float(np.diff(values).min()))
    return float(np.median(gaps)) if gaps else 0.0
