"""Inversion: confidence-ascent chains and single-record sweeps are caught; customers are not.

Victims are trained here on sklearn's bundled datasets; attacks are short simulations of
how MI-Face and Fredrikson-style attribute inversion query a black box.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from querywarden.bench.scenario import Victim as BenchVictim
from querywarden.bench.victims import load_victim
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Interaction, Output, Severity, Signal
from querywarden.detectors.inversion import InversionDetector, SortedScan, probabilities
from querywarden.plugins import load_detectors

T0 = 1_800_000_000.0


class Victim:
    def __init__(self, profile: ModelProfile, model: object, pool: np.ndarray) -> None:
        self.profile, self.model, self.pool = profile, model, pool
        lo, hi = profile.bounds()  # type: ignore[misc]
        self.lo, self.hi = lo, hi

    def proba(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(rows))  # type: ignore[attr-defined]

    def stream(self, rows: np.ndarray, principal: str, t0: float = T0, dt: float = 0.05) -> list[Interaction]:
        probs = self.proba(rows)
        return [
            Interaction(
                id=f"{principal}-{i}",
                ts=t0 + i * dt,
                principal=principal,
                model=self.profile.id,
                features=np.asarray(rows[i], dtype=np.float64),
                output=Output(probabilities=probs[i]),
            )
            for i in range(len(rows))
        ]


@pytest.fixture(scope="module")
def digits() -> Victim:
    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
    profile = ModelProfile(
        id="digits",
        input_kind=InputKind.IMAGE,
        n_features=64,
        shape=(8, 8),
        ranges=tuple((0.0, 16.0) for _ in range(64)),
        classes=tuple(str(c) for c in range(10)),
        reference=x[1000:1400],
    )
    return Victim(profile, model, x[1400:])


@pytest.fixture(scope="module")
def cancer() -> Victim:
    data = load_breast_cancer()
    x, y = data.data, data.target
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x[:300], y[:300])
    profile = ModelProfile(
        id="cancer",
        n_features=30,
        feature_names=tuple(str(n) for n in data.feature_names),
        ranges=tuple((float(lo), float(hi)) for lo, hi in zip(x.min(0), x.max(0), strict=True)),
        classes=("malignant", "benign"),
        reference=x[300:450],
    )
    return Victim(profile, model, x[450:])


def run(det: InversionDetector, stream: list[Interaction]) -> list[Signal]:
    out: list[Signal] = []
    for it in stream:
        out.extend(det.update(it))
    return out


def first_at(signals: list[Signal], severity: Severity = Severity.MEDIUM) -> int | None:
    for s in signals:
        if s.severity >= severity:
            return int(s.interaction_id.rsplit("-", 1)[1]) + 1
    return None


def worst(signals: list[Signal]) -> Severity:
    return max((s.severity for s in signals), default=Severity.INFO)


# -- attack simulations -----------------------------------------------------------------
def miface_finite_differences(v: Victim, target: int, steps: int, h: float = 0.01, lr: float = 0.1) -> np.ndarray:
    """MI-Face over a black box: each step probes the centre ±h along every pixel."""
    width = v.hi - v.lo
    c = v.lo.copy()
    rows = []
    for _ in range(steps):
        probes = [c]
        for j in range(c.shape[0]):
            e = np.zeros_like(c)
            e[j] = h * width[j]
            probes += [np.clip(c + e, v.lo, v.hi), np.clip(c - e, v.lo, v.hi)]
        p = v.proba(np.array(probes))[:, target]
        rows += probes
        g = (p[1::2] - p[2::2]) / (2 * h)
        c = np.clip(c + lr * width * g / max(float(np.linalg.norm(g)), 1e-12), v.lo, v.hi)
    return np.array(rows)


def miface_random_directions(v: Victim, target: int, steps: int, pairs: int = 20, seed: int = 0) -> np.ndarray:
    """MI-Face with a random-direction (NES) gradient estimate: no one-pixel probes at all."""
    rng = np.random.default_rng(seed)
    width = v.hi - v.lo
    c = v.lo + 0.5 * width
    rows = []
    for _ in range(steps):
        u = rng.normal(size=(pairs, c.shape[0]))
        probes = np.vstack(
            [c[None], np.clip(c + 0.01 * width * u, v.lo, v.hi), np.clip(c - 0.01 * width * u, v.lo, v.hi)]
        )
        p = v.proba(probes)[:, target]
        rows.append(probes)
        g = ((p[1 : 1 + pairs] - p[1 + pairs :])[:, None] * u).mean(axis=0)
        c = np.clip(c + 0.1 * width * g / max(float(np.linalg.norm(g)), 1e-12), v.lo, v.hi)
    return np.vstack(rows)


def attribute_sweep(records: np.ndarray, feature: int, values: np.ndarray) -> np.ndarray:
    rows = []
    for r in records:
        for value in values:
            x = r.copy()
            x[feature] = value
            rows.append(x)
    return np.array(rows)


# -- attacks are caught -----------------------------------------------------------------
def test_miface_with_finite_differences_is_caught_within_one_gradient(digits: Victim) -> None:
    rows = miface_finite_differences(digits, target=3, steps=20)
    assert digits.proba(rows[-1:])[0, 3] > 0.9, "the simulated attack must actually invert the class"
    signals = run(InversionDetector(profile=digits.profile), digits.stream(rows, "thief"))
    at = first_at(signals)
    assert at is not None and at <= 129, f"first medium at {at}"
    assert worst(signals) == Severity.HIGH
    assert signals[0].evidence["pattern"] == "feature_sweep"
    assert signals[0].technique == "AML.T0024.001"


def test_confidence_ascent_chain_alone_catches_random_direction_miface(digits: Victim) -> None:
    rows = miface_random_directions(digits, target=3, steps=120)
    assert digits.proba(rows[-1:])[0, 3] > 0.9
    det = InversionDetector(profile=digits.profile, max_edited=0)  # no one-pixel probes to lean on
    signals = run(det, digits.stream(rows, "thief"))
    at = first_at(signals)
    assert at is not None and at <= 0.1 * len(rows), f"first medium at {at} of {len(rows)}"
    first = next(s for s in signals if s.severity >= Severity.MEDIUM)
    assert first.evidence["pattern"] == "confidence_ascent"
    assert first.evidence["target_class"] == "3"
    assert first.evidence["confidence_climb"] >= 0.1
    assert first.technique == "AML.T0024.001" and "runner_up" not in first.evidence
    assert worst(signals) == Severity.HIGH


def test_a_binary_search_to_the_boundary_is_named_boundary_probing_not_inversion(cancer: Victim) -> None:
    """HopSkipJump's binary search from the target's side (ART's, in the held-out benchmark)
    climbs the other class's confidence record after record up to the boundary, each step
    half the last; an optimiser's steps keep their length."""
    model = cancer.model
    labels = model.predict(cancer.pool)  # type: ignore[attr-defined]
    det = InversionDetector(profile=cancer.profile, max_edited=0, chain_records=8)
    rows = []
    for i in range(3):
        x0 = cancer.pool[i]
        far = cancer.pool[int(np.flatnonzero(labels != labels[i])[0])]
        lo, hi = 0.0, 1.0
        for _ in range(40):  # where the boundary lies (not sent)
            t = (lo + hi) / 2
            lo, hi = (t, hi) if model.predict((x0 + t * (far - x0))[None])[0] == labels[i] else (lo, t)  # type: ignore[attr-defined]
        rows.append(x0)
        rows.extend(x0 + (lo - lo / 2**k) * (far - x0) for k in range(1, 21))  # each midpoint on the target's side
    signals = run(det, cancer.stream(np.array(rows), "prober"))
    ascents = [s for s in signals if s.evidence["pattern"] == "confidence_ascent"]
    assert ascents
    assert all(s.technique == "AML.T0043" and s.evidence["runner_up"] == "AML.T0024.001" for s in ascents)


def test_decoys_interleaved_with_the_ascent_do_not_break_the_chain(digits: Victim) -> None:
    steps = miface_random_directions(digits, target=5, steps=80)
    decoys = digits.pool[np.random.default_rng(4).integers(0, len(digits.pool), len(steps))]
    rows = np.empty((2 * len(steps), 64))
    rows[0::2], rows[1::2] = steps, decoys
    det = InversionDetector(profile=digits.profile, max_edited=0)
    signals = run(det, digits.stream(rows, "thief"))
    at = first_at(signals)
    assert at is not None and at <= 0.1 * len(rows), f"first medium at {at} of {len(rows)}"
    assert signals[0].evidence["pattern"] == "confidence_ascent"


def test_fredrikson_sweep_of_one_record_is_caught(cancer: Victim) -> None:
    feature = 3
    values = np.linspace(cancer.lo[feature], cancer.hi[feature], 20)
    rows = attribute_sweep(cancer.pool[:1], feature, values)
    signals = run(InversionDetector(profile=cancer.profile), cancer.stream(rows, "thief"))
    at = first_at(signals)
    assert at is not None and at <= 13
    first = next(s for s in signals if s.severity >= Severity.MEDIUM)
    assert first.evidence["features_changed"] == ["mean area"]


def test_binary_attribute_swept_over_many_records_is_caught(cancer: Victim) -> None:
    """Two values per victim is a what-if per record, but the same feature over many records is not."""
    feature = 5
    values = np.array([cancer.lo[feature], cancer.hi[feature]])
    rows = attribute_sweep(cancer.pool[:40], feature, values)
    signals = run(InversionDetector(profile=cancer.profile), cancer.stream(rows, "thief"))
    at = first_at(signals)
    assert at is not None and at <= 14
    assert next(s for s in signals if s.severity >= Severity.MEDIUM).evidence["pattern"] == "record_sweeps"
    assert worst(signals) == Severity.HIGH


def test_natural_twins_one_after_the_other_are_not_a_sweep(cancer: Victim) -> None:
    """Crowded data (one-hot tabular) holds records that differ in one feature, and a batch
    sends them one after the other by chance; their differing values do not recur, a sweep's do."""
    feature = 5
    rng = np.random.default_rng(3)
    others = rng.permutation(cancer.pool[:, feature])[:40]
    twins = []
    for r, value in zip(cancer.pool[:40], others, strict=True):
        twin = r.copy()
        twin[feature] = value
        twins += [r, twin]
    det = InversionDetector(profile=cancer.profile)
    assert worst(run(det, cancer.stream(np.array(twins), "batch"))) < Severity.MEDIUM


def test_records_re_sent_with_a_rounded_field_are_not_a_sweep(cancer: Victim) -> None:
    """A client that re-sends its records with one field rounded sets the same value on the
    same record every time: one record, however often, and no two records share the value."""
    feature = 3
    rows = []
    for _ in range(3):
        for r in cancer.pool[:40]:
            rounded = r.copy()
            rounded[feature] = float(f"{r[feature]:.2g}")
            rows += [r, rounded]
    det = InversionDetector(profile=cancer.profile)
    assert worst(run(det, cancer.stream(np.array(rows), "client"))) < Severity.MEDIUM


def test_one_pixel_of_many_photos_is_not_a_record_sweep(digits: Victim) -> None:
    rows = []
    for photo in digits.pool[:60]:
        edited = photo.copy()
        edited[20] = 0.0 if photo[20] else 16.0
        rows += [photo, edited]
    det = InversionDetector(profile=digits.profile)
    signals = run(det, digits.stream(np.array(rows), "photo-app"))
    assert all(s.evidence["pattern"] != "record_sweeps" for s in signals)


def test_signals_on_rises_only_not_every_query(digits: Victim) -> None:
    rows = miface_finite_differences(digits, target=5, steps=10)
    signals = run(InversionDetector(profile=digits.profile), digits.stream(rows, "thief"))
    assert 1 <= len(signals) <= 6


# -- customers are not ------------------------------------------------------------------
def test_natural_traffic_and_batch_scoring_stay_quiet(digits: Victim, cancer: Victim) -> None:
    for v in (digits, cancer):
        det = InversionDetector(profile=v.profile)
        rng = np.random.default_rng(0)
        rows = v.pool[rng.integers(0, len(v.pool), 3000)]
        assert run(det, v.stream(rows, "batch")) == []


def test_what_if_user_editing_two_fields_a_handful_of_times(cancer: Victim) -> None:
    rng = np.random.default_rng(1)
    base = cancer.pool[10]
    rows = [base]
    for field in (0, 22):
        for value in rng.choice(cancer.pool[:, field], 5, replace=False):
            x = rows[-1].copy()
            x[field] = value
            rows.append(x)
    det = InversionDetector(profile=cancer.profile)
    assert worst(run(det, cancer.stream(np.array(rows), "customer", dt=20.0))) < Severity.MEDIUM


def test_mildly_edited_copies_and_retries_of_a_photo(digits: Victim) -> None:
    photo = digits.pool[7].reshape(8, 8)
    rows = []
    for i in range(40):
        img = np.roll(photo, shift=(i % 3) - 1, axis=1) if i % 2 else photo * (0.9 + 0.005 * i)
        if i % 5 == 0:
            img = img.copy()
            img[0, :] = 0.0  # cropped border
        rows += [np.clip(img, 0, 16).ravel()] * 2  # every request retried once
    det = InversionDetector(profile=digits.profile)
    assert worst(run(det, digits.stream(np.array(rows), "photo-app", dt=3.0))) < Severity.MEDIUM


def test_exact_duplicates_are_ignored(cancer: Victim) -> None:
    rows = np.repeat(cancer.pool[:3], 50, axis=0)
    det = InversionDetector(profile=cancer.profile)
    assert run(det, cancer.stream(rows, "retry")) == []


# -- contract ---------------------------------------------------------------------------
def test_calibration_reports_benign_worst_values(cancer: Victim) -> None:
    det = InversionDetector(profile=cancer.profile)
    run(det, cancer.stream(cancer.pool[:200], "a"))
    values = np.linspace(cancer.lo[2], cancer.hi[2], 8)
    run(det, cancer.stream(attribute_sweep(cancer.pool[:1], 2, values), "b"))
    cal = det.calibration()
    assert set(cal) == {"chain_records", "sweep_variants", "swept_records"}
    assert set(cal) <= set(det.param_names())
    assert max(cal["sweep_variants"].values) == 7.0  # 8 values of one record: the base and 7 variants


def test_calibrated_threshold_changes_what_fires(cancer: Victim) -> None:
    values = np.linspace(cancer.lo[3], cancer.hi[3], 20)
    rows = attribute_sweep(cancer.pool[:1], 3, values)
    assert worst(run(InversionDetector(profile=cancer.profile, sweep_variants=30), cancer.stream(rows, "x"))) < 2
    assert worst(run(InversionDetector(profile=cancer.profile, sweep_variants=10), cancer.stream(rows, "x"))) >= 2


def test_snapshot_restore_continues_the_same(digits: Victim) -> None:
    rows = miface_finite_differences(digits, target=1, steps=4)
    stream = digits.stream(rows, "thief")
    a = InversionDetector(profile=digits.profile)
    run(a, stream[:60])
    b = a.clone()
    assert isinstance(b, InversionDetector)
    b.restore(a.snapshot())
    assert [s.evidence for s in run(a, stream[60:])] == [s.evidence for s in run(b, stream[60:])]


def test_malformed_and_label_only_inputs(digits: Victim) -> None:
    det = InversionDetector(profile=digits.profile)
    odd = [
        Interaction(id="a", ts=T0, principal="x", model="digits"),
        Interaction(id="b", ts=T0, principal="x", model="digits", features=np.zeros(3)),
        Interaction(id="c", ts=T0, principal="x", model="digits", features=np.full(64, np.nan)),
        Interaction(id="d", ts=T0, principal="x", model="digits", features=digits.pool[0], output=Output(label=3)),
        Interaction(
            id="e",
            ts=T0,
            principal="x",
            model="digits",
            features=digits.pool[1],
            output=Output(probabilities=np.ones(1)),
        ),
    ]
    for it in odd:
        assert det.update(it) == []
    assert probabilities(odd[4]) is None
    assert det.state_size() == 1


def test_principal_cap_bounds_state(cancer: Victim) -> None:
    det = InversionDetector(profile=cancer.profile, max_principals=10)
    for i, it in enumerate(cancer.stream(cancer.pool[:50], "p")):
        det.update(Interaction(id=it.id, ts=it.ts, principal=f"p{i}", model=it.model, features=it.features))
    assert det.state_size() == 10


def test_invalid_parameters_are_refused(cancer: Victim) -> None:
    with pytest.raises(ValueError, match="inversion"):
        InversionDetector(profile=cancer.profile, sweep_variants=1)


def test_registered_as_a_plugin() -> None:
    assert load_detectors()["inversion"] is InversionDetector


# -- one-hot tabular data: natural near-duplicates abound -------------------------------
@pytest.fixture(scope="module")
def adult() -> BenchVictim:
    return load_victim("adult")


def _adult_stream(v: BenchVictim, rows: np.ndarray, principal: str) -> list[Interaction]:
    probs = v.predict_proba(rows)
    return [
        Interaction(
            id=f"{principal}-{i}",
            ts=T0 + i,
            principal=principal,
            model=v.profile.id,
            features=rows[i],
            output=Output(probabilities=probs[i]),
        )
        for i in range(len(rows))
    ]


def test_adult_batch_of_natural_records_stays_quiet(adult: BenchVictim) -> None:
    rows = np.vstack([adult.benign_pool, adult.x_test])
    det = InversionDetector(profile=adult.profile)
    assert worst(run(det, _adult_stream(adult, rows, "batch"))) < Severity.MEDIUM


def test_adult_sex_inferred_for_many_records_is_caught(adult: BenchVictim) -> None:
    """Fredrikson's targets are people in the training data: each record, sent with either
    value of sex, is a training row with one of them."""
    (col,) = adult.sensitive
    rows = attribute_sweep(adult.x_train[:30], col, np.array([0.0, 1.0]))
    signals = run(InversionDetector(profile=adult.profile), _adult_stream(adult, rows, "thief"))
    at = first_at(signals)
    assert at is not None and at <= 14
    first = next(s for s in signals if s.severity >= Severity.MEDIUM)
    names = adult.profile.feature_names
    assert names is not None and first.evidence["features_changed"] == [names[col]]
    assert int(first.evidence["training_rows_swept"]) >= 3


def test_sweep_over_records_the_model_never_saw_is_exposure_only(adult: BenchVictim) -> None:
    """With training digests, the same sweep over records outside the training data infers
    nothing about a training member: reported at low (a sensitivity analysis), and at medium
    again as soon as the profile carries no digests to tell."""
    (col,) = adult.sensitive
    rows = attribute_sweep(adult.attacker_pool[:30], col, np.array([0.0, 1.0]))
    stream = _adult_stream(adult, rows, "analyst")
    outside = run(InversionDetector(profile=adult.profile), stream)
    assert worst(outside) == Severity.LOW
    swept = [s for s in outside if "training_rows_swept" in s.evidence]
    assert swept, "the sweep is still reported"
    # adult holds duplicate people: a swept record may match a training row by chance
    assert all(int(s.evidence["training_rows_swept"]) < float(s.evidence["threshold"]) for s in swept)
    blind = msgspec.structs.replace(adult.profile, training_digests=None)
    at = first_at(run(InversionDetector(profile=blind), stream))
    assert at is not None and at <= 14


def test_sorted_batch_of_crowded_records_is_a_scan_not_a_sweep(adult: BenchVictim) -> None:
    """Sorted one-hot records are runs of neighbours one or two features apart: not probes."""
    rows = np.unique(np.vstack([adult.benign_pool, adult.x_test, adult.attacker_pool]), axis=0)
    for order in (rows, rows[np.lexsort(rows.T)]):  # ORDER BY the columns, and in reverse
        det = InversionDetector(profile=adult.profile)
        assert worst(run(det, _adult_stream(adult, order, "batch"))) < Severity.MEDIUM


def test_sorted_scan_needs_a_long_run_in_one_direction() -> None:
    scan = SortedScan()
    rising = [np.array([float(i), 0.0, 5.0 - i]) for i in range(40)]
    flags = [scan.scanning(x) for x in rising]
    assert not any(flags[:31]) and all(flags[32:])
    assert not scan.scanning(np.array([0.0, 0.0, 0.0])), "a step back breaks the run"
    back_and_forth = SortedScan()
    assert not any(back_and_forth.scanning(np.array([float(i % 2), 1.0])) for i in range(100))


def test_coordinate_probes_around_a_record_the_model_never_saw_are_still_caught() -> None:
    """The training-row rule is for sweeps of one or two features. An optimiser probing one
    coordinate after another (MI-Face on tabular inputs, a gradient estimate with a wide step)
    edits many features in turn around a point of its own, and stays ``medium``."""
    victim = load_victim("breast-cancer")
    assert victim.profile.training_digests is not None
    centre = victim.attacker_pool[3].copy()
    spread = victim.reference.std(axis=0)
    rows = [centre]
    for j in range(20):  # +h and -h on each coordinate in turn, h half a standard deviation
        for sign in (1.0, -1.0):
            probe = centre.copy()
            probe[j] += sign * 0.5 * spread[j]
            rows.append(probe)
    stream = _adult_stream(victim, np.array(rows), "optimiser")
    signals = run(InversionDetector(profile=victim.profile), stream)
    at = first_at(signals)
    assert at is not None and at <= 20, at
    sweep = [centre.copy() for _ in range(12)]  # the same budget on one feature: a sensitivity curve
    for i, row in enumerate(sweep):
        row[0] = victim.reference[:, 0].min() + i * spread[0] / 2
    curve = run(InversionDetector(profile=victim.profile), _adult_stream(victim, np.array([centre, *sweep]), "analyst"))
    assert worst(curve) == Severity.LOW


def test_a_drifting_feed_sets_chance_highs_not_an_ascent(cancer: Victim) -> None:
    """Readings drifting for hours set new highs about the square root of their number of
    times; over hundreds of steps that passes ``chain_records``. The chain diffuses like a
    random walk (see ``drift``), which an optimiser never does: reported at low."""
    rng = np.random.default_rng(12)
    spread = cancer.pool.std(axis=0)
    lo, hi = cancer.pool.min(axis=0), cancer.pool.max(axis=0)
    feed = [cancer.pool[5].copy()]
    for _ in range(1500):
        feed.append(np.clip(feed[-1] + 0.01 * spread * rng.normal(size=30), lo, hi))
    signals = run(InversionDetector(profile=cancer.profile, chain_records=8), cancer.stream(np.array(feed), "sensor"))
    ascent = [s for s in signals if s.evidence["pattern"] == "confidence_ascent"]
    assert ascent and worst(ascent) == Severity.LOW and all(s.evidence.get("drifting") for s in ascent)


def test_a_binary_search_from_training_rows_is_named_membership_inference(cancer: Victim) -> None:
    """With training digests, the same bisections started from three distinct training rows
    are label-only membership inference (a candidate list), named as every walk is."""
    from querywarden.core.profile import row_digests

    members = cancer.pool[:3]
    profile = msgspec.structs.replace(cancer.profile, training_digests=row_digests(members))
    model = cancer.model
    labels = model.predict(cancer.pool)  # type: ignore[attr-defined]
    rows = []
    for i in range(3):
        x0 = cancer.pool[i]
        far = cancer.pool[int(np.flatnonzero(labels != labels[i])[0])]
        lo, hi = 0.0, 1.0
        for _ in range(40):
            t = (lo + hi) / 2
            lo, hi = (t, hi) if model.predict((x0 + t * (far - x0))[None])[0] == labels[i] else (lo, t)  # type: ignore[attr-defined]
        rows.append(x0)
        rows.extend(x0 + (lo - lo / 2**k) * (far - x0) for k in range(1, 21))
    det = InversionDetector(profile=profile, max_edited=0, chain_records=8)
    ascents = [
        s for s in run(det, cancer.stream(np.array(rows), "prober")) if s.evidence["pattern"] == "confidence_ascent"
    ]
    assert ascents and ascents[-1].technique == "AML.T0024.000"
    assert int(ascents[-1].evidence["training_records"]) == 3
