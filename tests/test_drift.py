"""The spread ratio: a random walk diffuses, a walk around one point and a straight walk do not."""

from __future__ import annotations

import numpy as np

from querywarden.detectors.drift import MIN_RATIOS, Spread


def _spread(points: np.ndarray) -> Spread:
    s = Spread()
    for p in points:
        s.add(p)
    return s


def test_a_random_walk_diffuses() -> None:
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(size=(60, 20)), axis=0)
    s = _spread(walk)
    assert s.diffusing() and 1.8 < s.median() < 2.8


def test_candidates_around_one_point_and_a_straight_walk_do_not() -> None:
    rng = np.random.default_rng(1)
    around = rng.normal(size=20) + 0.01 * rng.normal(size=(60, 20))
    assert not _spread(around).diffusing() and _spread(around).median() < 1.5
    straight = np.outer(np.arange(60), rng.normal(size=20))
    assert not _spread(straight).diffusing() and _spread(straight).median() > 4.5


def test_too_few_steps_and_odd_inputs_judge_nothing() -> None:
    rng = np.random.default_rng(2)
    walk = np.cumsum(rng.normal(size=(MIN_RATIOS + 3, 20)), axis=0)  # LAG=5: MIN_RATIOS - 1 ratios
    assert not _spread(walk).diffusing()
    s = _spread(np.full((30, 20), np.nan))
    assert s.median() == 0.0 and not s.diffusing()
