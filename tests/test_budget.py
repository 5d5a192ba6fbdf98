"""The extraction budget ledger: what each principal and actor was given, exposure at ``low``.

A digits victim is trained here; extraction traffic is simulated with uniform random
queries (equation solving) and natural in-distribution records (Knockoff with natural data).
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Interaction, Output, Severity, Signal
from querywarden.detectors.budget import DAY, BudgetLedger
from querywarden.plugins import load_detectors

T0 = 1_800_000_000.0
FULL = math.log2(10) + 9 * 6 * math.log2(10)
"""Bits one full-precision 10-class probability vector discloses under the ledger's cap."""


class Victim:
    def __init__(self) -> None:
        x, y = load_digits(return_X_y=True)
        self.model = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
        self.profile = ModelProfile(
            id="digits",
            input_kind=InputKind.IMAGE,
            n_features=64,
            ranges=((0.0, 16.0),) * 64,
            classes=tuple(str(c) for c in range(10)),
            reference=x[1000:1400],
        )
        self.pool = x[1400:]

    def stream(
        self, rows: np.ndarray, principal: str, *, t0: float = T0, dt: float = 1.0, decimals: int | None = None
    ) -> list[Interaction]:
        probs = self.model.predict_proba(rows)
        if decimals is not None:
            probs = np.round(probs, decimals)
        return [
            Interaction(
                id=f"{principal}-{i}",
                ts=t0 + i * dt,
                principal=principal,
                model="digits",
                features=rows[i],
                output=Output(probabilities=probs[i]),
            )
            for i in range(len(rows))
        ]


@pytest.fixture(scope="module")
def victim() -> Victim:
    return Victim()


def run(det: BudgetLedger, stream: list[Interaction]) -> list[Signal]:
    out: list[Signal] = []
    for it in stream:
        out.extend(det.update(it))
    return out


def _one(det: BudgetLedger, output: Output, principal: str = "p") -> dict:
    det.update(Interaction(id="x", ts=T0, principal=principal, model="digits", features=np.zeros(64), output=output))
    ledger = det.ledger(principal)
    assert ledger is not None
    return ledger


# -- what one answer discloses ----------------------------------------------------------
def test_bits_follow_precision_and_form_of_the_answer(victim: Victim) -> None:
    p = victim.model.predict_proba(victim.pool[:1])[0]
    full = _one(BudgetLedger(profile=victim.profile), Output(probabilities=p))
    assert full["bits_disclosed"] == pytest.approx(FULL, abs=0.1)
    assert full["max_precision_decimals"] == 6
    two = _one(BudgetLedger(profile=victim.profile), Output(probabilities=np.round(p, 2)))
    revealed = min(int(np.count_nonzero(np.round(p, 2))), 9)
    assert two["bits_disclosed"] == pytest.approx(math.log2(10) + revealed * 2 * math.log2(10), abs=0.1)
    assert two["max_precision_decimals"] == 2
    top1 = np.zeros(10)
    top1[3] = 0.9
    hardened = _one(BudgetLedger(profile=victim.profile), Output(probabilities=top1))
    assert hardened["bits_disclosed"] == pytest.approx(math.log2(10) + math.log2(10), abs=0.1)
    label = _one(BudgetLedger(profile=victim.profile), Output(label="7"))
    assert label["bits_disclosed"] == pytest.approx(math.log2(10), abs=0.1)
    assert label["probability_outputs"] == 0 and label["classes_seen"] == 1
    assert label["mean_entropy_bits"] == 0.0
    assert full["mean_entropy_bits"] == pytest.approx(float(-(p[p > 0] * np.log2(p[p > 0])).sum()), abs=1e-3)


def test_answers_without_output_or_features(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile)
    assert det.update(Interaction(id="a", ts=T0, principal="p", model="digits", features=np.zeros(64))) == []
    assert det.ledger("p") is None
    odd = Interaction(id="b", ts=T0, principal="p", model="digits", features=np.zeros(3), output=Output(label=1))
    assert det.update(odd) == []
    ledger = det.ledger("p")
    assert ledger is not None and ledger["outputs"] == 1 and ledger["cells_visited"] == 0


