"""Near-duplicate link evidence: the keys of a split walk merge, while a monitoring probe and
the customers whose records resemble its record do not."""

from __future__ import annotations

import numpy as np
import pytest

from digits_victim import digits_data, digits_profile
from querywarden.core.engine import Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, Interaction
from single_engine import engine_of

T0 = 1_764_320_000.0


@pytest.fixture(scope="module")
def digits() -> tuple[ModelProfile, np.ndarray]:
    x, _ = digits_data()
    return digits_profile(id="m", reference=x[1000:1300]), x[1300:]


def _query(principal: str, ts: float, row: np.ndarray) -> Interaction:
    k = sum(map(ord, principal)) % 200
    client = Client(ip=f"{20 + k}.{k}.9.{k + 1}", user_agent=f"agent/{principal}")
    return Interaction(id=f"{principal}-{ts}", ts=ts, principal=principal, model="m", client=client, features=row)


def _walk(rng: np.random.Generator, start: np.ndarray, steps: int) -> list[np.ndarray]:
    """A boundary walk: each input moves one pixel of the last by one grey level."""
    out = [start.copy()]
    for _ in range(steps - 1):
        x = out[-1].copy()
        i = int(rng.integers(64))
        x[i] = float(np.clip(x[i] + rng.choice([-1.0, 1.0]), 0, 16))
        out.append(x)
    return out


def _run(eng: Engine, stream: list[Interaction]) -> None:
    for it in sorted(stream, key=lambda it: it.ts):
        eng.process(it)


def test_a_walk_split_over_two_keys_merges(digits: tuple[ModelProfile, np.ndarray]) -> None:
    profile, pool = digits
    steps = _walk(np.random.default_rng(1), pool[0], 40)
    eng = engine_of(profile, "neardup")
    _run(eng, [_query(f"k{i % 2}", T0 + 0.5 * i, x) for i, x in enumerate(steps)])
    assert sorted(eng.actors.members("k0")) == ["k0", "k1"]


def test_a_probe_and_customers_near_its_record_are_not_linked(digits: tuple[ModelProfile, np.ndarray]) -> None:
    """A probe sends one record every minute; two customers each send records one pixel off
    it (as natural records of a dense table resemble a popular one), hours apart."""
    profile, pool = digits
    rng = np.random.default_rng(2)
    record = pool[3]
    stream = [_query("probe", T0 + 60.0 * i, record) for i in range(600)]
    for c in range(2):
        t = T0 + 3600.0 * (2 + 3 * c)
        for j in range(8):
            x = record.copy()
            i = int(rng.integers(64))
            x[i] = float(np.clip(x[i] + rng.choice([-1.0, 1.0]), 0, 16)) if x[i] not in (0.0, 16.0) else 8.0
            stream.append(_query(f"customer-{c}", t + 30.0 * j, x))
    eng = engine_of(profile, "neardup")
    _run(eng, stream)
    assert eng.actors.actors() == {}
