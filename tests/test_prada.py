"""PRADA-style distance-distribution test against a real digits classifier.

Attacks are short simulations of Jacobian-based augmentation (Papernot et al.): seeds from
natural data, then each round adds every point moved one signed-gradient step of a
substitute model. Benign principals send natural held-out digits, repeats and retries.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from digits_victim import digits_data, digits_mlp, digits_profile, feed
from querywarden.core import snapshot
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Output, Severity, Signal
from querywarden.detectors.prada import PradaDetector
from querywarden.errors import DetectorError

Victim = tuple[ModelProfile, MLPClassifier, np.ndarray]


@pytest.fixture(scope="module")
def digits() -> Victim:
    x, _ = digits_data()
    model, profile = digits_mlp(), digits_profile()
    return profile, model, x[1400:]


def _jacobian_augmentation(model: MLPClassifier, seeds: np.ndarray, n: int, step: float, seed: int) -> np.ndarray:
    """Papernot-style augmentation with a logistic substitute retrained each round."""
    rng = np.random.default_rng(seed)
    points = list(seeds)
    while len(points) < n:
        current = np.array(points)
        labels = model.predict(current)
        substitute = LogisticRegression(max_iter=5000).fit(current / 16.0, labels)
        classes = list(substitute.classes_)
        for x, label in zip(current, labels, strict=True):
            grad = substitute.coef_[classes.index(label)] if len(classes) > 2 else substitute.coef_[0]
            grad = grad + rng.normal(0, 1e-3, grad.shape)  # break ties where the weight is zero
            points.append(np.clip(x + step * 16.0 * np.sign(grad), 0.0, 16.0))
    return np.array(points[:n])


def test_natural_principals_stay_below_medium(digits: Victim) -> None:
    profile, model, pool = digits
    det = PradaDetector(profile=profile)
    rng = np.random.default_rng(0)
    for k in range(20):
        signals = feed(det, model, pool[rng.integers(len(pool), size=400)], f"customer{k}")
        assert not signals, f"customer{k}: {signals}"
    worst = det.calibration()["delta"].values
    assert len(worst) == 20
    assert min(worst) > det.delta + 0.05  # a clear margin, not a near miss


_W_ONLY = 10**6
"""``sign_steps`` that never fires: the distance-distribution test alone."""


def test_jacobian_augmentation_with_a_linear_substitute_is_caught(digits: Victim) -> None:
    """A linear substitute moves every point of a class the same way; clipping makes many repeats,
    so fewer distinct queries are measured and detection takes longer than with a network."""
    profile, model, pool = digits
    rng = np.random.default_rng(1)
    seeds = pool[rng.choice(len(pool), size=20, replace=False)]
    attack = _jacobian_augmentation(model, seeds, 600, 0.05, 1)
    det = PradaDetector(profile=profile, sign_steps=_W_ONLY)
    signals = feed(det, model, attack, "thief")
    assert signals, "augmentation went unnoticed"
    first_at, first = signals[0]
    assert first.severity == Severity.MEDIUM
    assert first_at <= 600
    assert first.technique == "AML.T0024.002"
    assert first.evidence["shapiro_w"] < det.delta
    assert len(signals) <= 2  # once per level, no flood


def test_random_sign_augmentation_is_caught_fast(digits: Victim) -> None:
    """A substitute whose gradient signs vary per point (a small network) gives the same spike."""
    profile, model, pool = digits
    rng = np.random.default_rng(5)
    points = list(pool[rng.choice(len(pool), size=20, replace=False)])
    while len(points) < 400:
        points += [np.clip(p + 1.6 * np.sign(rng.normal(size=64)), 0, 16) for p in points]
    signals = feed(PradaDetector(profile=profile, sign_steps=_W_ONLY), model, np.array(points[:400]), "thief")
    assert signals and signals[0][0] <= 150  # the first test, at 100 distances, already fails
    assert signals[0][1].evidence["shapiro_w"] < 0.6
    assert [s.severity for _, s in signals] == [Severity.MEDIUM, Severity.HIGH]  # sustained: high, once


def test_retries_and_exact_duplicates_are_not_new_samples(digits: Victim) -> None:
    profile, model, pool = digits
    det = PradaDetector(profile=profile)
    rng = np.random.default_rng(3)
    records = pool[rng.choice(len(pool), size=150, replace=False)]
    rows = np.repeat(records, 3, axis=0)  # every record sent three times in a row
    rows = np.vstack([rows, records[rng.permutation(150)]])  # and the whole set again later
    assert not feed(det, model, rows, "flaky")
    state = det._states.peek("flaky")
    assert state is not None and state.n_dists <= 150  # only first sightings are measured


def test_a_tabular_batch_job_stays_below_medium() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    lo, hi = x.min(axis=0), x.max(axis=0)
    model = LogisticRegression(max_iter=5000).fit((x[:300] - lo) / (hi - lo), y[:300])
    profile = ModelProfile(id="bc", n_features=30, ranges=tuple(zip(lo, hi, strict=True)), reference=x[300:450])
    det = PradaDetector(profile=profile)
    rows = x[450:][np.random.default_rng(4).integers(119, size=3000)]
    probs = model.predict_proba((rows - lo) / (hi - lo))
    for i, (row, p) in enumerate(zip(rows, probs, strict=True)):
        it = Interaction(
            id=str(i), ts=float(i), principal="batch", model="bc", features=row, output=Output(probabilities=p)
        )
        assert not det.update(it)


def test_interactions_without_usable_features_are_skipped(digits: Victim) -> None:
    profile, _, pool = digits
    det = PradaDetector(profile=profile)
    assert det.update(Interaction(id="a", ts=1.0, principal="p", model="digits")) == []
    assert det.update(Interaction(id="b", ts=2.0, principal="p", model="digits", features=np.zeros(5))) == []
    assert det.state_size() == 0
    # no output: the principal's queries share one bucket instead of one per class
    assert det.update(Interaction(id="c", ts=3.0, principal="p", model="digits", features=pool[0])) == []
    state = det._states.peek("p")
    assert state is not None and list(state.classes) == [None]


def test_label_only_outputs_bucket_by_label(digits: Victim) -> None:
    profile, _, pool = digits
    det = PradaDetector(profile=profile)
    for i, label in enumerate(["3", "3", "7"]):
        det.update(
            Interaction(
                id=str(i), ts=float(i), principal="p", model="digits", features=pool[i], output=Output(label=label)
            )
        )
    state = det._states.peek("p")
    assert state is not None and sorted(state.classes) == ["3", "7"]


def test_snapshot_restores_windows_and_distances(digits: Victim) -> None:
    profile, model, pool = digits
    rng = np.random.default_rng(6)
    attack = _jacobian_augmentation(model, pool[rng.choice(len(pool), size=20, replace=False)], 400, 0.05, 6)
    det = PradaDetector(profile=profile)
    feed(det, model, attack[:24], "thief")  # the seeds and a few sign steps, under sign_steps
    state = det._states.peek("thief")
    assert state is not None and 0 < state.sign_steps < det.sign_steps
    twin = det.clone()
    twin.restore(det.snapshot())
    assert snapshot.loads(det.snapshot())[0] == "PradaDetector"
    rest_a = [(i, s.severity, s.evidence) for i, s in feed(det, model, attack[24:], "thief")]
    rest_b = [(i, s.severity, s.evidence) for i, s in feed(twin, model, attack[24:], "thief")]
    assert rest_a == rest_b
    assert [e["pattern"] for _, _, e in rest_a[:1]] == ["sign_steps"]


def test_memory_per_stored_query_is_bounded(digits: Victim) -> None:
    profile, model, pool = digits
    det = PradaDetector(profile=profile, window=64)
    rng = np.random.default_rng(7)
    before = len(det.snapshot())
    rows = pool[rng.integers(len(pool), size=2000)] + rng.normal(0, 0.5, size=(2000, 64))
    feed(det, model, np.clip(rows, 0, 16), "heavy")
    state = det._states.peek("heavy")
    assert state is not None
    stored = sum(w.count for w in state.classes.values())
    assert stored <= 64 * len(state.classes)  # the per-class window caps it
    assert (len(det.snapshot()) - before) / stored < 2048


def test_bad_parameters_are_refused(digits: Victim) -> None:
    profile, _, _ = digits
    with pytest.raises(DetectorError, match="delta"):
        PradaDetector(profile=profile, delta=1.5)
    with pytest.raises(DetectorError, match="min_distances"):
        PradaDetector(profile=profile, min_distances=5)


def test_a_profile_without_width_is_silent() -> None:
    det = PradaDetector(profile=ModelProfile(id="unknown"))
    it = Interaction(id="a", ts=1.0, principal="p", model="unknown", features=np.ones(4))
    assert det.update(it) == []


def _categorical_records(n: int, rng: np.random.Generator) -> np.ndarray:
    """Tabular records like a credit application: eight one-hot fields and three small counts."""
    fields = [np.eye(5)[rng.choice(5, size=n, p=[0.5, 0.2, 0.15, 0.1, 0.05])] for _ in range(8)]
    counts = np.round(rng.gamma(2.0, 1.0, size=(n, 3)))
    return np.hstack([*fields, counts])


def test_discrete_tabular_inputs_are_held_to_their_own_benign_w() -> None:
    """One-hot fields put distances on a lattice, so W runs low even for a benign batch job.

    With a reference sample the detector replays it as one principal and keeps ``delta``
    below the W that benign data reaches; without one it would call the batch an attack.
    """
    rng = np.random.default_rng(0)
    ranges = tuple([(0.0, 1.0)] * 40 + [(0.0, 10.0)] * 3)
    rows = _categorical_records(3000, rng)
    reference = _categorical_records(600, rng)

    def run(profile: ModelProfile) -> tuple[PradaDetector, list[Signal]]:
        det = PradaDetector(profile=profile)
        out: list[Signal] = []
        for i, row in enumerate(rows):
            it = Interaction(
                id=str(i), ts=float(i), principal="batch", model="t", features=row, output=Output(label=int(row[0]))
            )
            out.extend(det.update(it))
        return det, out

    det, signals = run(ModelProfile(id="t", n_features=43, ranges=ranges, reference=reference))
    assert not signals
    assert det._reference_w is not None and det._reference_w < 0.8
    assert det._delta == pytest.approx(det._reference_w - det.reference_margin)
    blind, loud = run(ModelProfile(id="t", n_features=43, ranges=ranges))
    assert loud and blind._delta == blind.delta  # the lattice alone looks like an attack


def test_calibration_never_tightens_delta_past_the_default(digits: Victim) -> None:
    profile, model, pool = digits
    det = PradaDetector(profile=profile)
    feed(det, model, pool[:300], "customer")
    cal = det.calibration()["delta"]
    assert not cal.alarm_above and cal.floor == det.delta
    assert len(cal.values) == 1 and cal.values[0] > 0.9


def test_class_windows_per_principal_are_capped(digits: Victim) -> None:
    profile, _, pool = digits
    det = PradaDetector(profile=profile)
    for i in range(300):
        it = Interaction(
            id=str(i), ts=float(i), principal="p", model="digits", features=pool[i], output=Output(label=f"c{i}")
        )
        det.update(it)
    state = det._states.peek("p")
    assert state is not None and len(state.classes) == 65  # 64 labels, then one shared window
    assert state.classes["*"].count == det.window  # the shared window is full, and capped
