"""The benign reference helpers: the common feature space, kNN distances, the reservoir and the tail test."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from querywarden.core import snapshot
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Interaction
from querywarden.detectors.reference import (
    KnnReference,
    QuerySpace,
    Reservoir,
    binomial_surprise,
    reference_rows,
    spacing,
)
from querywarden.errors import DetectorError


@pytest.fixture(scope="module")
def digits() -> tuple[ModelProfile, np.ndarray]:
    x, _ = load_digits(return_X_y=True)
    profile = ModelProfile(
        id="digits",
        input_kind=InputKind.IMAGE,
        n_features=64,
        shape=(8, 8),
        ranges=tuple((0.0, 16.0) for _ in range(64)),
        reference=x[:1000],
    )
    return profile, x[1000:]


def test_space_scales_each_feature_by_its_declared_range() -> None:
    profile = ModelProfile(id="m", n_features=2, ranges=((0.0, 10.0), (100.0, 300.0)))
    space = QuerySpace.from_profile(profile)
    assert space is not None
    z = space.transform(np.array([5.0, 200.0]))
    assert z is not None
    np.testing.assert_allclose(z, [0.5, 0.5])


def test_space_falls_back_to_the_reference_spread_then_to_raw_units() -> None:
    ref = np.array([[0.0, 0.0], [4.0, 2.0], [2.0, 1.0]])
    from_ref = QuerySpace.from_profile(ModelProfile(id="m", reference=ref))
    assert from_ref is not None
    np.testing.assert_allclose(from_ref.transform(np.array([4.0, 1.0])), [1.0, 0.5])
    raw = QuerySpace.from_profile(ModelProfile(id="m", n_features=2))
    assert raw is not None
    np.testing.assert_allclose(raw.transform(np.array([4.0, 1.0])), [4.0, 1.0])
    assert QuerySpace.from_profile(ModelProfile(id="m")) is None  # width unknown: nothing to compare


def test_space_rejects_missing_mis_sized_and_non_finite_vectors(digits: tuple) -> None:
    profile, pool = digits
    space = QuerySpace.from_profile(profile)
    assert space is not None
    assert space.transform(None) is None
    assert space.transform(np.zeros(3)) is None
    assert space.transform(np.zeros((8, 8))) is None
    bad = pool[0].copy()
    bad[5] = np.nan
    assert space.transform(bad) is None
    bad[5] = np.inf
    assert space.transform(bad) is None
    assert space.transform(pool[0]) is not None


def test_wide_inputs_are_projected_and_keep_their_distances_roughly() -> None:
    dim = 784
    profile = ModelProfile(id="wide", n_features=dim, ranges=tuple((0.0, 1.0) for _ in range(dim)))
    space = QuerySpace.from_profile(profile, max_dims=64)
    assert space is not None and space.out_dim == 64
    rng = np.random.default_rng(3)
    a, b = rng.uniform(size=(2, 200, dim))
    za, zb = space.transform_many(a), space.transform_many(b)
    ratio = np.linalg.norm(za - zb, axis=1) / np.linalg.norm(a - b, axis=1)
    assert 0.8 < float(np.median(ratio)) < 1.2  # Johnson-Lindenstrauss: distances survive
    again = QuerySpace.from_profile(profile, max_dims=64)
    assert again is not None and again.projection is not None and space.projection is not None
    np.testing.assert_array_equal(again.projection, space.projection)  # replays project alike


def test_spacing_is_the_natural_neighbour_distance_with_a_fallback(digits: tuple) -> None:
    profile, _ = digits
    space = QuerySpace.from_profile(profile)
    assert space is not None
    rows = reference_rows(profile, space)
    gap = spacing(rows, 64)
    assert 0.7 < gap < 1.4  # digits scaled to [0, 1]: neighbours differ by about one unit
    assert spacing(None, 64) == pytest.approx(0.02 * 8)


def test_knn_reference_threshold_passes_benign_and_rejects_noise(digits: tuple) -> None:
    profile, pool = digits
    space = QuerySpace.from_profile(profile)
    assert space is not None
    rows = reference_rows(profile, space)
    assert rows is not None
    ref = KnnReference.build(rows, k=3, quantile=0.99)
    assert ref.expected_rate == pytest.approx(0.01, abs=0.005)
    held_out = space.transform_many(pool)
    far = [ref.distance(ref.embed(z)) > ref.threshold for z in held_out]
    assert float(np.mean(far)) < 0.05  # unseen benign digits are mostly within the threshold
    noise = space.transform_many(np.random.default_rng(0).uniform(0, 16, size=(200, 64)))
    assert all(ref.distance(ref.embed(z)) > ref.threshold for z in noise)
    for z in held_out[:50]:
        e = ref.embed(z)
        assert ref.within(e, ref.threshold) == (ref.distance(e) <= ref.threshold)


def test_knn_reference_keeps_distance_off_the_benign_subspace() -> None:
    """A query far along a direction benign data never varies in must stay far after PCA."""
    rng = np.random.default_rng(1)
    rows = np.zeros((300, 40))
    rows[:, :3] = rng.normal(size=(300, 3))  # benign data lives in 3 dimensions
    ref = KnnReference.build(rows, k=3, n_components=3)
    off = np.zeros(40)
    off[20] = 5.0
    assert ref.distance(ref.embed(off)) > 4.0


def test_knn_reference_needs_enough_rows() -> None:
    with pytest.raises(DetectorError, match="at least"):
        KnnReference.build(np.zeros((3, 4)), k=3)


def test_knn_reference_survives_the_restricted_snapshot_loader(digits: tuple) -> None:
    profile, pool = digits
    space = QuerySpace.from_profile(profile)
    assert space is not None
    rows = reference_rows(profile, space)
    assert rows is not None
    ref = KnnReference.build(rows)
    back = snapshot.loads(snapshot.dumps(ref))
    z = space.transform_many(pool[:5])
    assert [back.distance(back.embed(v)) for v in z] == [ref.distance(ref.embed(v)) for v in z]
    assert len(pickle.dumps(ref)) < 300_000


def test_reservoir_caps_each_principal_and_its_capacity() -> None:
    res = Reservoir(capacity=100, per_principal=10, seed=4)
    for i in range(50):
        res.offer("loud", np.full(3, float(i)))
    assert len(res) == 10  # one caller cannot fill the sample
    for p in range(40):
        for i in range(5):
            res.offer(f"p{p}", np.full(3, 1000.0 + i))
    assert len(res) == 100
    loud = int(np.sum(res.rows()[:, 0] < 1000.0))
    assert loud <= 10
    res.release()
    assert len(res) == 0


def test_reservoir_is_deterministic() -> None:
    def fill() -> np.ndarray:
        res = Reservoir(capacity=20, per_principal=50, seed=9)
        for i in range(500):
            res.offer(f"p{i % 30}", np.array([float(i)]))
        return res.rows()

    np.testing.assert_array_equal(fill(), fill())


def test_binomial_surprise_separates_a_few_odd_queries_from_a_stream() -> None:
    assert binomial_surprise(0, 50, 0.01) == 0.0
    few = binomial_surprise(2, 20, 0.01)
    stream = binomial_surprise(20, 40, 0.01)
    assert few < 2.0  # two odd queries in twenty: unremarkable
    assert stream > 20.0
    assert binomial_surprise(10, 40, 0.01) < binomial_surprise(11, 40, 0.01)
    assert binomial_surprise(128, 128, 1e-6) == 300.0  # capped
    exact = -math.log10(1 - sum(math.comb(30, j) * 0.05**j * 0.95 ** (30 - j) for j in range(5)))
    assert binomial_surprise(5, 30, 0.05) == pytest.approx(exact, rel=1e-6)


def test_tabular_reference_rows_drop_non_finite_rows() -> None:
    x, _ = load_breast_cancer(return_X_y=True)
    ref = x[:50].copy()
    ref[3, 2] = np.nan
    profile = ModelProfile(id="bc", n_features=30, reference=ref)
    space = QuerySpace.from_profile(profile)
    assert space is not None
    rows = reference_rows(profile, space)
    assert rows is not None and rows.shape == (49, 30)
    assert reference_rows(ModelProfile(id="bc", n_features=30), space) is None


def test_trimming_drops_planted_points_from_an_untrusted_sample(digits: tuple) -> None:
    profile, _ = digits
    space = QuerySpace.from_profile(profile)
    assert space is not None
    clean = reference_rows(profile, space)
    assert clean is not None
    planted = space.transform_many(np.random.default_rng(2).uniform(0, 16, size=(30, 64)))
    poisoned = np.vstack([clean[:600], planted])
    naive = KnnReference.build(poisoned)
    trimmed = KnnReference.build(poisoned, trim=True)
    honest = KnnReference.build(clean[:600])
    assert naive.threshold > 1.5 * honest.threshold  # 5% planted noise drags the 99th percentile out
    assert trimmed.threshold == pytest.approx(honest.threshold, rel=0.1)
    probe = space.transform_many(np.random.default_rng(3).uniform(0, 16, size=(20, 64)))
    assert all(trimmed.distance(trimmed.embed(z)) > trimmed.threshold for z in probe)


def test_detectors_of_one_model_share_one_space_and_each_point_is_computed_once(digits: tuple) -> None:
    profile = digits[0]
    a, b = QuerySpace.from_profile(profile), QuerySpace.from_profile(profile)
    assert a is b and a is not None
    assert QuerySpace.from_profile(profile, max_dims=16) is not a, "another projection is another space"
    restored = snapshot.loads(snapshot.dumps(a))
    assert restored is a, "a restored detector shares the space again"
    x = np.full(profile.expected_dim(), 3.0)
    first = Interaction(id="1", ts=0.0, principal="p", model=profile.id, features=x)
    z = a.transform_of(first)
    assert z is not None and z is a.transform_of(first)
    assert np.array_equal(z, a.transform(x))
    with pytest.raises(ValueError):
        z[0] = 1.0  # shared between detectors: read-only
    second = Interaction(id="2", ts=1.0, principal="p", model=profile.id, features=x * 2)
    z2 = a.transform_of(second)
    assert z2 is not None and not np.array_equal(z, z2)