# -- thresholds, severity and progress --------------------------------------------------
def test_crossing_the_daily_budget_is_low_exposure_with_progress_marks(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, daily_bits=50 * FULL)
    rows = victim.pool[np.arange(500) % len(victim.pool)]
    signals = run(det, victim.stream(rows, "scorer"))
    assert signals and all(s.severity == Severity.LOW for s in signals)
    daily = [s for s in signals if s.evidence["crossed"] == "daily_bits"]
    assert len(daily) == 4, "the crossing, then one signal per doubling: x2, x4, x8"
    for i, s in enumerate(daily):
        mark = 50 * FULL * 2**i
        assert mark <= s.evidence["bits_today"] < mark + FULL + 0.1
    ev = daily[0].evidence
    assert ev["scope"] == "principal" and ev["subject"] == "scorer"
    assert 50 <= ev["outputs"] <= 55
    assert ev["daily_threshold_bits"] == pytest.approx(50 * FULL, abs=0.1)
    assert daily[0].technique == "AML.T0024.002"


def test_rounded_outputs_take_longer_to_cross(victim: Victim) -> None:
    rows = victim.pool[:300]
    full = run(BudgetLedger(profile=victim.profile, daily_bits=50 * FULL), victim.stream(rows, "a"))
    rounded = run(BudgetLedger(profile=victim.profile, daily_bits=50 * FULL), victim.stream(rows, "a", decimals=1))
    assert full and not [s for s in rounded if s.evidence["crossed"] == "daily_bits"]


def test_budget_resets_each_day_and_the_population_sets_the_bar(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, min_answers=15, factor=2.0)
    assert det.threshold() == pytest.approx(15 * FULL)
    rng = np.random.default_rng(0)
    for c in range(60):  # customers with ~20 answers on day 0, then one more on day 1 to close the day
        rows = victim.pool[rng.integers(0, len(victim.pool), 20)]
        run(det, victim.stream(rows, f"cust-{c}", t0=T0 + c))
        run(det, victim.stream(rows[:1], f"cust-{c}", t0=T0 + DAY + c))
    learned = det.threshold()
    assert 20 * FULL < learned <= 2 * 64 * FULL, learned
    big = run(det, victim.stream(victim.pool[:200], "heavy", t0=T0 + DAY + 100))
    assert next(s.evidence["crossed"] for s in big) == "daily_bits"
    quiet = run(det, victim.stream(victim.pool[:15], "light", t0=T0 + DAY + 100))
    assert not [s for s in quiet if s.evidence["crossed"] == "daily_bits"]


def test_days_far_past_the_bar_do_not_raise_the_baseline(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, min_answers=1)
    for c in range(60):  # heavy principals, each five times over the floor: none learned
        run(det, victim.stream(victim.pool[:5], f"heavy-{c}", t0=T0))
        run(det, victim.stream(victim.pool[:1], f"heavy-{c}", t0=T0 + DAY))
    assert int(det._hist.sum()) == 0
    assert det.threshold() == pytest.approx(FULL)


def test_natural_and_synthetic_extraction_both_show_only_as_budget(victim: Victim) -> None:
    rng = np.random.default_rng(1)
    natural = victim.pool[rng.integers(0, len(victim.pool), 3000)]
    uniform = rng.uniform(0, 16, (3000, 64))
    for rows in (natural, uniform):
        det = BudgetLedger(profile=victim.profile)
        signals = run(det, victim.stream(rows, "thief", dt=0.1))
        assert signals, "3,000 full answers in a day pass the default floor of 2,000"
        assert max(s.severity for s in signals) == Severity.LOW
    ledger = det.ledger("thief")
    assert ledger is not None and ledger["off_reference_cells"] > ledger["reference_cells"]


def test_coverage_of_the_reference_space(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, coverage_share=0.3, daily_bits=1e12, fidelity=1.0)
    few = run(det, victim.stream(victim.pool[:5], "few"))
    assert few == []
    many = run(det, victim.stream(victim.pool[:300], "many"))
    assert [s.evidence["crossed"] for s in many] == ["coverage"]
    assert many[0].evidence["coverage_share"] >= 0.3
    ledger = det.ledger("many")
    assert ledger is not None and ledger["classes_seen"] == 10 and ledger["classes_total"] == 10


