"""Far-cohort linkage: an equation-solving extraction of d + 1 uniformly random inputs split
over 20 keys (one or two queries each) becomes one actor and is detected at ``medium``;
customers who start together, customers whose only query is an odd record, what-if users
resending one, and the same split started one key every few minutes stay apart."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from querywarden.calibrate import calibrate
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, Interaction, Severity, Signal
from querywarden.detectors.linkage import LinkageDetector
from querywarden.plugins import load_detectors
from tabular_victim import span_profile

T0 = 1_764_320_000.0
KEYS = 20


@pytest.fixture(scope="module")
def tabular() -> tuple[ModelProfile, np.ndarray]:
    x, _ = load_breast_cancer(return_X_y=True)
    return span_profile(x[np.random.default_rng(0).permutation(len(x))], 200)


@pytest.fixture(scope="module")
def calibrated(tabular: tuple) -> dict:
    """Linkage's parameters calibrated on other customers of the same model."""
    profile, pool = tabular
    load_detectors()
    benign = sorted(_customers(pool, 60, seed=99, spread=3600.0), key=lambda it: it.ts)
    return dict(calibrate(benign, {"m": profile}, [DetectorSpec("linkage")]).params_by_detector()["linkage"])


def _query(principal: str, n: int, ts: float, row: np.ndarray) -> Interaction:
    return Interaction(
        id=f"{principal}-{ts}",
        ts=ts,
        principal=principal,
        model="m",
        client=Client(ip=f"{11 + n % 200}.{(n * 7) % 250}.{n % 13}.{n % 250 + 1}", user_agent=f"agent/{n % 9}"),
        features=row,
    )


def _uniform(profile: ModelProfile, rng: np.random.Generator, n: int) -> np.ndarray:
    lo, hi = np.array(profile.ranges).T
    return np.asarray(lo + (hi - lo) * rng.random((n, len(lo))))


def _split(profile: ModelProfile, seed: int, *, queries: int = 31, gap: float = 0.2, start: float = T0) -> list:
    """``queries`` uniformly random inputs, one per request ``gap`` s apart, round-robin over 20 keys."""
    rows = _uniform(profile, np.random.default_rng(seed), queries)
    return [_query(f"sybil-{i % KEYS:02d}", 1000 + i % KEYS, start + gap * i, rows[i]) for i in range(queries)]


def _customers(pool: np.ndarray, n: int, seed: int, *, start: float = T0 - 30.0, spread: float = 60.0) -> list:
    """``n`` customers starting within ``spread`` s, each scoring 5-30 natural records a few seconds apart."""
    rng = np.random.default_rng(seed)
    stream = []
    for c in range(n):
        t = start + spread * rng.random()
        for row in pool[rng.integers(len(pool), size=int(rng.integers(5, 31)))]:
            stream.append(_query(f"cust-{c:03d}", c, t, row))
            t += float(rng.uniform(1.0, 8.0))
    return stream


def _engine(profile: ModelProfile, params: dict, *names: str) -> Engine:
    """The engine with linkage at ``params`` and the other detectors ``names`` at their defaults."""
    load_detectors()
    return Engine({"m": profile}, detectors=[DetectorSpec("linkage", params), *(DetectorSpec(n) for n in names)])


def _run(eng: Engine, stream: list) -> list:
    findings = []
    for it in sorted(stream, key=lambda it: it.ts):
        findings += eng.process(it).findings
    return findings


def test_a_split_of_d_plus_one_random_inputs_is_one_actor_and_detected(tabular: tuple, calibrated: dict) -> None:
    profile, pool = tabular
    eng = _engine(profile, calibrated, "ood")
    findings = _run(eng, _split(profile, 1) + _customers(pool, 40, seed=2))
    sybils = {f"sybil-{k:02d}" for k in range(KEYS)}
    assert set(eng.actors.members("sybil-00")) == sybils
    assert all(eng.actors.actor_of(f"cust-{c:03d}") is None for c in range(40))
    caught = [f for f in findings if f.severity >= Severity.MEDIUM]
    assert caught and caught[0].detectors == ("ood",)
    assert caught[0].technique["id"] == "AML.T0024.002"
    assert set(caught[0].principals) <= sybils and caught[0].actor == eng.actors.actor_of("sybil-00")


def test_keys_sending_their_queries_back_to_back_are_one_actor(tabular: tuple, calibrated: dict) -> None:
    """Each key sends its two or three random inputs at once, the next key a second later."""
    profile, pool = tabular
    rows = _uniform(profile, np.random.default_rng(9), 50)
    stream, i = [], 0
    for k in range(KEYS):
        for _ in range(2 + k % 2):
            stream.append(_query(f"seq-{k:02d}", 1000 + k, T0 + k + 0.01 * i, rows[i]))
            i += 1
    eng = _engine(profile, calibrated)
    _run(eng, stream + _customers(pool, 30, seed=10))
    # a key with one draw nearer the reference than the off-manifold cut is no member (a blind spot)
    shift, inv_width, mean, inv_sd, cut, _ = LinkageDetector(profile=profile)._reference
    u = np.clip(rows * inv_width - shift, -1, 2)
    near = {it.principal for it, z2 in zip(stream, (((u - mean) * inv_sd) ** 2).mean(axis=1), strict=True) if z2 <= cut}
    assert near == {"seq-08"}
    assert set(eng.actors.members("seq-00")) == {f"seq-{k:02d}" for k in range(KEYS)} - near
    assert all(eng.actors.actor_of(f"cust-{c:03d}") is None for c in range(30))


