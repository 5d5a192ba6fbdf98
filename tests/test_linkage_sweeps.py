"""Sweep linkage: keys that each send records again with the same feature changed, at
machine pace, are one attribute inference split over keys (merged at once when they start
together); what-if customers, sweeps of different features, sweeps at human pace and
sweeps hours apart stay apart."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from querywarden.core.engine import Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, Interaction, Signal
from single_engine import engine_of
from tabular_victim import span_profile

T0 = 1_764_320_000.0


@pytest.fixture(scope="module")
def tabular() -> tuple[ModelProfile, np.ndarray]:
    x, _ = load_breast_cancer(return_X_y=True)
    return span_profile(x, 300)


def _query(principal: str, n: int, ts: float, row: np.ndarray) -> Interaction:
    ip = f"203.0.{n % 250}.{(n * 7) % 250 + 1}"  # unrelated networks
    return Interaction(
        id=f"{principal}-{ts}",
        ts=ts,
        principal=principal,
        model="m",
        client=Client(ip=ip, user_agent=f"agent/{n}"),
        features=row,
    )


def _split_sweep(
    pool: np.ndarray, keys: int, records: int, *, feature: int | None, starts: list[float], gap: float
) -> list[Interaction]:
    """Each key sends ``records`` records, each followed by a copy with one feature set to
    the other end of its range (``feature`` None: key i changes feature i). Keys take turns."""
    stream: list[Interaction] = []
    for r in range(records):
        for k in range(keys):
            row = pool[(r * keys + k) % len(pool)]
            f = k if feature is None else feature
            variant = row.copy()
            variant[f] = pool[:, f].max() if row[f] < np.median(pool[:, f]) else pool[:, f].min()
            ts = starts[k] + r * gap + k * 0.05
            stream.append(_query(f"key-{k}", k, ts, row))
            stream.append(_query(f"key-{k}", k, ts + 0.01, variant))
    return sorted(stream, key=lambda it: it.ts)


def _run(engine: Engine, stream: list[Interaction]) -> list[Signal]:
    signals: list[Signal] = []
    for it in stream:
        signals.extend(engine.process(it).signals)
    return signals


def _actors(engine: Engine, keys: int) -> set[str | None]:
    return {engine.actors.actor_of(f"key-{k}") for k in range(keys)}


def test_a_sweep_of_one_feature_split_over_keys_becomes_one_actor(tabular: tuple) -> None:
    profile, pool = tabular
    eng = engine_of(profile, "linkage")
    signals = _run(eng, _split_sweep(pool, 8, 2, feature=3, starts=[T0] * 8, gap=4.0))  # two records each
    actors = _actors(eng, 8)
    assert len(actors) == 1 and None not in actors
    assert {s.evidence.get("link") for s in signals if s.related} == {"sweep", "onset"}


def test_keys_sweeping_different_features_stay_apart(tabular: tuple) -> None:
    profile, pool = tabular
    eng = engine_of(profile, "linkage")
    assert not [s for s in _run(eng, _split_sweep(pool, 8, 4, feature=None, starts=[T0] * 8, gap=4.0)) if s.related]
    assert _actors(eng, 8) == {None}


def test_sweeps_started_apart_need_more_records_and_hours_apart_or_human_pace_stay_apart(tabular: tuple) -> None:
    profile, pool = tabular
    staggered = [T0 + 1200.0 * k for k in range(6)]  # a key every 20 minutes: no common onset
    two = engine_of(profile, "linkage")
    _run(two, _split_sweep(pool, 6, 3, feature=3, starts=staggered, gap=4.0))
    assert _actors(two, 6) == {None}  # one sweep match per pair (at the second record) is not enough
    four = engine_of(profile, "linkage")
    _run(four, _split_sweep(pool, 6, 4, feature=3, starts=staggered, gap=4.0))
    actors = _actors(four, 6)
    assert len(actors) == 1 and None not in actors  # matched again at the fourth record
    hours = engine_of(profile, "linkage")
    _run(hours, _split_sweep(pool, 6, 4, feature=3, starts=[T0 + 7200.0 * k for k in range(6)], gap=4.0))
    assert _actors(hours, 6) == {None}
    slow = engine_of(profile, "linkage")
    _run(slow, _split_sweep(pool, 6, 4, feature=3, starts=[T0] * 6, gap=180.0))
    assert _actors(slow, 6) == {None}


def test_what_if_customers_editing_one_application_each_are_never_linked(tabular: tuple) -> None:
    """Twelve customers at once, each editing the same field of their own application over
    and over at machine pace: each sweeps one record, which is no sweep to link."""
    profile, pool = tabular
    eng = engine_of(profile, "linkage")
    stream = []
    for c in range(12):
        row = pool[c]
        stream.append(_query(f"key-{c}", c, T0 + c * 0.1, row))
        for e in range(8):
            edit = row.copy()
            edit[3] = np.quantile(pool[:, 3], (e + 1) / 10)
            stream.append(_query(f"key-{c}", c, T0 + c * 0.1 + 1.0 + e, edit))
    signals = _run(eng, sorted(stream, key=lambda it: it.ts))
    assert not [s for s in signals if s.related]
    assert _actors(eng, 12) == {None}


def test_slider_users_moving_one_field_of_one_application_are_never_linked(tabular: tuple) -> None:
    """A what-if slider sends one query per position: twenty edits of one field of one
    application a second apart, by two customers at once. Edits sampled into the signature
    are not new records, so neither sweeps more than one."""
    profile, pool = tabular
    eng = engine_of(profile, "linkage")
    stream = []
    for c in range(2):
        row = pool[c]
        stream.append(_query(f"key-{c}", c, T0 + c * 0.1, row))
        for e in range(20):
            edit = row.copy()
            edit[3] = np.quantile(pool[:, 3], (e + 1) / 22)
            stream.append(_query(f"key-{c}", c, T0 + c * 0.1 + 1.0 + e, edit))
    signals = _run(eng, sorted(stream, key=lambda it: it.ts))
    assert not [s for s in signals if s.related]
    assert _actors(eng, 2) == {None}


def test_a_principal_from_an_older_snapshot_gets_defaults_for_what_it_lacks(tabular: tuple) -> None:
    """A snapshot taken before sweeps were followed restores and keeps running."""
    profile, pool = tabular
    from querywarden.detectors.linkage import LinkageDetector, _Principal

    det = LinkageDetector(profile=profile)
    for i in range(10):
        det.update(_query("key-0", 0, T0 + i, pool[i]))
    st = det._states.peek("key-0")
    assert st is not None
    older = {name: getattr(st, name) for name in _Principal.__slots__ if name not in ("records", "sweeps", "sweep_due")}
    old = _Principal.__new__(_Principal)
    old.__setstate__((None, older))
    assert old.n == st.n and old.records == 0 and old.sweeps is None
    det._states._states["key-0"] = old
    row = pool[11]
    det.update(_query("key-0", 0, T0 + 11, row))
    variant = row.copy()
    variant[3] = pool[:, 3].max()
    assert isinstance(det.update(_query("key-0", 0, T0 + 12, variant)), list)
