"""Linkage through the real engine: a split attack becomes one actor, customers behind one
NAT stay apart, and client evidence alone never merges anyone."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import querywarden.detectors
from querywarden.config import load_profile
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, InputKind, Interaction, Output, Severity, Signal
from querywarden.core.traffic import TrafficParser
from querywarden.detectors.linkage import LinkageDetector, _client_key
from querywarden.plugins import load_detectors

T0 = 1_764_320_000.0
NAT_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edg/131.0.0.0"


@pytest.fixture(scope="module")
def digits() -> tuple[ModelProfile, np.ndarray, LogisticRegression]:
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float64)
    model = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
    profile = ModelProfile(
        id="m",
        input_kind=InputKind.IMAGE,
        n_features=64,
        shape=(8, 8),
        ranges=tuple((0.0, 16.0) for _ in range(64)),
        classes=tuple(str(c) for c in range(10)),
        reference=x[1000:1300],
    )
    return profile, x[1300:], model


def make(rows: np.ndarray, who: list[tuple[str, str, str]], model: LogisticRegression, t0: float) -> list[Interaction]:
    """One interaction per row; ``who[i]`` is (principal, ip, user agent), times 2 s apart."""
    probs = model.predict_proba(rows)
    return [
        Interaction(
            id=f"r{t0}-{i}",
            ts=t0 + 2.0 * i,
            principal=who[i][0],
            model="m",
            client=Client(ip=who[i][1], user_agent=who[i][2]),
            features=rows[i],
            output=Output(probabilities=probs[i]),
        )
        for i in range(len(rows))
    ]


def engine(*names: str) -> Engine:
    load_detectors()
    return Engine({"m": PROFILE[0]}, detectors=[DetectorSpec(n) for n in names])


PROFILE: list[ModelProfile] = []


@pytest.fixture(autouse=True)
def _profile(digits: tuple) -> None:
    PROFILE[:] = [digits[0]]


def nat_customers(pool: np.ndarray, model: LogisticRegression, n: int, seed: int) -> list[Interaction]:
    """``n`` customers behind one corporate NAT IP and browser, each scoring natural digits."""
    rng = np.random.default_rng(seed)
    stream: list[Interaction] = []
    for c in range(n):
        k = int(rng.integers(5, 40))
        rows = pool[rng.integers(len(pool), size=k)]
        stream += make(rows, [(f"corp-{c:02d}", "198.51.100.23", NAT_AGENT)] * k, model, T0 + c * 37.0)
    stream.sort(key=lambda it: it.ts)
    return stream


def run_engine(eng: Engine, stream: list[Interaction]) -> list:
    findings = []
    for it in stream:
        findings += eng.process(it).findings
    return findings


def test_registered_under_its_name() -> None:
    assert load_detectors()["linkage"] is LinkageDetector


def test_client_key_uses_the_network_prefix_and_agent() -> None:
    assert _client_key("203.0.113.7", "ua") == _client_key("203.0.113.200", "ua") == "203.0.113.0/24|ua"
    assert _client_key("203.0.114.7", "ua") != _client_key("203.0.113.7", "ua")
    assert _client_key("203.0.113.7", "ua") != _client_key("203.0.113.7", "other")
    assert _client_key("2001:db8:1:2::1", "ua") == _client_key("2001:db8:1:ffff::9", "ua") == "2001:db8:1::/48|ua"
    assert _client_key("::ffff:203.0.113.9", "ua") == "203.0.113.0/24|ua"
    assert _client_key("not-an-ip", "ua") is None


def test_nat_customers_are_linked_once_per_pair_and_never_merged(digits: tuple) -> None:
    _, pool, model = digits
    eng = engine("linkage", "neardup")
    stream = nat_customers(pool, model, 50, seed=1)
    findings = run_engine(eng, stream)
    assert eng.actors.actors() == {}
    assert [f for f in findings if f.severity >= Severity.MEDIUM] == []
    det = eng.detectors("m")[0]
    signals: list[Signal] = []
    fresh = det.clone()
    for it in stream:
        signals += fresh.update(it)
    pairs = [tuple(sorted((s.principal, r))) for s in signals for r in s.related]
    assert pairs and len(pairs) == len(set(pairs))  # once per pair
    assert all(s.link_weight == 0.5 and s.severity == Severity.INFO for s in signals)


def test_random_queries_split_over_twenty_keys_become_one_actor(digits: tuple) -> None:
    """Equation-solving extraction (uniformly random inputs), round-robin over 20 keys with
    unrelated IPs and agents: no shared client, no near-duplicates, one synthetic style."""
    _, pool, model = digits
    eng = engine("linkage", "neardup")
    rng = np.random.default_rng(2)
    keys = [(f"sybil-{k:02d}", f"{20 + 9 * k}.{k * 7 % 250}.{k}.{k + 3}", f"agent-{k}") for k in range(20)]
    attack = make(rng.uniform(0, 16, size=(800, 64)), [keys[i % 20] for i in range(800)], model, T0 + 500)
    stream = sorted(nat_customers(pool, model, 20, seed=3) + attack, key=lambda it: it.ts)
    run_engine(eng, stream)
    actor = eng.actors.actor_of("sybil-00")
    assert actor is not None
    assert set(eng.actors.members("sybil-00")) == {k for k, _, _ in keys}
    assert all(eng.actors.actor_of(f"corp-{c:02d}") is None for c in range(20))


def test_an_attacker_behind_the_nat_is_not_merged_with_its_neighbours(digits: tuple) -> None:
    _, pool, model = digits
    eng = engine("linkage", "neardup")
    rng = np.random.default_rng(4)
    intruder = make(rng.uniform(0, 16, size=(200, 64)), [("intruder", "198.51.100.23", NAT_AGENT)] * 200, model, T0)
    stream = sorted(nat_customers(pool, model, 30, seed=5) + intruder, key=lambda it: it.ts)
    run_engine(eng, stream)
    assert eng.actors.actor_of("intruder") is None
    assert eng.actors.actors() == {}


def test_natural_principals_active_together_are_not_behaviour_linked(digits: tuple) -> None:
    profile, pool, model = digits
    det = LinkageDetector(profile=profile)
    rng = np.random.default_rng(6)
    stream: list[Interaction] = []
    for c in range(30):
        rows = pool[rng.integers(len(pool), size=60)]
        stream += make(rows, [(f"cust-{c}", f"203.0.{c}.9", f"ua-{c}")] * 60, model, T0 + c)
    stream.sort(key=lambda it: it.ts)
    signals = [s for it in stream for s in det.update(it)]
    assert signals == []


def test_jittered_synthetic_styles_still_match_but_different_styles_do_not(digits: tuple) -> None:
    profile, pool, model = digits
    det = LinkageDetector(profile=profile)
    rng = np.random.default_rng(7)
    uniform = rng.uniform(0, 16, size=(64, 64))
    low_noise = np.clip(pool[:64] + rng.normal(0, 0.4, size=(64, 64)), 0, 16)  # off the integer grid
    stream = make(uniform, [("a", "192.0.2.1", "x")] * 64, model, T0)
    stream += make(uniform[::-1], [("b", "198.18.0.1", "y")] * 64, model, T0 + 1)
    stream += make(low_noise, [("c", "203.0.113.1", "z")] * 64, model, T0 + 3)
    stream.sort(key=lambda it: it.ts)
    signals = [s for it in stream for s in det.update(it)]
    linked = {frozenset((s.principal, r)) for s in signals for r in s.related}
    assert frozenset(("a", "b")) in linked
    assert frozenset(("a", "c")) not in linked and frozenset(("b", "c")) not in linked
    assert all(s.link_weight == det.behaviour_weight for s in signals)


def test_campaigns_outside_the_horizon_are_not_linked(digits: tuple) -> None:
    profile, _, model = digits
    det = LinkageDetector(profile=profile, horizon=600.0)
    rng = np.random.default_rng(8)
    early = make(rng.uniform(0, 16, size=(40, 64)), [("early", "192.0.2.1", "x")] * 40, model, T0)
    late = make(rng.uniform(0, 16, size=(40, 64)), [("late", "198.18.0.1", "y")] * 40, model, T0 + 86_400)
    signals = [s for it in early + late for s in det.update(it)]
    assert signals == []


def test_without_reference_only_client_linkage_runs(digits: tuple) -> None:
    _, _, model = digits
    det = LinkageDetector(profile=ModelProfile(id="m", n_features=64))
    rng = np.random.default_rng(9)
    rows = rng.uniform(0, 16, size=(40, 64))
    who = [("p1", "192.0.2.1", "x"), ("p2", "192.0.2.77", "x")] * 20
    signals = [s for it in make(rows, who, model, T0) for s in det.update(it)]
    assert [(s.principal, s.related, s.evidence["link"]) for s in signals] == [("p2", ("p1",), "client")]


def test_state_is_bounded(digits: tuple) -> None:
    profile, _, model = digits
    det = LinkageDetector(profile=profile, max_principals=50, max_groups=20, pool_size=8)
    rng = np.random.default_rng(10)
    rows = rng.uniform(0, 16, size=(400, 64))
    who = [(f"k{i}", f"10.{i % 40}.0.1", "ua") for i in range(400)]
    for it in make(rows, who, model, T0):
        det.update(it)
    assert det.state_size() <= 50
    assert len(det._groups) <= 20 and len(det._pool) <= 8


def test_parameters_are_checked(digits: tuple) -> None:
    profile, _, _ = digits
    with pytest.raises(ValueError, match="synthetic_share"):
        LinkageDetector(profile=profile, synthetic_share=0.0)
    with pytest.raises(ValueError, match="tolerance"):
        LinkageDetector(profile=profile, tolerance=0.0)
    with pytest.raises(ValueError, match="burst"):
        LinkageDetector(profile=profile, burst=-1.0)
    with pytest.raises(ValueError, match="novelty"):
        LinkageDetector(profile=profile, novelty=1.5)


def test_shipped_samples_merge_the_split_attack_and_nobody_else() -> None:
    folder = Path(querywarden.detectors.__file__).parent / "samples" / "linkage"
    expect = tomllib.loads((folder / "expect.toml").read_text())
    profile = load_profile(expect["profile"], path=folder / "expect.toml")
    load_detectors()
    actors = {}
    for kind in ("positive", "negative"):
        eng = Engine({profile.id: profile}, detectors=[DetectorSpec("linkage", expect["params"])])
        parser = TrafficParser({profile.id: profile}, source=kind)
        with (folder / f"{kind}.jsonl").open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                for it in parser.parse(line, lineno):
                    eng.process(it)
        actors[kind] = sorted(sorted(m) for m in eng.actors.actors().values())
    assert actors["positive"] == [[f"sybil-{k:02d}" for k in range(20)]]
    assert actors["negative"] == []


def test_odd_values_fold_without_warnings(digits: tuple) -> None:
    profile, _, _ = digits
    det = LinkageDetector(profile=profile, min_queries=4)
    for i, v in enumerate([1e300, -1e300, np.inf, np.nan, 8.5, 7.5]):
        det.update(Interaction(id=str(i), ts=T0 + i, principal="odd", model="m", features=np.full(64, v)))
    det.update(Interaction(id="short", ts=T0 + 9, principal="odd", model="m", features=np.zeros(3)))
    st = det._states.peek("odd")
    assert st is not None and st.n == 6 and st.queries == 7
    assert np.all(np.isfinite(st.signature()))


def test_exact_repeats_are_not_folded_again(digits: tuple) -> None:
    profile, pool, _ = digits
    det = LinkageDetector(profile=profile)
    for i in range(5):
        det.update(Interaction(id=str(i), ts=T0 + i, principal="retry", model="m", features=pool[0].copy()))
    st = det._states.peek("retry")
    assert st is not None and st.queries == 5 and st.n == 1


def test_share_tolerance_allows_for_sampling_noise(digits: tuple) -> None:
    profile, _, _ = digits
    det = LinkageDetector(profile=profile)
    a, b = np.array([0.375, 0.0, 0.30, 0.37]), np.array([0.75, 0.0, 0.31, 0.36])
    assert det._matches(a, 8, b, 8)  # 3/8 and 6/8 off-manifold: one source, eight draws each
    assert not det._matches(a, 400, b, 400)  # the same shares over many inputs are two styles
    assert not det._matches(np.array([1.0, 0.0, 0.3, 0.37]), 8, np.array([0.0, 1.0, 0.3, 0.37]), 8)
    assert not det._matches(a, 8, np.array([0.375, 0.0, 0.50, 0.37]), 8)  # mean differs


def _short_keys(rng: np.random.Generator, n_keys: int, rows: int, gap: float) -> list[tuple[str, np.ndarray, float]]:
    """``n_keys`` keys, each sending ``rows`` uniformly random inputs in one burst, ``gap`` s apart."""
    return [(f"k{k:02d}", rng.uniform(0, 16, size=(rows, 64)), T0 + 1000 + gap * k) for k in range(n_keys)]


def _bursts(keys: list[tuple[str, np.ndarray, float]], model: LogisticRegression) -> list[Interaction]:
    stream: list[Interaction] = []
    for k, (name, rows, t0) in enumerate(keys):
        probs = model.predict_proba(rows)
        stream += [
            Interaction(
                id=f"{name}-{i}",
                ts=t0 + 0.01 * i,
                principal=name,
                model="m",
                client=Client(ip=f"{30 + k}.{k}.7.9", user_agent=f"agent-{k}"),
                features=rows[i],
                output=Output(probabilities=probs[i]),
            )
            for i in range(len(rows))
        ]
    return sorted(stream, key=lambda it: it.ts)


def test_keys_that_start_together_in_one_style_merge_after_a_few_queries_each(digits: tuple) -> None:
    """Ten queries per key: one checkpoint only, so the shared onset is what merges them."""
    _, pool, model = digits
    eng = engine("linkage")
    keys = _short_keys(np.random.default_rng(11), 7, 10, gap=0.3)
    run_engine(eng, sorted(nat_customers(pool, model, 20, seed=12) + _bursts(keys, model), key=lambda it: it.ts))
    assert sorted(eng.actors.members("k00")) == [name for name, _, _ in keys]
    assert all(eng.actors.actor_of(f"corp-{c:02d}") is None for c in range(20))


def test_the_same_style_started_far_apart_needs_more_than_one_checkpoint(digits: tuple) -> None:
    _, _, model = digits
    eng = engine("linkage")
    keys = _short_keys(np.random.default_rng(13), 5, 10, gap=1200.0)  # within the horizon, not the onset window
    run_engine(eng, _bursts(keys, model))
    assert eng.actors.actors() == {}


def test_what_if_users_editing_an_odd_record_are_never_merged(digits: tuple) -> None:
    """Customers who each resend one unusual application with a field or two changed, all at
    once, next to a split random-query attack: the repeats must not make them look synthetic."""
    profile, pool, model = digits
    rng = np.random.default_rng(14)
    odd = pool[:12].copy()
    odd[:, :8] = 16.0  # a top band the reference never lights: far from the manifold
    stream: list[Interaction] = []
    for c in range(12):
        rows = np.repeat(odd[c : c + 1], 12, axis=0)
        for r in range(1, 12):
            cols = rng.choice(64, size=int(rng.integers(1, 3)), replace=False)
            rows[r, cols] = rng.integers(0, 17, size=len(cols))
        stream += make(rows, [(f"whatif-{c}", f"203.0.113.{c}", "ua")] * 12, model, T0 + 1000 + c)
    keys = _short_keys(rng, 6, 24, gap=0.3)
    eng = engine("linkage", "neardup")
    run_engine(eng, sorted(stream + _bursts(keys, model), key=lambda it: it.ts))
    assert all(eng.actors.actor_of(f"whatif-{c}") is None for c in range(12))
    assert sorted(eng.actors.members("k00")) == [name for name, _, _ in keys]
    det = LinkageDetector(profile=profile)
    for it in stream:
        det.update(it)
    assert all((st := det._states.peek(f"whatif-{c}")) is not None and st.n < 8 for c in range(12))


def _shifted(img: np.ndarray, step: int, axis: int) -> np.ndarray:
    """The photo moved one pixel, the uncovered edge left black."""
    out = np.roll(img, step, axis=axis)
    edge = 0 if step == 1 else -1
    if axis == 0:
        out[edge, :] = 0.0
    else:
        out[:, edge] = 0.0
    return out


def test_photo_edit_customers_starting_together_are_not_merged(digits: tuple) -> None:
    """An image app's customers each send a dozen mildly edited copies of one photo (shifts,
    cropped borders, brightness), all starting within a minute of each other."""
    _, pool, model = digits
    rng = np.random.default_rng(15)
    stream: list[Interaction] = []
    for c in range(16):
        photo = pool[c].reshape(8, 8)
        rows = []
        for _ in range(14):
            img = _shifted(photo, int(rng.choice([-1, 1])), int(rng.integers(0, 2)))
            img = np.clip(np.round(img * rng.uniform(0.8, 1.2)), 0, 16)
            rows.append(img.reshape(-1))
        stream += make(np.array(rows), [(f"photo-{c}", f"198.18.{c}.4", "app/2.1")] * 14, model, T0 + 3.0 * c)
    eng = engine("linkage", "neardup")
    run_engine(eng, sorted(stream, key=lambda it: it.ts))
    assert eng.actors.actors() == {}


def test_onset_needs_machine_pace_and_a_nearly_pure_synthetic_start(digits: tuple) -> None:
    """Keys that take minutes to send their first queries, or whose first queries are only
    partly synthetic, get behaviour links but no onset link."""
    profile, pool, model = digits
    rng = np.random.default_rng(16)
    slow: list[Interaction] = []
    mixed: list[Interaction] = []
    for k in range(4):
        rows = rng.uniform(0, 16, size=(10, 64))
        slow += [
            msgspec.structs.replace(it, ts=T0 + 5.0 * k + 40.0 * i)
            for i, it in enumerate(make(rows, [(f"slow-{k}", f"192.0.{k}.1", "x")] * 10, model, T0))
        ]
        half = np.vstack([rows[:5], pool[rng.integers(len(pool), size=5)]])[[0, 5, 1, 6, 2, 7, 3, 8, 4, 9]]
        mixed += make(half, [(f"mixed-{k}", f"198.18.{k}.1", "y")] * 10, model, T0 + 9000 + 0.5 * k)
    for stream in (slow, mixed):
        det = LinkageDetector(profile=profile)
        kinds = [s.evidence["link"] for it in sorted(stream, key=lambda it: it.ts) for s in det.update(it)]
        assert "onset" not in kinds
    det = LinkageDetector(profile=profile)
    fast = [s.evidence["link"] for it in _bursts(_short_keys(rng, 4, 10, gap=5.0), model) for s in det.update(it)]
    assert fast.count("onset") == 3 and fast.count("behaviour") == 3