def test_without_the_cohort_the_split_is_neither_grouped_nor_detected(tabular: tuple, calibrated: dict) -> None:
    """The same traffic with cohort linkage off: every key holds one or two queries, too few
    for any other evidence."""
    profile, pool = tabular
    eng = _engine(profile, {**calibrated, "cohort_weight": 0.0}, "ood")
    findings = _run(eng, _split(profile, 1) + _customers(pool, 40, seed=2))
    assert eng.actors.actors() == {}
    assert [f for f in findings if f.severity >= Severity.MEDIUM] == []


def test_the_link_says_why(tabular: tuple, calibrated: dict) -> None:
    profile, _ = tabular
    det = LinkageDetector(profile=profile, **calibrated)
    signals: list[Signal] = []
    for it in _split(profile, 3):
        signals += det.update(it)
    cohort = [s for s in signals if s.evidence["link"] == "cohort"]
    assert cohort, "the third confirmed key links the cohort"
    first = cohort[0]
    assert first.link_weight == 3.0 and first.severity == Severity.INFO
    assert first.evidence["confirmed_keys"] == 3
    assert first.evidence["far_ratio"] >= first.evidence["far_bar"] == round(calibrated["far_ratio"], 2)
    assert 0 < first.evidence["began_within_s"] <= 120.0
    # the keys that sent one query so far, begun after the confirming key, are named too
    assert len(first.related) == KEYS - 1


def test_keys_started_minutes_apart_are_not_a_cohort(tabular: tuple, calibrated: dict) -> None:
    """The same 31 inputs with one request every three minutes: no two keys begin within the
    cohort window (the documented evasion: it costs the attacker an hour)."""
    profile, _ = tabular
    eng = _engine(profile, calibrated)
    _run(eng, _split(profile, 1, gap=180.0))
    assert eng.actors.actors() == {}


def test_customers_whose_only_query_is_an_odd_record_are_not_linked(tabular: tuple, calibrated: dict) -> None:
    """Thirty customers each send one far-off record within a minute (none confirms with a
    second), next to natural customers."""
    profile, pool = tabular
    rng = np.random.default_rng(4)
    odd = [_query(f"odd-{c:02d}", 500 + c, T0 + 2.0 * c, row) for c, row in enumerate(_uniform(profile, rng, 30))]
    eng = _engine(profile, calibrated)
    _run(eng, odd + _customers(pool, 30, seed=5))
    assert eng.actors.actors() == {}


def test_what_if_users_resending_an_odd_record_are_not_confirmed(tabular: tuple, calibrated: dict) -> None:
    """Twelve customers starting within a minute, each sending one far-off record and then
    edits of one or two fields of it: an edit ends the membership."""
    profile, _ = tabular
    rng = np.random.default_rng(6)
    stream = []
    for c, row in enumerate(_uniform(profile, rng, 12)):
        t = T0 + 5.0 * c
        for _ in range(10):
            stream.append(_query(f"whatif-{c:02d}", 700 + c, t, row.copy()))
            cols = rng.choice(len(row), size=int(rng.integers(1, 3)), replace=False)
            row[cols] = _uniform(profile, rng, 1)[0][cols]
            t += float(rng.uniform(2.0, 6.0))
    eng = _engine(profile, calibrated)
    _run(eng, stream)
    assert eng.actors.actors() == {}


def test_a_customer_appearing_while_the_split_runs_is_not_pulled_in(tabular: tuple, calibrated: dict) -> None:
    """A customer whose first query is a far-off record, sent after the split's keys began
    their second round, is no key of its first round."""
    profile, _ = tabular
    late = _query("late-customer", 900, T0 + 4.3, _uniform(profile, np.random.default_rng(7), 1)[0])
    eng = _engine(profile, calibrated)
    _run(eng, [*_split(profile, 1), late])
    assert len(eng.actors.members("sybil-00")) == KEYS
    assert eng.actors.actor_of("late-customer") is None


def test_calibration_puts_the_bar_above_benign_first_queries(tabular: tuple, calibrated: dict) -> None:
    profile, pool = tabular
    load_detectors()
    benign = sorted(_customers(pool, 60, seed=8, spread=3600.0), key=lambda it: it.ts)
    det = LinkageDetector(profile=profile)
    for it in benign:
        det.update(it)
    stats = det.calibration()
    assert len(stats["far_ratio"].values) == 60 and stats["far_ratio"].floor == 1.0
    assert all(0.0 <= v < 1.0 for v in stats["far_ratio"].values)  # no customer's first two queries both far
    assert max(stats["cohort_keys"].values) == 0.0  # no customer confirmed in any far cohort
    result = calibrate(benign, {"m": profile}, [DetectorSpec("linkage")])
    params = result.params_by_detector()["linkage"]
    assert params["far_ratio"] >= max(1.0, max(stats["far_ratio"].values))
    assert params["cohort_keys"] == 3


def test_parameters_are_checked(tabular: tuple, calibrated: dict) -> None:
    profile, _ = tabular
    for bad in ({"cohort_keys": 1}, {"far_ratio": 0.5}, {"cohort_weight": -1.0}, {"cohort_window": -1.0}):
        with pytest.raises(ValueError, match="cohort"):
            LinkageDetector(profile=profile, **bad)
