"""``ood`` on a wide tabular input: 64 generated features, most of them noise.

Twenty informative features in clusters, ten redundant ones (linear mixtures of those) and
34 of pure noise. Nearest-neighbour distances are dominated by the noise, so records whose
every feature is drawn from its own column sit as close to the reference as natural ones:
only the joint test sees them (the redundant features no longer agree), and it reports
them at ``low``, as it does a synthetic test set. Records from another distribution (other
clusters) are still out of distribution for the kNN test and judged ``medium``.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification

from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Interaction, Severity, Signal
from querywarden.detectors.ood import OodDetector


def _data(seed: int, n: int) -> np.ndarray:
    x, _ = make_classification(
        n_samples=n,
        n_features=64,
        n_informative=20,
        n_redundant=10,
        n_classes=5,
        n_clusters_per_class=2,
        class_sep=1.5,
        random_state=seed,
    )
    return np.round(np.asarray(x, dtype=np.float64), 3)


@pytest.fixture(scope="module")
def wide() -> tuple[ModelProfile, np.ndarray]:
    x = _data(11, 1500)
    lo, hi = x.min(axis=0), x.max(axis=0)
    ranges = tuple(zip(lo.tolist(), hi.tolist(), strict=True))
    profile = ModelProfile(id="w", input_kind=InputKind.TABULAR, n_features=64, ranges=ranges, reference=x[:300])
    return profile, x[300:]


def _feed(det: OodDetector, rows: np.ndarray, principal: str) -> list[Signal]:
    out: list[Signal] = []
    for i, row in enumerate(rows):
        it = Interaction(id=f"{principal}-{i}", ts=1e9 + i, principal=principal, model="w", features=row)
        out.extend(det.update(it))
    return out


def test_natural_records_stay_quiet(wide: tuple) -> None:
    profile, pool = wide
    assert not _feed(OodDetector(profile=profile), pool[:600], "customer")


def test_column_drawn_records_are_reported_low_at_once_never_medium(wide: tuple) -> None:
    profile, pool = wide
    rng = np.random.default_rng(1)
    drawn = pool[rng.integers(0, len(pool), size=(400, 64)), np.arange(64)]
    signals = _feed(OodDetector(profile=profile), drawn, "drawn")
    assert [s.severity for s in signals] == [Severity.LOW]
    assert signals[0].evidence["pattern"] == "joint_structure"
    assert signals[0].evidence["window_queries"] == 20  # the first judgement already crosses
    assert signals[0].evidence["ood_share"] == 1.0


def test_records_from_another_distribution_are_judged_medium(wide: tuple) -> None:
    profile, _ = wide
    other = _data(12, 400)  # another generator's clusters, features and noise alike
    signals = _feed(OodDetector(profile=profile), other, "foreign")
    assert signals and signals[0].severity >= Severity.MEDIUM
    assert "pattern" not in signals[0].evidence  # the kNN test's, not the joint one's
