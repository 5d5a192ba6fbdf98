"""Campaign linkage: a key of a running split attack whose own queries fall a little under the
synthetic bar still joins the actor its sibling keys already formed, when it shares their
style, their start and their machine pace; the same key with no campaign to join, started
half an hour later, or sending at a person's pace, stays alone, and so do batch jobs that
start with the campaign."""

from __future__ import annotations

import numpy as np
import pytest

from digits_victim import digits_data, digits_profile
from querywarden.core.engine import Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, Interaction
from querywarden.detectors.linkage import LinkageDetector
from single_engine import engine_of

T0 = 1_764_320_000.0
ROWS = 32


@pytest.fixture(scope="module")
def digits() -> tuple[ModelProfile, np.ndarray]:
    x, _ = digits_data()
    return digits_profile(id="m", reference=x[1000:1300]), x[1300:]


def _rows(rng: np.random.Generator, pool: np.ndarray, synthetic: int) -> np.ndarray:
    """``ROWS`` queries from one source: ``synthetic`` random images spread evenly among
    natural digits (a source about half off the manifold, drawn per key)."""
    natural = pool[rng.choice(len(pool), size=ROWS, replace=False)]
    picks = np.linspace(0, ROWS - 1, synthetic).round().astype(int)
    natural[picks] = rng.uniform(0, 16, size=(synthetic, 64)).round()
    return natural


