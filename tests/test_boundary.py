"""Boundary probing against a real digits classifier.

The attack is a short HopSkipJump-style walk: a binary search between the target image and
an image of another class, then rounds of gradient estimation with random probes around the
boundary point, a step, and another binary search. Label-only membership inference runs the
same walk around several candidate records.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from digits_victim import digits_data, digits_mlp, digits_profile
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Output, Severity, Signal
from querywarden.detectors.boundary import BoundaryDetector, _margin
from querywarden.errors import DetectorError

Victim = tuple[ModelProfile, MLPClassifier, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def digits() -> Victim:
    x, y = digits_data()
    model, profile = digits_mlp(), digits_profile()
    return profile, model, x[1400:], y[1400:]


def hop_skip_jump(model: MLPClassifier, x0: np.ndarray, start: np.ndarray, rounds: int, seed: int) -> np.ndarray:
    """The queries of a HopSkipJump-style walk from ``start`` (another class) towards ``x0``."""
    rng = np.random.default_rng(seed)
    queries: list[np.ndarray] = []
    label = model.predict(x0[None])[0]

    def adversarial(points: list[np.ndarray]) -> np.ndarray:
        queries.extend(points)
        return np.asarray(model.predict(np.array(points)) != label)

    def search(far: np.ndarray) -> np.ndarray:
        lo, hi = 0.0, 1.0
        while hi - lo > 1e-3:
            mid = (lo + hi) / 2
            if adversarial([(1 - mid) * x0 + mid * far])[0]:
                hi = mid
            else:
                lo = mid
        return (1 - hi) * x0 + hi * far

    point = search(start)
    for t in range(rounds):
        dist = float(np.linalg.norm(point - x0))
        probes = rng.normal(size=(30, 64))
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
        signs = adversarial(list(np.clip(point + 0.01 * dist * probes, 0, 16))) * 2.0 - 1.0
        grad = ((signs - signs.mean())[:, None] * probes).mean(axis=0)
        grad /= np.linalg.norm(grad) + 1e-12
        step = dist / np.sqrt(t + 1)
        while step > 1e-3 and not adversarial([np.clip(point + step * grad, 0, 16)])[0]:
            step /= 2
        point = search(np.clip(point + step * grad, 0, 16))
    return np.array(queries)


def _other_class(pool: np.ndarray, labels: np.ndarray, i: int) -> np.ndarray:
    j = (i + 1) % len(pool)
    while labels[j] == labels[i]:
        j = (j + 1) % len(pool)
    return pool[j]


def _feed(
    det: BoundaryDetector, model: MLPClassifier, rows: np.ndarray, principal: str, *, labels_only: bool = False
) -> list[tuple[int, Signal]]:
    probs = model.predict_proba(rows)
    out: list[tuple[int, Signal]] = []
    for i, (row, p) in enumerate(zip(rows, probs, strict=True)):
        output = Output(label=str(int(np.argmax(p)))) if labels_only else Output(probabilities=p)
        it = Interaction(
            id=f"{principal}-{i}", ts=1e9 + i, principal=principal, model="digits", features=row, output=output
        )
        out.extend((i + 1, s) for s in det.update(it))
    return out


def _benign_warmup(det: BoundaryDetector, model: MLPClassifier, pool: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for k in range(20):
        assert not _feed(det, model, pool[rng.integers(len(pool), size=100)], f"customer{k}")


def test_hop_skip_jump_reaches_medium_within_one_percent_of_its_budget(digits: Victim) -> None:
    profile, model, pool, labels = digits
    det = BoundaryDetector(profile=profile)
    _benign_warmup(det, model, pool, seed=0)
    walk = hop_skip_jump(model, pool[10], _other_class(pool, labels, 10), rounds=25, seed=1)
    signals = _feed(det, model, walk, "attacker")
    assert [s.severity for _, s in signals] == [Severity.MEDIUM, Severity.HIGH]
    first_at, first = signals[0]
    assert first_at <= 64  # 1% of the ~6,400 queries HopSkipJump spends per digit
    assert first.technique == "AML.T0043"
    assert first.evidence["boundary_share"] >= det.min_share
    assert signals[1][0] >= det.window


def test_label_only_membership_inference_is_named_as_such(digits: Victim) -> None:
    profile, model, pool, labels = digits
    det = BoundaryDetector(profile=profile)
    _benign_warmup(det, model, pool, seed=2)
    candidates = [20, 45, 70, 95, 120, 145]
    walk = np.vstack(
        [hop_skip_jump(model, pool[i], _other_class(pool, labels, i), rounds=6, seed=i) for i in candidates]
    )
    signals = _feed(det, model, walk, "mia")
    techniques = [s.technique for _, s in signals]
    assert techniques[0] == "AML.T0043"  # one candidate looks like plain probing
    assert "AML.T0024.000" in techniques
    mia = next(s for _, s in signals if s.technique == "AML.T0024.000")
    assert mia.evidence["distinct_centres"] >= det.membership_centres


def test_a_single_walk_is_not_called_membership_inference(digits: Victim) -> None:
    profile, model, pool, labels = digits
    for i in (3, 33, 63):
        det = BoundaryDetector(profile=profile)
        walk = hop_skip_jump(model, pool[i], _other_class(pool, labels, i), rounds=25, seed=i)
        signals = _feed(det, model, walk, "attacker")
        assert signals
        assert all(s.technique == "AML.T0043" for _, s in signals), [s.evidence for _, s in signals]


def test_label_only_outputs_are_read_through_label_flips(digits: Victim) -> None:
    profile, model, pool, labels = digits
    det = BoundaryDetector(profile=profile)
    rng = np.random.default_rng(4)
    for k in range(10):
        assert not _feed(det, model, pool[rng.integers(len(pool), size=100)], f"customer{k}", labels_only=True)
    walk = hop_skip_jump(model, pool[7], _other_class(pool, labels, 7), rounds=25, seed=7)
    signals = _feed(det, model, walk, "attacker", labels_only=True)
    assert signals and signals[0][1].severity == Severity.MEDIUM
    assert signals[0][1].evidence["output"] == "labels"
    assert signals[0][0] <= 200


def test_benign_principals_a_batch_job_and_photo_edits_stay_quiet(digits: Victim) -> None:
    profile, model, pool, _ = digits
    det = BoundaryDetector(profile=profile)
    rng = np.random.default_rng(5)
    for k in range(30):
        assert not _feed(det, model, pool[rng.integers(len(pool), size=200)], f"customer{k}")
    assert not _feed(det, model, pool[rng.integers(len(pool), size=5000)], "nightly-batch")
    edits = []
    for j in rng.integers(len(pool), size=40):
        img = pool[j].reshape(8, 8)
        edits += [img, np.roll(img, 1, axis=1), np.clip(img * 1.15, 0, 16), np.roll(img, -1, axis=0)]
    assert not _feed(det, model, np.array([e.ravel() for e in edits]), "photo-app")
    worst = det.calibration()["surprise"].values
    assert len(worst) == 32 and max(worst) < det.surprise
    assert 0.0 < det.population_rate() < 0.1


def test_a_what_if_user_on_a_borderline_application_stays_quiet() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    lo, hi = x.min(axis=0), x.max(axis=0)
    model = LogisticRegression(max_iter=5000).fit((x[:400] - lo) / (hi - lo), y[:400])
    profile = ModelProfile(id="bc", n_features=30, ranges=tuple(zip(lo, hi, strict=True)), reference=x[:400])
    det = BoundaryDetector(profile=profile)
    probs = model.predict_proba((x[400:] - lo) / (hi - lo))
    margins = np.abs(probs[:, 1] - probs[:, 0])
    app = x[400:][int(np.argmin(margins))].copy()  # the most borderline application there is
    rng = np.random.default_rng(6)
    for i in range(8):  # a handful of edits of one or two fields
        for f in rng.choice(30, size=2, replace=False):
            app[f] = x[int(rng.integers(400))][f]
        p = model.predict_proba(((app - lo) / (hi - lo))[None])[0]
        it = Interaction(
            id=str(i), ts=float(i), principal="what-if", model="bc", features=app.copy(), output=Output(probabilities=p)
        )
        assert not det.update(it)


def test_hardened_and_logit_outputs_still_show_their_margin() -> None:
    assert _margin(Output(probabilities=np.array([0.52, 0.48]))) == pytest.approx(0.04)
    # top-1 only, rounded to one decimal: the missing mass may all sit on the runner-up
    assert _margin(Output(probabilities=np.array([0.5, 0.0, 0.0]))) == pytest.approx(0.0)
    assert _margin(Output(probabilities=np.array([0.9, 0.0, 0.0]))) == pytest.approx(0.8)
    assert _margin(Output(probabilities=np.array([0.6]))) == pytest.approx(0.2)
    assert _margin(Output(scores=np.array([2.0, 2.0, -5.0]))) == pytest.approx(0.0, abs=1e-6)
    assert _margin(Output(scores=np.array([9.0, 0.0]))) > 0.99
    assert _margin(Output(label=3)) is None
    assert _margin(Output(probabilities=np.array([np.nan, 0.5]))) is None
    assert _margin(Output(probabilities=np.array([np.inf, -np.inf]))) is None


def test_flagged_principals_do_not_teach_the_population(digits: Victim) -> None:
    profile, model, pool, labels = digits
    det = BoundaryDetector(profile=profile)
    _benign_warmup(det, model, pool, seed=8)
    before = det.population_rate()
    walk = hop_skip_jump(model, pool[50], _other_class(pool, labels, 50), rounds=25, seed=50)
    signals = _feed(det, model, walk, "attacker")
    assert signals
    learned = det._states.peek("attacker")
    assert learned is not None and learned.learned == signals[0][0]  # learning stopped at the crossing
    assert det.population_rate() < before + 0.02


def test_snapshot_round_trip_continues_identically(digits: Victim) -> None:
    profile, model, pool, labels = digits
    det = BoundaryDetector(profile=profile)
    walk = hop_skip_jump(model, pool[60], _other_class(pool, labels, 60), rounds=10, seed=60)
    _feed(det, model, walk[:15], "attacker")
    twin = det.clone()
    twin.restore(det.snapshot())
    a = [(i, s.severity, s.evidence) for i, s in _feed(det, model, walk[15:], "attacker")]
    b = [(i, s.severity, s.evidence) for i, s in _feed(twin, model, walk[15:], "attacker")]
    assert a == b and a


def test_bad_parameters_are_refused(digits: Victim) -> None:
    profile = digits[0]
    with pytest.raises(DetectorError, match="margin"):
        BoundaryDetector(profile=profile, margin=0.0)
    with pytest.raises(DetectorError, match="membership_centres"):
        BoundaryDetector(profile=profile, membership_centres=1)


def test_a_walk_after_a_phase_of_confident_queries_is_judged_on_its_recent_part(digits: Victim) -> None:
    """HopSkipJump and the Boundary attack start with random draws far from the boundary."""
    profile, model, pool, labels = digits
    det = BoundaryDetector(profile=profile)
    _benign_warmup(det, model, pool, seed=9)
    rng = np.random.default_rng(9)
    probs = model.predict_proba(pool)
    confident = pool[np.sort(probs, axis=1)[:, -1] > 0.99]
    start = confident[rng.integers(len(confident), size=100)]
    walk = hop_skip_jump(model, pool[80], _other_class(pool, labels, 80), rounds=25, seed=80)
    signals = _feed(det, model, np.vstack([start, walk]), "attacker")
    assert signals and signals[0][1].severity == Severity.MEDIUM
    assert signals[0][0] - 100 <= 40  # within 40 queries of the walk, not after it fills the window
    assert signals[0][1].evidence["window_queries"] == det.recent  # judged on the recent part


def test_calibration_never_lowers_the_bars_past_the_defaults(digits: Victim) -> None:
    profile, model, pool, _ = digits
    det = BoundaryDetector(profile=profile)
    _benign_warmup(det, model, pool, seed=10)
    cal = det.calibration()
    assert cal["surprise"].floor == det.surprise and cal["min_share"].floor == det.min_share
    assert len(cal["surprise"].values) == 20 and max(cal["surprise"].values) < det.surprise


def test_a_monitoring_probe_on_a_borderline_record_stays_quiet_and_a_walk_after_it_is_caught(digits: Victim) -> None:
    profile, model, pool, labels = digits
    det = BoundaryDetector(profile=profile)
    _benign_warmup(det, model, pool, seed=0)
    probs = model.predict_proba(pool)
    top2 = np.sort(probs, axis=1)[:, -2:]
    borderline = pool[int(np.argmin(top2[:, 1] - top2[:, 0]))]
    # one fixed record, every minute for a day: repeats ask nothing new
    assert not _feed(det, model, np.repeat(borderline[None], 1440, axis=0), "probe")
    # a walk is made of new points: the same principal walking is still caught
    walk = hop_skip_jump(model, pool[10], _other_class(pool, labels, 10), rounds=25, seed=1)
    assert _feed(det, model, walk, "probe")


def _answered(principal: str, answers: list[np.ndarray], rows: np.ndarray | None = None) -> list[Interaction]:
    """One query per answer, one second apart, with the given inputs (or none)."""
    return [
        Interaction(
            id=f"{principal}-{i}",
            ts=1_764_320_000.0 + i,
            principal=principal,
            model="m",
            features=None if rows is None else rows[i],
            output=Output(probabilities=p),
        )
        for i, p in enumerate(answers)
    ]


def _outputs(principal: str, margins: list[float]) -> list[Interaction]:
    """Two-class answers with the given margins, one per query (no features)."""
    return _answered(principal, [np.array([(1 + m) / 2, (1 - m) / 2]) for m in margins])


def test_a_long_customer_is_not_flagged_for_its_luckiest_window_but_a_walk_is() -> None:
    """A window sliding over thousands of queries finds by chance a run that a fresh key's
    first window would not: the bar rises with log10(queries / window). A walk's first window
    is judged as before."""
    profile = ModelProfile(id="m", n_features=2)
    rng = np.random.default_rng(11)
    history = [0.05 if rng.random() < 0.1 else 0.9 for _ in range(6000)]
    run = [0.05 if i % 2 == 0 else 0.9 for i in range(32)]  # 16 of 32 borderline: surprise 7.3 at 10%
    stream = _outputs("batch", history + [0.9] * 32 + run)

    def loud(det: BoundaryDetector, items: list[Interaction]) -> list[Signal]:
        return [s for it in items for s in det.update(it) if s.severity >= Severity.MEDIUM]

    det = BoundaryDetector(profile=profile, prior_rate=0.1, learn_limit=0)
    assert loud(det, stream) == []
    fresh = BoundaryDetector(profile=profile, prior_rate=0.1, learn_limit=0)
    flagged = loud(fresh, _outputs("fresh", run))
    assert flagged and flagged[0].evidence["scan_correction"] == 0.0, "the same run from a fresh key is flagged"
    walk = loud(det, _outputs("walker", [0.02] * 30))
    assert walk and int(str(walk[0].interaction_id).rsplit("-", 1)[1]) < 25


def test_label_flips_reveal_a_walk_whose_probabilities_never_come_near_the_boundary() -> None:
    """A model whose probabilities jump across its boundary (0.9 on either side: boosted
    stumps, a calibrated SVM) never answers a low margin; a walk still flips its label
    between near-identical queries, and a customer's natural records do not."""
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(300, 8))
    profile = ModelProfile(id="m", n_features=8, reference=reference)

    def answer(principal: str, rows: np.ndarray) -> list[Interaction]:
        jump = [np.array([0.95, 0.05]) if row[0] > 0 else np.array([0.05, 0.95]) for row in rows]
        return _answered(principal, jump, rows)

    det = BoundaryDetector(profile=profile)
    customers = [s for k in range(20) for it in answer(f"c{k}", rng.normal(size=(60, 8))) for s in det.update(it)]
    assert not [s for s in customers if s.severity >= Severity.MEDIUM]
    centre = rng.normal(size=8)
    centre[0] = 0.0
    walk = centre + 0.01 * rng.normal(size=(200, 8))  # gradient probes around a boundary point
    signals = [s for it in answer("walker", walk) for s in det.update(it) if s.severity >= Severity.MEDIUM]
    assert signals and signals[0].evidence["output"] == "probabilities, label flips"
    assert int(str(signals[0].interaction_id).rsplit("-", 1)[1]) < 40
