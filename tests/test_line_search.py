"""Line searches: bisecting between a far start and a real input, as decision-based evasion
attacks do, named apart from extraction's independent far draws."""

from __future__ import annotations

import numpy as np
import pytest

from digits_victim import HELD_OUT, digits_data, digits_profile
from querywarden.core.atlas import ADVERSARIAL, EXTRACTION
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal
from querywarden.detectors.line_search import between
from querywarden.detectors.ood import OodDetector


def test_a_point_between_two_others_is_on_their_segment() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=8), rng.normal(size=8)
    points = np.vstack([rng.normal(size=8), a, rng.normal(size=8), b])
    assert between(a + 0.37 * (b - a), points)
    assert between((a + 0.01 * (b - a)).astype(np.float32), points), "float32 storage stays on the line"
    assert not between(a + 1.5 * (b - a), points), "past an end is an extrapolation"
    off = a + 0.5 * (b - a) + 0.01 * np.linalg.norm(b - a) * np.eye(8)[0]
    assert not between(off, points)
    assert not between(rng.normal(size=8), points)
    assert not between(np.array([0.5, 0.5, 0.5]), np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])), "too few features"


def test_random_draws_are_never_on_a_line_between_earlier_ones() -> None:
    rng = np.random.default_rng(2)
    draws = rng.uniform(0, 16, size=(400, 64))
    assert not any(between(draws[i], draws[max(0, i - 20) : i]) for i in range(2, 400))


@pytest.fixture(scope="module")
def digits() -> tuple[ModelProfile, np.ndarray]:
    x, _ = digits_data()
    return digits_profile(), x[HELD_OUT]


def _first_medium(det: OodDetector, rows: np.ndarray, principal: str) -> Signal:
    for i, row in enumerate(rows):
        it = Interaction(id=f"{principal}-{i}", ts=1e9 + i, principal=principal, model="m", features=row)
        for s in det.update(it):
            if s.severity >= Severity.MEDIUM:
                return s
    raise AssertionError("no medium signal")


def test_random_starts_bisected_towards_real_inputs_are_evasion_not_extraction(digits: tuple) -> None:
    profile, held = digits
    rng = np.random.default_rng(3)
    rows: list[np.ndarray] = []
    for target in held[:12]:  # HopSkipJump's start: the target, a uniform draw, a binary search
        rows.append(target)
        far = rng.uniform(0, 16, size=64)
        rows.append(far)
        lo, hi = 0.0, 1.0
        for _ in range(6):
            mid = (lo + hi) / 2
            rows.append((1 - mid) * target + mid * far)
            lo, hi = (lo, mid) if rng.random() < 0.5 else (mid, hi)
    walk = _first_medium(OodDetector(profile=profile), np.array(rows), "evader")
    assert walk.technique == ADVERSARIAL and walk.evidence["runner_up"] == EXTRACTION
    draws = _first_medium(OodDetector(profile=profile), rng.uniform(0, 16, size=(200, 64)), "solver")
    assert draws.technique == EXTRACTION and draws.evidence["line_search_share"] == 0.0
