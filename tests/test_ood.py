"""Out-of-distribution share per principal against a real digits reference.

Attackers send uniform noise (equation solving) or natural images from another domain
(KnockoffNets with photo patches from scikit-learn's bundled sample images). Benign
principals send held-out digits, batches, and edited copies of one photo.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_sample_images

from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Interaction, Severity, Signal
from querywarden.detectors.ood import OodDetector
from querywarden.errors import DetectorError

RANGES = tuple((0.0, 16.0) for _ in range(64))


@pytest.fixture(scope="module")
def digits() -> tuple[ModelProfile, np.ndarray]:
    x, _ = load_digits(return_X_y=True)
    profile = ModelProfile(
        id="digits", input_kind=InputKind.IMAGE, n_features=64, shape=(8, 8), ranges=RANGES, reference=x[:1000]
    )
    return profile, x[1000:]


def _photo_patches(n: int, seed: int) -> np.ndarray:
    """8x8 grey patches of real photos, scaled to the digits' 0-16 range: natural but another domain."""
    rng = np.random.default_rng(seed)
    photos = [img.mean(axis=2) for img in load_sample_images().images]
    out = []
    for _ in range(n):
        img = photos[int(rng.integers(len(photos)))]
        r, c = int(rng.integers(0, img.shape[0] - 64)), int(rng.integers(0, img.shape[1] - 64))
        patch = img[r : r + 64, c : c + 64].reshape(8, 8, 8, 8).mean(axis=(1, 3))
        out.append(np.round(patch / 255.0 * 16.0).ravel())
    return np.array(out)


def _feed(det: OodDetector, rows: np.ndarray, principal: str, start: int = 0) -> list[tuple[int, Signal]]:
    out: list[tuple[int, Signal]] = []
    for i, row in enumerate(rows):
        it = Interaction(
            id=f"{principal}-{start + i}", ts=1e9 + start + i, principal=principal, model="m", features=row
        )
        out.extend((start + i + 1, s) for s in det.update(it))
    return out


def test_uniform_noise_reaches_medium_fast_then_high(digits: tuple) -> None:
    profile, _ = digits
    det = OodDetector(profile=profile)
    noise = np.random.default_rng(0).uniform(0, 16, size=(300, 64))
    signals = _feed(det, noise, "solver")
    assert [s.severity for _, s in signals] == [Severity.MEDIUM, Severity.HIGH]
    assert signals[0][0] == det.min_queries  # every query is far: the first possible moment
    assert signals[1][0] == det.window
    assert signals[0][1].technique == "AML.T0024.002"
    assert signals[0][1].evidence["ood_share"] == 1.0


def test_natural_images_from_another_domain_are_caught(digits: tuple) -> None:
    profile, _ = digits
    det = OodDetector(profile=profile)
    signals = _feed(det, _photo_patches(300, seed=1), "knockoff")
    assert signals, "photo patches passed as digits"
    assert signals[0][1].severity == Severity.MEDIUM
    assert signals[0][0] <= 100


def test_benign_principals_and_a_batch_job_stay_quiet(digits: tuple) -> None:
    profile, pool = digits
    det = OodDetector(profile=profile)
    rng = np.random.default_rng(2)
    for k in range(30):
        assert not _feed(det, pool[rng.integers(len(pool), size=200)], f"customer{k}")
    assert not _feed(det, pool[rng.integers(len(pool), size=5000)], "nightly-batch")
    worst = det.calibration()["surprise"].values
    assert len(worst) == 31
    assert max(worst) < det.surprise
    assert max(det.calibration()["min_share"].values) < det.min_share


def test_edited_copies_of_one_odd_photo_count_once(digits: tuple) -> None:
    """An app sending many edits of one unusual picture sends one odd input, not forty."""
    profile, pool = digits
    det = OodDetector(profile=profile)
    rng = np.random.default_rng(3)
    odd = _photo_patches(1, seed=4)[0]
    rows = []
    for i in range(40):
        edited = odd * rng.uniform(0.9, 1.1)
        if i % 3 == 0:
            edited = np.roll(edited.reshape(8, 8), 1, axis=1).ravel()
        rows.append(np.clip(np.round(edited), 0, 16))
        rows.append(pool[int(rng.integers(len(pool)))])
    assert not _feed(det, np.array(rows), "photo-app")
    state = det._states.peek("photo-app")
    assert state is not None and state.count <= 4


def test_a_few_odd_queries_in_a_short_history_do_not_fire(digits: tuple) -> None:
    profile, pool = digits
    det = OodDetector(profile=profile)
    rows = np.vstack([np.random.default_rng(5).uniform(0, 16, size=(4, 64)), pool[:16]])
    assert not _feed(det, rows, "curious")


