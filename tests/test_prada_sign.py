"""PRADA's sign-step count: Jacobian-based augmentation recognised from its steps, not their spread.

Each augmentation round sends ``x + lambda * sign(gradient)`` for points already sent: a query
that differs from an earlier one by the same amount in nearly every feature, in both
directions. Benign edits (posterised copies, brightness, re-encoding noise, what-if edits of a
field or two) do not look like that.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.neural_network import MLPClassifier

from digits_victim import digits_data, digits_mlp, digits_profile, feed
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Output, Severity
from querywarden.detectors.prada import PradaDetector
from querywarden.detectors.sign_steps import StepUnits, sign_step, value_quantum

Victim = tuple[ModelProfile, MLPClassifier, np.ndarray]


@pytest.fixture(scope="module")
def digits() -> Victim:
    x, _ = digits_data()
    model, profile = digits_mlp(), digits_profile()
    return profile, model, x[1400:]


def _augment(
    model: MLPClassifier, seeds: np.ndarray, rounds: int, step: float, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Papernot's augmentation with a linear substitute: every round doubles the set."""
    held = seeds
    for r in range(rounds):
        labels = model.predict(held)
        sub = RidgeClassifier().fit((held - lo) / (hi - lo), labels)
        coef = sub.coef_ if sub.coef_.shape[0] > 1 else np.vstack([-sub.coef_[0], sub.coef_[0]])
        direction = np.sign(coef[np.searchsorted(sub.classes_, labels)])
        sign = 1.0 if (r // 3) % 2 == 0 else -1.0
        held = np.vstack([held, np.clip(held + sign * step * (hi - lo) * direction, lo, hi)])
    return held


def test_augmentation_on_digits_is_named_extraction_within_the_first_round(digits: Victim) -> None:
    """Lambda 0.02 moves a digit less than the repeat radius: the distance test never sees
    these steps, the sign-step count does, and clipped pixels do not hide them."""
    profile, model, pool = digits
    seeds = pool[np.random.default_rng(0).choice(len(pool), size=10, replace=False)]
    attack = _augment(model, seeds, 5, 0.02, np.zeros(64), np.full(64, 16.0))
    signals = feed(PradaDetector(profile=profile), model, attack, "thief", t0=0.0)
    assert signals, "augmentation went unnoticed"
    at, first = signals[0]
    assert first.severity == Severity.MEDIUM and first.technique == "AML.T0024.002"
    assert first.evidence["pattern"] == "sign_steps" and first.evidence["step_share_of_range"] == pytest.approx(0.02)
    assert at <= 10 + 2 * 8  # the seeds, then about sign_steps steps


def test_augmentation_on_tabular_data_with_a_per_point_substitute_is_caught() -> None:
    """A network-like substitute gives every point its own sign pattern: each step still counts."""
    x, y = load_breast_cancer(return_X_y=True)
    lo, hi = x.min(axis=0), x.max(axis=0)
    model = MLPClassifier((16,), max_iter=2000, random_state=0).fit((x[:300] - lo) / (hi - lo), y[:300])
    profile = ModelProfile(id="bc", n_features=30, ranges=tuple(zip(lo, hi, strict=True)), reference=x[300:450])
    rng = np.random.default_rng(2)
    points = list(x[450:][rng.choice(119, size=20, replace=False)])
    while len(points) < 160:
        points += [np.clip(p + 0.1 * (hi - lo) * np.sign(rng.normal(size=30)), lo, hi) for p in points]
    rows = np.array(points[:160])
    det = PradaDetector(profile=profile)
    probs = model.predict_proba((rows - lo) / (hi - lo))
    signals = []
    for i, (row, p) in enumerate(zip(rows, probs, strict=True)):
        it = Interaction(
            id=str(i), ts=float(i), principal="t", model="bc", features=row, output=Output(probabilities=p)
        )
        signals += [(i + 1, s) for s in det.update(it)]
    assert signals and signals[0][1].evidence["pattern"] == "sign_steps" and signals[0][0] <= 40


def _posterise(images: np.ndarray, levels: float = 4.0) -> np.ndarray:
    step = 16.0 / levels
    return np.asarray(np.clip(np.round(images / step) * step, 0.0, 16.0))


def test_benign_image_edits_make_no_sign_steps(digits: Victim) -> None:
    """Posterised copies, brightness edits, one-grey-level re-encoding noise and one-pixel shifts."""
    profile, model, pool = digits
    rng = np.random.default_rng(4)
    photos = pool[rng.choice(len(pool), size=120, replace=False)]
    edits = {
        "posterised": _posterise(photos),
        "brightness": np.vstack([np.vstack([p, np.clip(p + 2.0, 0, 16), np.clip(p - 2.0, 0, 16)]) for p in photos]),
        "reencoded": np.vstack(
            [np.vstack([p, np.clip(p + rng.choice([-1.0, 1.0], size=64) * (p > 0), 0, 16)]) for p in photos]
        ),
        "shifted": np.vstack([np.vstack([p, np.roll(p.reshape(8, 8), 1, axis=1).ravel()]) for p in photos]),
    }
    det = PradaDetector(profile=profile)
    for name, rows in edits.items():
        assert not [s for _, s in feed(det, model, rows, name, t0=0.0) if s.evidence.get("pattern") == "sign_steps"], (
            name
        )
    counts = det.calibration()["sign_steps"].values
    assert len(counts) == 4 and max(counts) <= 2


def test_what_if_edits_of_tabular_records_make_no_sign_steps() -> None:
    x, _ = load_breast_cancer(return_X_y=True)
    lo, hi = x.min(axis=0), x.max(axis=0)
    profile = ModelProfile(id="bc", n_features=30, ranges=tuple(zip(lo, hi, strict=True)), reference=x[300:450])
    det = PradaDetector(profile=profile)
    rng = np.random.default_rng(5)
    for i in range(400):
        row = x[450 + i % 100].copy()
        fields = rng.choice(30, size=2, replace=False)
        row[fields] = np.clip(
            row[fields] + 0.1 * (hi - lo)[fields] * rng.choice([-1, 1], size=2), lo[fields], hi[fields]
        )
        det.update(Interaction(id=str(i), ts=float(i), principal="what-if", model="bc", features=row))
    state = det._states.peek("what-if")
    assert state is not None and state.sign_steps == 0


def test_sign_step_reads_equal_moves_both_ways_and_tolerates_clipping() -> None:
    units = StepUnits(np.ones(20))
    query = np.full(20, 0.5, dtype=np.float32)
    step = np.where(np.arange(20) % 2 == 0, 0.1, -0.1).astype(np.float32)
    assert sign_step(query, step, 0.0, units) == (pytest.approx(0.1), "range")
    clipped_query, clipped_step = query.copy(), step.copy()
    clipped_query[:4], clipped_step[:4] = 1.0, 0.03  # clipped at the top: moved less
    assert sign_step(clipped_query, clipped_step, 0.0, units) == (pytest.approx(0.1), "range")
    larger = step.copy()
    larger[0] = 0.3  # one feature moved more than the common step: not a sign step
    assert sign_step(query, larger, 0.0, units) is None
    assert sign_step(query, np.abs(step), 0.0, units) is None  # every feature the same way: a brightness edit
    assert sign_step(query, step, 0.1, units) is None  # one step of the value grid: re-encoding noise
    few = np.zeros(20, dtype=np.float32)
    few[:3] = [0.1, -0.1, 0.1]
    assert sign_step(query, few, 0.0, units) is None  # three features of twenty: a what-if edit


def test_steps_in_raw_units_are_sign_steps_too() -> None:
    """An attacker stepping lambda in the API's own units moves each feature by a different
    share of its range: the same steps, in other units."""
    rng = np.random.default_rng(8)
    width = rng.uniform(1.0, 100.0, size=20)  # feature ranges
    units = StepUnits(width)
    assert units.names == ("range", "raw")
    query = np.full(20, 0.5, dtype=np.float32)
    signs = np.where(np.arange(20) % 3 == 0, 1.0, -1.0)
    raw = (0.5 * signs / width).astype(np.float32)  # 0.5 raw units each, in range units
    assert sign_step(query, raw, 0.0, units) == (pytest.approx(float(np.median(0.5 / width))), "raw")
    natural = (rng.normal(size=20) * 0.1).astype(np.float32)
    assert sign_step(query, natural, 0.0, units) is None
    assert StepUnits(np.full(20, 16.0)).names == ("range",)  # raw units are range units here


def test_value_quantum_is_the_grid_of_the_reference() -> None:
    x, _ = load_digits(return_X_y=True)
    assert value_quantum(x[:300] / 16.0) == pytest.approx(1 / 16)
    assert value_quantum(np.random.default_rng(0).normal(size=(300, 5))) < 0.01


def test_the_count_is_off_for_projected_inputs_and_pooled_at_a_merge(digits: Victim) -> None:
    profile, model, pool = digits
    wide = ModelProfile(id="w", n_features=64, ranges=tuple((0.0, 16.0) for _ in range(64)))
    assert PradaDetector(profile=wide, max_dims=32)._units is None
    seeds = pool[np.random.default_rng(6).choice(len(pool), size=10, replace=False)]
    attack = _augment(model, seeds, 2, 0.05, np.zeros(64), np.full(64, 16.0))
    det = PradaDetector(profile=profile)
    assert not feed(det, model, np.vstack([attack[:10], attack[10:15]]), "k1", t0=0.0)
    assert not feed(det, model, np.vstack([attack[:10], attack[15:20]]), "k2", t0=0.0)
    det.merge("actor", ("k1", "k2"))
    state = det._states.peek("actor")
    assert state is not None and state.sign_steps >= 8