# -- the copy the answers allow ---------------------------------------------------------
def test_natural_answers_that_suffice_for_a_copy_raise_low_with_its_agreement(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, daily_bits=1e12, coverage_share=1.0)
    signals = run(det, victim.stream(victim.pool, "thief"))
    (sig,) = signals
    assert sig.severity == Severity.LOW and sig.evidence["crossed"] == "copy"
    assert 65 <= sig.evidence["copy_answers"] < len(victim.pool), "input dimension + 1 answers at least"
    assert sig.evidence["copy_skill"] >= 0.8 and "suffice for a copy" in sig.evidence["exposure"]
    # the estimate is what a 1-NN copy of the same answers really agrees on held-out inputs
    rows = victim.pool[: sig.evidence["copy_answers"]]
    thief = KNeighborsClassifier(n_neighbors=1).fit(rows, victim.model.predict(rows))
    held_out = victim.profile.reference
    real = float((thief.predict(held_out) == victim.model.predict(held_out)).mean())
    assert abs(sig.evidence["copy_agreement"] - real) <= 0.08


def test_answers_of_one_class_or_one_record_are_no_copy(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, daily_bits=1e12, coverage_share=1.0, fidelity_answers=10)
    run(det, victim.stream(victim.pool, "population"))  # the model's answers over natural inputs
    labels = victim.model.predict(victim.pool)
    sevens = victim.pool[labels == 7]
    assert run(det, victim.stream(np.vstack([sevens] * 8), "sevens")) == []
    ledger = det.ledger("sevens")
    assert ledger is not None and ledger["copy_skill"] < 0.2, "right on one class only"
    assert ledger["copy_answers"] == len(sevens), "exact repeats teach a copy nothing"


def test_repeats_sent_before_the_copy_is_judged_are_dropped_when_it_is(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, daily_bits=1e12, coverage_share=1.0, fidelity=1.0)
    rows = np.vstack([victim.pool[:40], victim.pool[:40], victim.pool[40:70]])  # 40 distinct, twice, then 30 more
    run(det, victim.stream(rows, "retrier"))
    ledger = det.ledger("retrier")
    assert ledger is not None and ledger["copy_answers"] == 70 and ledger["outputs"] == 110


def test_too_few_answers_never_count_as_a_copy(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, daily_bits=1e12, coverage_share=1.0, fidelity=0.01)
    assert run(det, victim.stream(victim.pool[:64], "few")) == []
    assert [s.evidence["crossed"] for s in run(det, victim.stream(victim.pool[64:80], "few", t0=T0 + 100))] == ["copy"]


def test_copies_are_bounded(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, copy_size=32, max_copies=3)
    for k in range(5):
        run(det, victim.stream(victim.pool[:100], f"p{k}"))
    assert det.copy_bytes() <= 3 * 32 * (64 * 4 + 16)


def test_odd_label_ids_are_counted_but_never_learned(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, daily_bits=1e12, coverage_share=1.0, fidelity_answers=2)
    for i, label in enumerate((10**12, -1, 10**12, 7)):
        out = Output(label=label)
        det.update(
            Interaction(id=f"l{i}", ts=T0 + i, principal="p", model="digits", features=victim.pool[i], output=out)
        )
    ledger = det.ledger("p")
    assert ledger is not None and ledger["outputs"] == 4 and ledger["copy_answers"] == 1


# -- actors -----------------------------------------------------------------------------
def test_actor_budget_adds_up_its_principals(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, daily_bits=100 * FULL)
    crossed = []
    for k in range(4):  # 60 answers per key, under the bar and short of a copy; 240 for the actor
        stream = victim.stream(victim.pool[60 * k : 60 * k + 60], f"key-{k}", t0=T0 + 1000 * k)
        head = [msgspec.structs.replace(it, actor=None) for it in stream[:10]]  # before clustering
        tail = [msgspec.structs.replace(it, actor="actor-1") for it in stream[10:]]
        signals = run(det, head)
        det.merge("actor-1", (f"key-{k}",))  # as the engine does when the key joins the actor
        signals += run(det, tail)
        assert all(s.evidence["scope"] == "actor" for s in signals)
        crossed += [s.evidence["crossed"] for s in signals]
    assert crossed.count("copy") == 1, "the keys' answers together suffice for a copy"
    actor = det.ledger(actor="actor-1")
    assert actor is not None and actor["outputs"] == 240
    assert 65 <= actor["copy_answers"] < 240, "a copy that suffices stops being measured"
    key = det.ledger("key-0")
    assert key is not None and key["outputs"] == 60
    assert det.state_size() == 5


