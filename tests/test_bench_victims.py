"""Victims train offline, deterministically, with disjoint splits and a usable profile."""

from __future__ import annotations

import numpy as np
import pytest

from querywarden.bench.scenario import BenchError
from querywarden.bench.victims import load_victim, victim_names
from querywarden.core.records import InputKind


def _rows(m: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in np.ascontiguousarray(m)}


@pytest.mark.parametrize("name", ["digits", "breast-cancer", "breast-cancer-relu", "adult", "wine-gb", "synth64-svc"])
def test_victim_generalises_and_splits_are_disjoint(name: str) -> None:
    v = load_victim(name)
    assert (v.labels(v.x_test) == v.y_test).mean() > 0.8
    splits = [v.x_test, v.reference, v.benign_pool, v.attacker_pool]
    assert min(len(s) for s in splits) > 0
    # the splits are cut from disjoint indices; an equal row can only recur where the dataset
    # itself repeats it (census rows do), so overlaps stay rare
    test_rows = _rows(v.x_test)
    for other in (v.benign_pool, v.reference, v.attacker_pool):
        assert len(test_rows & _rows(other)) <= 0.05 * len(other)
    assert v.profile.expected_dim() == v.n_features == v.x_train.shape[1]
    lo, hi = v.bounds()
    assert np.all(v.x_test >= lo) and np.all(v.x_test <= hi)
    p = v.predict_proba(v.benign_pool[:5])
    assert p.shape == (5, v.n_classes) and p.dtype == np.float64
    assert np.allclose(p.sum(axis=1), 1.0)


def test_digits_is_an_image_victim() -> None:
    v = load_victim("digits")
    assert v.input_kind is InputKind.IMAGE and v.shape == (8, 8) and v.n_classes == 10


def test_victims_are_deterministic_per_seed() -> None:
    a = load_victim("breast-cancer", 3)
    b = load_victim.__wrapped__("breast-cancer", 3)
    assert np.array_equal(a.x_train, b.x_train)
    assert np.array_equal(a.predict_proba(a.x_test), b.predict_proba(b.x_test))
    c = load_victim("breast-cancer", 4)
    assert not np.array_equal(a.x_train, c.x_train)


def test_overfit_victim_memorises_its_members() -> None:
    v = load_victim("adult-overfit")
    member_conf = v.predict_proba(v.x_train)[np.arange(len(v.y_train)), v.y_train]
    outsider_conf = v.predict_proba(v.x_test)[np.arange(len(v.y_test)), v.y_test]
    assert (v.labels(v.x_train) == v.y_train).mean() > 0.99
    assert member_conf.mean() - outsider_conf.mean() > 0.1


def test_relu_victim_returns_logits_consistent_with_probabilities() -> None:
    v = load_victim("breast-cancer-relu")
    assert v.predict_scores is not None
    s = v.predict_scores(v.x_test[:10])
    p = v.predict_proba(v.x_test[:10])
    e = np.exp(s - s.max(axis=1, keepdims=True))
    assert np.allclose(e / e.sum(axis=1, keepdims=True), p)


def test_adult_carries_sex_as_a_binary_input() -> None:
    v = load_victim("adult")
    (col,) = v.sensitive
    assert v.profile.feature_names is not None and v.profile.feature_names[col] == "sex_Male"
    assert set(np.unique(v.x_train[:, col])) == {0.0, 1.0}
    assert v.sensitive_values == ("Female", "Male")


def test_unknown_victim_names_the_known_ones() -> None:
    with pytest.raises(BenchError, match="digits"):
        load_victim("mnist")
    assert "adult-overfit" in victim_names()
