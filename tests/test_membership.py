"""Membership: label-only probing and confidence reading on training rows are caught.

Victims are trained here on sklearn's bundled datasets; the attacks are short simulations
of label-only membership inference (noise robustness and boundary distance around each
candidate) and of confidence reading on a mix of members and non-members.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from querywarden.bench.victims import load_victim
from querywarden.core.profile import ModelProfile, row_digest, row_digests
from querywarden.core.records import InputKind, Interaction, Output, Severity, Signal
from querywarden.detectors.membership import MembershipDetector
from querywarden.plugins import load_detectors

T0 = 1_800_000_000.0


class Victim:
    def __init__(self, profile: ModelProfile, model: object, train: np.ndarray, pool: np.ndarray) -> None:
        self.profile, self.model, self.train, self.pool = profile, model, train, pool
        lo, hi = profile.bounds()  # type: ignore[misc]
        self.lo, self.hi = lo, hi

    def proba(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(rows))  # type: ignore[attr-defined]

    def label(self, row: np.ndarray) -> int:
        return int(np.argmax(self.proba(row[None])[0]))

    def stream(
        self, rows: np.ndarray, principal: str, dt: float = 0.05, labels_only: bool = False
    ) -> list[Interaction]:
        probs = self.proba(rows)
        return [
            Interaction(
                id=f"{principal}-{i}",
                ts=T0 + i * dt,
                principal=principal,
                model=self.profile.id,
                features=np.asarray(rows[i], dtype=np.float64),
                output=Output(label=int(np.argmax(probs[i]))) if labels_only else Output(probabilities=probs[i]),
            )
            for i in range(len(rows))
        ]


def _victim(pid: str, x: np.ndarray, y: np.ndarray, n_train: int, n_ref: int, *, image: bool) -> Victim:
    """Members are the first ``n_train`` rows, the reference the next ``n_ref``, customers the rest."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x[:n_train], y[:n_train])
    ranges = ((0.0, 16.0),) * x.shape[1] if image else tuple(zip(x.min(0).tolist(), x.max(0).tolist(), strict=True))
    profile = ModelProfile(
        id=pid,
        input_kind=InputKind.IMAGE if image else InputKind.TABULAR,
        n_features=x.shape[1],
        ranges=ranges,
        reference=x[n_train : n_train + n_ref],
        training_digests=row_digests(x[:n_train]),
    )
    return Victim(profile, model, x[:n_train], x[n_train + n_ref :])


@pytest.fixture(scope="module")
def digits() -> Victim:
    x, y = load_digits(return_X_y=True)
    return _victim("digits", x, y, 600, 200, image=True)


@pytest.fixture(scope="module")
def cancer() -> Victim:
    x, y = load_breast_cancer(return_X_y=True)
    return _victim("cancer", x, y, 300, 150, image=False)


def run(det: MembershipDetector, stream: list[Interaction]) -> list[Signal]:
    out: list[Signal] = []
    for it in stream:
        out.extend(det.update(it))
    return out


def first_at(signals: list[Signal]) -> int | None:
    for s in signals:
        if s.severity >= Severity.MEDIUM:
            return int(s.interaction_id.rsplit("-", 1)[1]) + 1
    return None


def worst(signals: list[Signal]) -> Severity:
    return max((s.severity for s in signals), default=Severity.INFO)


