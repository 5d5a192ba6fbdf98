"""The joint-structure test of ``ood``: features each natural, combined as no record combines them.

Breast cancer's 30 features are strongly correlated (radius, perimeter and area move
together). Rows whose every feature is drawn from its own natural values sit among the
reference in kNN distance but far off in Mahalanobis distance; customers sending natural
records, or editing one or two fields of one, do not.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Interaction, Severity, Signal
from querywarden.detectors.ood import OodDetector
from querywarden.detectors.reference import JointReference, QuerySpace, reference_rows
from querywarden.errors import DetectorError


@pytest.fixture(scope="module")
def cancer() -> tuple[ModelProfile, np.ndarray]:
    x = load_breast_cancer().data
    x = x[np.random.default_rng(0).permutation(len(x))]
    lo, hi = x.min(axis=0), x.max(axis=0)
    ranges = tuple(zip(lo.tolist(), hi.tolist(), strict=True))
    profile = ModelProfile(id="bc", input_kind=InputKind.TABULAR, n_features=30, ranges=ranges, reference=x[:300])
    return profile, x[300:]


def _marginals(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return pool[rng.integers(0, len(pool), size=(n, pool.shape[1])), np.arange(pool.shape[1])]


def _feed(det: OodDetector, rows: np.ndarray, principal: str) -> list[Signal]:
    out: list[Signal] = []
    for i, row in enumerate(rows):
        it = Interaction(id=f"{principal}-{i}", ts=1e9 + i, principal=principal, model="m", features=row)
        out.extend(det.update(it))
    return out


def test_held_out_rate_is_near_the_quantile_and_marginal_draws_are_far(cancer: tuple) -> None:
    profile, pool = cancer
    space = QuerySpace.from_profile(profile)
    assert space is not None
    rows = reference_rows(profile, space)
    assert rows is not None
    joint = JointReference.build(rows, quantile=0.99)
    natural = np.mean([joint.score(z) > joint.threshold for z in space.transform_many(pool)])
    drawn = np.mean([joint.score(z) > joint.threshold for z in space.transform_many(_marginals(pool, 400, 1))])
    assert natural <= 0.03
    assert drawn >= 0.25


def test_marginal_draws_are_reported_low_and_never_judged_an_attack(cancer: tuple) -> None:
    profile, pool = cancer
    det = OodDetector(profile=profile)
    signals = _feed(det, _marginals(pool, 200, 2), "drawn")
    assert [s.severity for s in signals] == [Severity.LOW]
    assert signals[0].evidence["pattern"] == "joint_structure"
    assert signals[0].evidence["joint_distance"] > signals[0].evidence["joint_threshold"]


def test_natural_customers_and_what_if_edits_stay_quiet(cancer: tuple) -> None:
    profile, pool = cancer
    det = OodDetector(profile=profile)
    rng = np.random.default_rng(3)
    for k in range(20):
        assert not _feed(det, pool[rng.integers(len(pool), size=150)], f"customer{k}")
    for k in range(20):
        edits = []
        for _ in range(3):  # sessions: one application, each edit copies one or two fields from another
            app = pool[rng.integers(len(pool))].copy()
            edits.append(app.copy())
            for _ in range(8):
                cols = rng.choice(30, size=int(rng.integers(1, 3)), replace=False)
                app[cols] = pool[rng.integers(len(pool)), cols]
                edits.append(app.copy())
        assert not _feed(det, np.array(edits), f"what-if{k}")


def test_uniform_noise_is_still_judged_medium(cancer: tuple) -> None:
    profile, _ = cancer
    det = OodDetector(profile=profile)
    lo, hi = np.array(profile.ranges).T
    noise = np.random.default_rng(4).uniform(lo, hi, size=(200, 30))
    assert Severity.MEDIUM in [s.severity for s in _feed(det, noise, "solver")]


def test_too_few_rows_is_refused() -> None:
    with pytest.raises(DetectorError, match="at least 8 rows"):
        JointReference.build(np.zeros((5, 3)))


def test_image_edits_are_not_judged_on_pixel_covariance() -> None:
    """A one-pixel shift or a cropped border breaks the pixel covariance of a natural photo."""
    x = load_digits().data
    ranges = tuple((0.0, 16.0) for _ in range(64))
    profile = ModelProfile(
        id="d", input_kind=InputKind.IMAGE, n_features=64, shape=(8, 8), ranges=ranges, reference=x[:300]
    )
    det = OodDetector(profile=profile)
    rng = np.random.default_rng(5)
    for k in range(10):
        edits = []
        for photo in x[300 + 30 * k : 303 + 30 * k].reshape(-1, 8, 8):
            edits.append(photo.ravel())
            for _ in range(9):
                img = np.roll(photo, int(rng.choice([-1, 1])), axis=int(rng.integers(0, 2)))
                img[:, int(rng.choice([0, -1]))] = 0.0
                edits.append(np.clip(img * rng.uniform(0.8, 1.2), 0.0, 16.0).ravel())
        assert not _feed(det, np.array(edits), f"photo-app{k}")