def _keys(
    rng: np.random.Generator,
    pool: np.ndarray,
    synthetic: dict[str, int],
    start: float,
    gap: float,
    size: int = 8,
) -> list[Interaction]:
    """Each key sends its rows in requests of ``size``, the keys taking turns ``gap`` apart
    (``synthetic``: the random images among each key's rows)."""
    stream: list[Interaction] = []
    per_key = {name: _rows(rng, pool, n) for name, n in synthetic.items()}
    t = start
    for block in range(ROWS // size):
        for k, name in enumerate(per_key):
            for i in range(size):
                stream.append(
                    Interaction(
                        id=f"{name}-{block}-{i}",
                        ts=t,
                        principal=name,
                        model="m",
                        client=Client(ip=f"{31 + 7 * k}.{k * 11 % 250}.{k}.9", user_agent=f"agent/{k}"),
                        features=per_key[name][block * size + i],
                    )
                )
            t += gap
    return stream


def _run(eng: Engine, stream: list[Interaction]) -> None:
    for it in sorted(stream, key=lambda it: it.ts):
        eng.process(it)


def _share(profile: ModelProfile, stream: list[Interaction], name: str) -> float:
    det = LinkageDetector(profile=profile)
    for it in stream:
        if it.principal == name:
            det.update(it)
    st = det._states.peek(name)
    assert st is not None
    return float(st.signature()[0])


CAMPAIGN = [f"k{i:02d}" for i in range(16)]
LATE = [f"late-{i}" for i in range(3)]


def _campaign(late: int = 12) -> dict[str, int]:
    """Sixteen keys drawing 19 of their 32 queries off the manifold, then the late keys."""
    return {**{name: 19 for name in CAMPAIGN}, **{name: late for name in LATE}}


def test_keys_a_little_under_the_bar_complete_the_campaign(digits: tuple[ModelProfile, np.ndarray]) -> None:
    profile, pool = digits
    rng = np.random.default_rng(1)
    stream = _keys(rng, pool, _campaign(), start=T0, gap=0.2)
    assert all(0.25 <= _share(profile, stream, name) < 0.5 for name in LATE)
    eng = engine_of(profile, "linkage")
    _run(eng, stream)
    assert sorted(eng.actors.members("k00")) == sorted(CAMPAIGN + LATE)


def test_the_same_keys_with_no_campaign_running_stay_alone(digits: tuple[ModelProfile, np.ndarray]) -> None:
    profile, pool = digits
    rng = np.random.default_rng(2)
    eng = engine_of(profile, "linkage")
    _run(eng, _keys(rng, pool, {f"half-{i}": 12 for i in range(12)}, start=T0, gap=0.2))
    assert eng.actors.actors() == {}


@pytest.mark.parametrize(
    ("offset", "gap", "size"), [(1800.0, 0.2, 8), (0.1, 8.0, 1)], ids=["half-an-hour-later", "human-pace"]
)
def test_keys_started_apart_or_at_human_pace_do_not_join(
    digits: tuple[ModelProfile, np.ndarray], offset: float, gap: float, size: int
) -> None:
    """Half an hour later: the campaign's start is past. A person sending one image at a
    time, a few seconds apart, takes minutes to reach a checkpoint."""
    profile, pool = digits
    rng = np.random.default_rng(3)
    campaign = _keys(rng, pool, {name: 19 for name in CAMPAIGN}, start=T0, gap=0.2)
    partial = _keys(rng, pool, {name: 12 for name in LATE}, start=T0 + offset, gap=gap, size=size)
    eng = engine_of(profile, "linkage")
    _run(eng, campaign + partial)
    assert set(eng.actors.members("k00")) == set(CAMPAIGN)
    assert all(eng.actors.actor_of(name) is None for name in LATE)


def test_batch_jobs_starting_with_the_campaign_stay_apart(digits: tuple[ModelProfile, np.ndarray]) -> None:
    """Service accounts scoring natural records at machine pace, started in the same second."""
    profile, pool = digits
    rng = np.random.default_rng(4)
    jobs = [f"batch-{i}" for i in range(4)]
    eng = engine_of(profile, "linkage")
    _run(eng, _keys(rng, pool, {**{name: 19 for name in CAMPAIGN}, **dict.fromkeys(jobs, 0)}, start=T0, gap=0.2))
    assert set(eng.actors.members("k00")) == set(CAMPAIGN)
    assert all(eng.actors.actor_of(name) is None for name in jobs)


def test_campaign_links_name_the_actors_members(digits: tuple[ModelProfile, np.ndarray]) -> None:
    profile, pool = digits
    rng = np.random.default_rng(5)
    eng = engine_of(profile, "linkage")
    kinds: dict[str, set[str]] = {}
    for it in _keys(rng, pool, _campaign(), start=T0, gap=0.2):
        step = eng.process(it)
        if it.principal == "late-0":
            kinds.update({s.evidence["link"]: set(s.related) for s in step.signals if s.detector == "linkage"})
    assert "campaign" in kinds and "behaviour" not in kinds
    assert kinds["campaign"] <= set(CAMPAIGN) and len(kinds["campaign"]) >= 4
    assert eng.actors.actor_of("late-0") == eng.actors.actor_of("k00") is not None


def test_a_key_of_one_request_over_the_bar_completes_the_campaign(digits: tuple[ModelProfile, np.ndarray]) -> None:
    """A key sending one request of ten images, six of them random, next to the running
    campaign: at its only checkpoint (5 of 8 off) one behaviour match per member does not
    merge and the onset's lower bound is not reached; the campaign's actor takes it in."""
    profile, pool = digits
    rng = np.random.default_rng(6)
    campaign = _keys(rng, pool, {name: 19 for name in CAMPAIGN}, start=T0, gap=0.2)
    rows = pool[rng.choice(len(pool), size=10, replace=False)]
    off = [0, 2, 3, 5, 6, 8]
    rows[off] = rng.uniform(0, 16, size=(len(off), 64)).round()
    short = [
        Interaction(
            id=f"short-{i}",
            ts=T0 + 10.0 + 0.01 * i,
            principal="short",
            model="m",
            client=Client(ip="77.7.7.7", user_agent="agent/short"),
            features=rows[i],
        )
        for i in range(10)
    ]
    assert 0.5 <= _share(profile, short, "short") < 0.75
    eng = engine_of(profile, "linkage")
    kinds: set[str] = set()
    for it in sorted(campaign + short, key=lambda it: it.ts):
        step = eng.process(it)
        if it.principal == "short":
            kinds |= {s.evidence["link"] for s in step.signals if s.detector == "linkage"}
    assert {"behaviour", "campaign"} <= kinds and "onset" not in kinds
    assert eng.actors.actor_of("short") == eng.actors.actor_of("k00") is not None
    alone = engine_of(profile, "linkage")
    _run(alone, short + _keys(rng, pool, {f"half-{i}": 12 for i in range(4)}, start=T0, gap=0.2))
    assert alone.actors.actor_of("short") is None


def test_campaign_parameters_are_checked(digits: tuple[ModelProfile, np.ndarray]) -> None:
    profile, _ = digits
    for bad in ({"campaign_share": 0.6}, {"campaign_share": 0.0}, {"campaign_keys": 0}, {"campaign_weight": -1.0}):
        with pytest.raises(ValueError, match="campaign"):
            LinkageDetector(profile=profile, **bad)