def candidates(v: Victim, n: int, seed: int = 0) -> np.ndarray:
    """Half members, half non-members, shuffled: how a membership evaluation is run."""
    rows = np.vstack([v.train[: n // 2], v.pool[: n // 2]])
    return rows[np.random.default_rng(seed).permutation(len(rows))]


def noise_robustness_probes(v: Victim, cands: np.ndarray, k: int = 30, sigma: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(1)
    rows = []
    for c in cands:
        rows.append(c)
        rows += list(np.clip(c + sigma * (v.hi - v.lo) * rng.normal(size=(k, c.shape[0])), v.lo, v.hi))
    return np.array(rows)


def boundary_distance_probes(v: Victim, cands: np.ndarray, steps: int = 25) -> np.ndarray:
    """Bisect from each candidate towards a record of another class, then probe the crossing."""
    rng = np.random.default_rng(2)
    rows = []
    for c in cands:
        own = v.label(c)
        far = next(r for r in v.pool[rng.permutation(len(v.pool))] if v.label(r) != own)
        a, b = c.copy(), far.copy()
        rows += [c, far]
        for _ in range(steps):
            m = (a + b) / 2
            rows.append(m)
            a, b = (m, b) if v.label(m) == own else (a, m)
        rows += list(np.clip(a + 0.01 * (v.hi - v.lo) * rng.normal(size=(20, c.shape[0])), v.lo, v.hi))
    return np.array(rows)


# -- attacks are caught -----------------------------------------------------------------
@pytest.mark.parametrize("which", ["digits", "cancer"])
def test_label_only_noise_probing_is_caught_early(which: str, request: pytest.FixtureRequest) -> None:
    v: Victim = request.getfixturevalue(which)
    rows = noise_robustness_probes(v, candidates(v, 60))
    signals = run(MembershipDetector(profile=v.profile), v.stream(rows, "mia", labels_only=True))
    at = first_at(signals)
    assert at is not None and at <= 0.1 * len(rows), f"first medium at {at} of {len(rows)}"
    assert signals[0].evidence["pattern"] == "probe_clusters"
    assert signals[0].technique == "AML.T0024.000"
    assert worst(signals) == Severity.HIGH


def test_boundary_distance_probing_is_caught(digits: Victim) -> None:
    rows = boundary_distance_probes(digits, candidates(digits, 40))
    signals = run(MembershipDetector(profile=digits.profile), digits.stream(rows, "mia", labels_only=True))
    at = first_at(signals)
    assert at is not None and at <= 0.1 * len(rows), f"first medium at {at} of {len(rows)}"


def test_confidence_reading_on_training_rows_is_caught_with_digests(cancer: Victim) -> None:
    rows = candidates(cancer, 100)
    det = MembershipDetector(profile=cancer.profile)
    signals = run(det, cancer.stream(rows, "mia"))
    at = first_at(signals)
    assert at is not None and at <= 60
    first = signals[0]
    assert first.evidence["pattern"] == "training_records"
    assert first.evidence["training_hits"] == 20
    assert first.evidence["training_share"] >= 0.3


def test_confidence_reading_without_digests_is_a_documented_blind_spot(cancer: Victim) -> None:
    profile = msgspec.structs.replace(cancer.profile, training_digests=None)
    det = MembershipDetector(profile=profile)
    assert run(det, cancer.stream(candidates(cancer, 100), "mia")) == []
    assert set(det.calibration()) == {"probed_records"}


def test_benign_rate_of_training_rows_raises_the_bar(cancer: Victim) -> None:
    """Where customers routinely send training rows (re-scoring), the same share is not alarming."""
    det = MembershipDetector(profile=cancer.profile, benign_factor=2.0)
    rng = np.random.default_rng(3)
    for i in range(30):  # customers whose traffic is ~40% training rows
        rows = np.vstack([cancer.train[rng.integers(0, 300, 8)], cancer.pool[rng.integers(0, 100, 12)]])
        assert run(det, cancer.stream(rows, f"bank-{i}")) == []
    assert 0.3 < det.benign_share() < 0.5
    assert run(det, cancer.stream(candidates(cancer, 100), "mia")) == []


# -- customers are not ------------------------------------------------------------------
def test_natural_scoring_batches_and_retries_stay_quiet(digits: Victim, cancer: Victim) -> None:
    for v in (digits, cancer):
        rng = np.random.default_rng(0)
        rows = v.pool[rng.integers(0, len(v.pool), 2000)]
        rows = np.repeat(rows, 2, axis=0)  # every request retried
        assert run(MembershipDetector(profile=v.profile), v.stream(rows, "batch")) == []


def test_edited_copies_of_a_few_photos_stay_quiet(digits: Victim) -> None:
    rows = []
    for photo in digits.pool[:3]:
        img = photo.reshape(8, 8)
        for i in range(25):
            edit = np.roll(img, shift=(i % 3) - 1, axis=1) if i % 2 else img * (0.9 + 0.01 * (i % 10))
            rows.append(np.clip(edit, 0, 16).ravel())
    det = MembershipDetector(profile=digits.profile)
    assert worst(run(det, digits.stream(np.array(rows), "photo-app", dt=3.0))) < Severity.MEDIUM


def test_what_if_user_stays_quiet(cancer: Victim) -> None:
    base = cancer.pool[5]
    rows = [base]
    for field in (0, 3):
        for value in cancer.pool[10:16, field]:
            x = rows[-1].copy()
            x[field] = value
            rows.append(x)
    det = MembershipDetector(profile=cancer.profile)
    assert run(det, cancer.stream(np.array(rows), "customer", dt=30.0)) == []


# -- contract ---------------------------------------------------------------------------
def test_calibration_and_thresholds(digits: Victim) -> None:
    rows = noise_robustness_probes(digits, candidates(digits, 6))
    det = MembershipDetector(profile=digits.profile)
    run(det, digits.stream(rows, "mia", labels_only=True))
    cal = det.calibration()
    assert set(cal) == {"probed_records", "member_share"}
    assert max(cal["probed_records"].values) == 6.0
    quiet = MembershipDetector(profile=digits.profile, probed_records=7)
    assert run(quiet, digits.stream(rows, "mia", labels_only=True)) == []


def test_row_digest_survives_json_round_trip() -> None:
    row = np.array([0.1, 1 / 3, -0.0, 12345.678901234])
    decoded = np.array(msgspec.json.decode(msgspec.json.encode(row.tolist())), dtype=np.float64)
    assert row_digest(decoded) == row_digest(row)
    assert row_digest(np.round(row, 6)) == row_digest(row)
    assert row_digest(row + 1e-5) != row_digest(row)
    with pytest.raises(ValueError, match="row_digests"):
        row_digests(row)


def test_snapshot_restore_continues_the_same(digits: Victim) -> None:
    stream = digits.stream(noise_robustness_probes(digits, candidates(digits, 10)), "mia")
    a = MembershipDetector(profile=digits.profile)
    run(a, stream[:100])
    b = a.clone()
    assert isinstance(b, MembershipDetector)
    b.restore(a.snapshot())
    assert [s.evidence for s in run(a, stream[100:])] == [s.evidence for s in run(b, stream[100:])]


def test_malformed_inputs(digits: Victim) -> None:
    det = MembershipDetector(profile=digits.profile)
    for it in (
        Interaction(id="a", ts=T0, principal="x", model="digits"),
        Interaction(id="b", ts=T0, principal="x", model="digits", features=np.zeros(5)),
        Interaction(id="c", ts=T0, principal="x", model="digits", features=np.full(64, np.inf)),
    ):
        assert det.update(it) == []
    assert det.state_size() == 0


def test_invalid_parameters_are_refused(digits: Victim) -> None:
    with pytest.raises(ValueError, match="membership"):
        MembershipDetector(profile=digits.profile, member_share=0.0)


def test_registered_as_a_plugin() -> None:
    assert load_detectors()["membership"] is MembershipDetector


def test_adult_batch_of_natural_records_stays_quiet() -> None:
    """One-hot tabular records crowd together; a natural batch still fills no probe clusters."""
    adult = load_victim("adult")
    rows = np.vstack([adult.benign_pool, adult.x_test])
    probs = adult.predict_proba(rows)
    stream = [
        Interaction(
            id=f"b-{i}",
            ts=T0 + i,
            principal="batch",
            model=adult.profile.id,
            features=rows[i],
            output=Output(probabilities=probs[i]),
        )
        for i in range(len(rows))
    ]
    det = MembershipDetector(profile=adult.profile)
    assert worst(run(det, stream)) < Severity.MEDIUM


def test_sorted_adult_batch_is_a_scan_not_probing() -> None:
    adult = load_victim("adult")
    rows = np.unique(np.vstack([adult.benign_pool, adult.x_test, adult.attacker_pool]), axis=0)
    probs = adult.predict_proba(rows)
    stream = [
        Interaction(
            id=f"b-{i}",
            ts=T0 + i,
            principal="batch",
            model=adult.profile.id,
            features=rows[i],
            output=Output(probabilities=probs[i]),
        )
        for i in range(len(rows))
    ]
    assert worst(run(MembershipDetector(profile=adult.profile), stream)) < Severity.MEDIUM


def test_snapshots_do_not_carry_the_training_digests(cancer: Victim) -> None:
    many = np.sort(np.random.default_rng(5).integers(0, 2**63, 100_000).astype(np.uint64))
    det = MembershipDetector(profile=msgspec.structs.replace(cancer.profile, training_digests=many))
    run(det, cancer.stream(cancer.pool[:20], "a"))
    assert len(det.snapshot()) < 100_000


def test_calibration_never_makes_the_training_share_bar_more_sensitive_than_shipped() -> None:
    """Held-out benign traffic has a training share near 0, which would pull the bar to
    nothing; real data holds duplicate rows, so the shipped default is the floor."""
    from querywarden.calibrate import threshold_for

    profile = ModelProfile(id="m", n_features=2, training_digests=row_digests(np.zeros((3, 2))))
    cal = MembershipDetector(profile=profile).calibration()["member_share"]
    assert cal.floor == MembershipDetector.defaults()["member_share"] == 0.3
    value, _ = threshold_for(cal.__class__(values=(0.0,) * 50, floor=cal.floor), 0.001)
    assert value == 0.3


# -- re-submissions of one record are not probes ----------------------------------------
@pytest.fixture(scope="module")
def cancer_small_reference() -> Victim:
    """Raw breast-cancer measurements (0.001 to 4,000) with an 18-row reference, so the natural
    spacing is wide and different customers' records share a probe cluster."""
    x, y = load_breast_cancer(return_X_y=True)
    return _victim("cancer-18", x, y, 300, 18, image=False)


def resent(rows: np.ndarray, seed: int) -> np.ndarray:
    """Each record sent, then re-sent 1-3 times as another system would: its values rounded to
    three significant digits, or converted with float noise."""
    rng = np.random.default_rng(seed)
    out = []
    for row in rows:
        out.append(row)
        for _ in range(int(rng.integers(1, 4))):
            if rng.random() < 0.5:
                scale = 10.0 ** (np.floor(np.log10(np.where(row != 0, np.abs(row), 1.0))) - 2)
                out.append(np.round(row / scale) * scale)
            else:
                out.append(row * (1.0 + rng.normal(0.0, 0.001, size=row.shape[0])))
    return np.array(out)


def test_records_resent_rounded_or_with_float_noise_stay_quiet(cancer_small_reference: Victim) -> None:
    v = cancer_small_reference
    rng = np.random.default_rng(7)
    for i in range(4):  # a few customers, each drawing its records from a small book, some more than once
        book = v.pool[rng.choice(len(v.pool), 30, replace=False)]
        rows = resent(book[rng.integers(0, len(book), 80)], seed=i)
        det = MembershipDetector(profile=v.profile, probed_records=2)
        assert worst(run(det, v.stream(rows, f"jitter-{i}", dt=20.0))) < Severity.MEDIUM


def test_tiny_perturbations_answered_on_the_boundary_are_still_probes(cancer_small_reference: Victim) -> None:
    """A boundary walk's gradient probes move the last digits too, but their answers change
    class or sit on the boundary: they are counted."""
    v = cancer_small_reference
    rng = np.random.default_rng(4)
    rows = []
    for c in candidates(v, 8):
        own = v.label(c)
        far = next(r for r in v.pool[rng.permutation(len(v.pool))] if v.label(r) != own)
        a, b = c.copy(), far.copy()
        for _ in range(30):  # to the crossing between the candidate and a record of another class
            m = (a + b) / 2
            a, b = (m, b) if v.label(m) == own else (a, m)
        rows.append(a)
        rows += list(a * (1.0 + 0.002 * rng.normal(size=(12, a.shape[0]))))
    probs = v.proba(np.array(rows))
    assert np.mean(np.abs(probs[:, 0] - probs[:, 1]) < 0.3) > 0.5  # on the boundary
    det = MembershipDetector(profile=v.profile, probed_records=2)
    assert worst(run(det, v.stream(np.array(rows), "mia"))) >= Severity.MEDIUM


def test_a_sensitivity_report_over_one_feature_is_a_sweep_not_probing(cancer: Victim) -> None:
    """Sweeping one feature of a few records over a grid fills a probe cluster per record (on
    30 features one value moved stays within the cluster radius), but it moves the record
    along one axis only: that is a sweep, ``inversion``'s to judge, while probing a record's
    neighbourhood moves it in many directions."""
    rng = np.random.default_rng(6)
    column = 3
    grid = np.quantile(cancer.pool[:, column], np.linspace(0.1, 0.9, 10))
    rows = []
    for record in cancer.pool[rng.choice(len(cancer.pool), size=6, replace=False)]:
        for value in grid:
            swept = record.copy()
            swept[column] = value
            rows.append(swept)
    report = run(
        MembershipDetector(profile=cancer.profile, probed_records=2, cluster_size=6),
        cancer.stream(np.array(rows), "analyst"),
    )
    assert worst(report) < Severity.MEDIUM
    probes = noise_robustness_probes(cancer, cancer.pool[:6], k=9)
    probing = run(
        MembershipDetector(profile=cancer.profile, probed_records=2, cluster_size=6), cancer.stream(probes, "prober")
    )
    assert first_at(probing) is not None, "the same budget spent around the records in many directions is caught"