def test_mixing_natural_queries_below_the_share_is_a_known_blind_spot(digits: tuple) -> None:
    profile, pool = digits
    det = OodDetector(profile=profile)
    rng = np.random.default_rng(6)
    noise = rng.uniform(0, 16, size=(300, 64))
    rows = np.array([noise[i // 5] if i % 5 == 0 else pool[i % len(pool)] for i in range(1500)])
    assert not _feed(det, rows, "patient")  # one in five: under min_share
    det_strict = OodDetector(profile=profile, min_share=0.15)
    assert _feed(det_strict, rows, "patient")  # a calibrated share finds it


def test_without_a_reference_it_warms_up_on_traffic_then_detects(digits: tuple) -> None:
    _, pool = digits
    profile = ModelProfile(id="m", input_kind=InputKind.IMAGE, n_features=64, ranges=RANGES)
    det = OodDetector(profile=profile, warmup=600, warmup_per_principal=30)
    rng = np.random.default_rng(7)
    noise = rng.uniform(0, 16, size=(400, 64))
    assert not _feed(det, noise[:200], "early-attacker")  # silent during warm-up, and capped at 30
    for k in range(25):
        assert not _feed(det, pool[rng.integers(len(pool), size=40)], f"customer{k}")
    assert det.reference is not None
    assert not _feed(det, pool[rng.integers(len(pool), size=200)], "later-customer")
    signals = _feed(det, noise[200:], "solver")
    assert signals and signals[0][0] <= 40


def test_snapshot_round_trip_keeps_the_reference_and_windows(digits: tuple) -> None:
    profile, _ = digits
    det = OodDetector(profile=profile)
    noise = np.random.default_rng(8).uniform(0, 16, size=(200, 64))
    _feed(det, noise[:10], "solver")
    twin = det.clone()
    twin.restore(det.snapshot())
    a = [(i, s.severity, s.evidence) for i, s in _feed(det, noise[10:], "solver", start=10)]
    b = [(i, s.severity, s.evidence) for i, s in _feed(twin, noise[10:], "solver", start=10)]
    assert a == b and a


def test_malformed_inputs_are_skipped(digits: tuple) -> None:
    profile, pool = digits
    det = OodDetector(profile=profile)
    bad = pool[0].copy()
    bad[0] = np.nan
    for features in (None, np.zeros(3), bad):
        assert det.update(Interaction(id="x", ts=1.0, principal="p", model="m", features=features)) == []
    assert det.state_size() == 0


def test_bad_parameters_are_refused(digits: tuple) -> None:
    profile, _ = digits
    with pytest.raises(DetectorError, match="min_share"):
        OodDetector(profile=profile, min_share=0.0)
    with pytest.raises(DetectorError, match="window"):
        OodDetector(profile=profile, min_queries=200, window=100)


def test_calibration_never_lowers_the_bars_past_the_defaults(digits: tuple) -> None:
    profile, pool = digits
    det = OodDetector(profile=profile)
    rng = np.random.default_rng(9)
    for k in range(5):
        _feed(det, pool[rng.integers(len(pool), size=50)], f"customer{k}")
    cal = det.calibration()
    assert cal["surprise"].floor == det.surprise and cal["min_share"].floor == det.min_share
    assert len(cal["min_share"].values) == 5


def test_a_snapshot_taken_during_warm_up_restores_the_reservoir(digits: tuple) -> None:
    _, pool = digits
    profile = ModelProfile(id="m", input_kind=InputKind.IMAGE, n_features=64, ranges=RANGES)
    det = OodDetector(profile=profile, warmup=300, warmup_per_principal=40)
    rng = np.random.default_rng(10)
    for k in range(5):
        _feed(det, pool[rng.integers(len(pool), size=40)], f"customer{k}")
    assert det.reference is None
    twin = det.clone()
    twin.restore(det.snapshot())
    rest = [pool[rng.integers(len(pool), size=40)] for _ in range(6)] + [rng.uniform(0, 16, size=(60, 64))]
    for i, rows in enumerate(rest):
        a = _feed(det, rows, f"later{i}")
        b = _feed(twin, rows, f"later{i}")
        assert [(n, s.evidence) for n, s in a] == [(n, s.evidence) for n, s in b]
    assert det.reference is not None and twin.reference is not None
    assert twin.reference.threshold == det.reference.threshold
    assert a, "the noise after warm-up was not flagged"


def test_keys_of_one_actor_share_a_window(digits: tuple) -> None:
    """Twenty keys with ten noise queries each: none alone reaches min_queries, the actor does."""
    profile, _ = digits
    noise = np.random.default_rng(11).uniform(0, 16, size=(200, 64))

    def run(actor: str | None) -> list[Signal]:
        det = OodDetector(profile=profile)
        out: list[Signal] = []
        for i, row in enumerate(noise):
            it = Interaction(id=str(i), ts=float(i), principal=f"key{i % 20}", model="m", features=row, actor=actor)
            out.extend(det.update(it))
        return out

    assert not run(None)
    clustered = run("act-1")
    assert clustered and clustered[0].severity == Severity.MEDIUM
    assert clustered[0].principal == "key19"  # the signal names the key that sent the query
