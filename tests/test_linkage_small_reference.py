"""Linkage with a small reference (wine: 18 rows): a split random-query extraction still
merges, and customers whose readings drift by fractions on whole-numbered features (two
sensor feeds active for an hour together) are not taken as synthetic."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_wine

from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, Interaction
from querywarden.detectors.linkage import LinkageDetector
from single_engine import engine_of
from tabular_victim import span_profile

T0 = 1_764_320_000.0


@pytest.fixture(scope="module")
def wine() -> tuple[ModelProfile, np.ndarray]:
    x, _ = load_wine(return_X_y=True)
    return span_profile(x, 18)


def _query(principal: str, k: int, ts: float, row: np.ndarray) -> Interaction:
    client = Client(ip=f"{60 + k}.{k * 17 % 250}.3.{k + 2}", user_agent=f"agent/{k}")
    return Interaction(id=f"{principal}-{ts}", ts=ts, principal=principal, model="m", client=client, features=row)


def test_a_small_reference_still_links_a_split_random_query_attack(wine: tuple[ModelProfile, np.ndarray]) -> None:
    profile, _ = wine
    assert profile.ranges is not None
    lo, hi = (np.array(b) for b in zip(*profile.ranges, strict=True))
    rng = np.random.default_rng(1)
    rows = rng.uniform(lo, hi, size=(30, len(lo)))
    keys = [f"k{i}" for i in range(3)]
    eng = engine_of(profile, "linkage")
    for i, row in enumerate(rows):
        eng.process(_query(keys[i % 3], i % 3, T0 + 0.2 * i, row))
    assert sorted(eng.actors.members("k0")) == keys


def test_sensor_feeds_drifting_whole_numbered_readings_are_not_merged(wine: tuple[ModelProfile, np.ndarray]) -> None:
    profile, pool = wine
    rng = np.random.default_rng(2)
    spread = pool.std(axis=0)
    stream: list[Interaction] = []
    for k in range(2):
        x = pool[10 * k].copy()
        t = T0 + 300.0 * k
        for _ in range(600):
            x = x + rng.normal(0.0, 0.01, size=x.shape[0]) * spread
            stream.append(_query(f"feed-{k}", k, t, x.copy()))
            t += float(rng.uniform(4.0, 12.0))
    eng = engine_of(profile, "linkage")
    for it in sorted(stream, key=lambda it: it.ts):
        eng.process(it)
    assert eng.actors.actors() == {}
    det = eng.detectors("m")[0]
    assert isinstance(det, LinkageDetector) and det._reference is not None
    assert det._reference[5] is None  # no feature taken as whole numbers on 18 rows