def test_engine_sets_the_actor_and_the_finding_stays_low(victim: Victim) -> None:
    load_detectors()
    engine = Engine(
        {"digits": victim.profile}, detectors=[DetectorSpec("budget", {"daily_bits": 30 * FULL, "fidelity": 1.0})]
    )
    findings = []
    for it in victim.stream(victim.pool[:100], "scorer"):
        findings.extend(engine.process(it).findings)
    assert findings and all(f.severity == Severity.LOW for f in findings)
    assert 30 <= findings[0].evidence["budget"]["outputs"] <= 31
    (current,) = engine.risk.open_findings()
    assert 60 <= current.evidence["budget"]["outputs"] <= 62, "the doubling mark refreshed the evidence"
    assert engine.decision_for("scorer").action.value == "allow"


# -- contract ---------------------------------------------------------------------------
def test_calibration_reports_worst_day_and_coverage(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile)
    run(det, victim.stream(victim.pool[:10], "a"))
    run(det, victim.stream(victim.pool[:30], "b"))
    run(det, victim.stream(victim.pool[:5], "b", t0=T0 + DAY))
    cal = det.calibration()
    assert set(cal) == {"daily_bits", "coverage_share"}
    assert sorted(cal["daily_bits"].values) == pytest.approx([10 * FULL, 30 * FULL], rel=1e-6)
    assert all(0 <= v <= 1 for v in cal["coverage_share"].values)


def test_snapshot_restore_continues_the_same(victim: Victim) -> None:
    stream = victim.stream(victim.pool[:200], "a")
    a = BudgetLedger(profile=victim.profile, daily_bits=20 * FULL)
    run(a, stream[:50])
    b = a.clone()
    assert isinstance(b, BudgetLedger)
    b.restore(a.snapshot())
    assert [s.evidence for s in run(a, stream[50:])] == [s.evidence for s in run(b, stream[50:])]


def test_profile_without_ranges_or_reference_still_keeps_the_ledger() -> None:
    det = BudgetLedger(profile=ModelProfile(id="m", n_features=3, classes=("a", "b")))
    it = Interaction(
        id="a", ts=T0, principal="p", model="m", features=np.ones(3), output=Output(probabilities=np.array([0.3, 0.7]))
    )
    det.update(it)
    ledger = det.ledger("p")
    assert ledger is not None and ledger["cells_visited"] == 1 and ledger["reference_cells"] == 0
    assert set(det.calibration()) == {"daily_bits"}


def test_invalid_parameters_are_refused(victim: Victim) -> None:
    with pytest.raises(ValueError, match="budget"):
        BudgetLedger(profile=victim.profile, daily_bits=0)
    with pytest.raises(ValueError, match="budget"):
        BudgetLedger(profile=victim.profile, coverage_share=1.5)
    with pytest.raises(ValueError, match="fidelity"):
        BudgetLedger(profile=victim.profile, fidelity=0)
    with pytest.raises(ValueError, match="copy_size"):
        BudgetLedger(profile=victim.profile, copy_size=0)


def test_registered_as_a_plugin() -> None:
    assert load_detectors()["budget"] is BudgetLedger


def test_a_monitoring_probe_is_told_one_answer_not_a_days_budget(victim: Victim) -> None:
    det = BudgetLedger(profile=victim.profile, daily_bits=50 * FULL)
    probe = np.repeat(victim.pool[:1], 2 * 24 * 60, axis=0)  # one record every minute for two days
    assert run(det, victim.stream(probe, "probe", dt=60.0)) == []
    ledger = det.ledger("probe")
    assert ledger is not None and ledger["outputs"] == 1 and ledger["bits_disclosed"] == pytest.approx(FULL, abs=0.1)
    # a different answer to the same input is news (a model that samples, or was retrained)
    other = victim.stream(victim.pool[:1], "probe", t0=T0 + 3 * DAY, decimals=2)
    run(det, other)
    ledger = det.ledger("probe")
    assert ledger is not None and ledger["outputs"] == 2
