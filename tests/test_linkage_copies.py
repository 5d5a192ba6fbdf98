"""Copy linkage: attribute inference split in two passes (one key sends the records, another
the same records with the sensitive feature set to its other value) merges into one actor;
batch jobs scoring records of a low-entropy table at the same second, and customers whose
records now and then differ from another's in a field or two, stay apart."""

from __future__ import annotations

import numpy as np
import pytest

from querywarden.core.engine import Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, Interaction
from querywarden.detectors.copy_index import CopyIndex
from querywarden.detectors.linkage import LinkageDetector
from single_engine import engine_of

T0 = 1_764_320_000.0
SENSITIVE = 7


def _table(rng: np.random.Generator, n: int) -> np.ndarray:
    """A low-entropy table: age band, hours band, five small categorical fields, a binary
    sensitive column. Many people share every field but one or two."""
    cols = [
        rng.integers(2, 8, size=n) * 10,  # age band
        rng.choice([20, 40, 60], size=n, p=[0.2, 0.6, 0.2]),  # hours band
        rng.integers(0, 3, size=n),
        rng.integers(0, 4, size=n),
        rng.integers(0, 2, size=n),
        rng.integers(0, 3, size=n),
        rng.integers(0, 2, size=n),
        rng.integers(0, 2, size=n),  # the sensitive column
    ]
    return np.stack(cols, axis=1).astype(np.float64)


@pytest.fixture(scope="module")
def tabular() -> tuple[ModelProfile, np.ndarray]:
    rng = np.random.default_rng(0)
    x = _table(rng, 3000)
    profile = ModelProfile(
        id="m",
        n_features=8,
        ranges=((20.0, 70.0), (20.0, 60.0), (0.0, 2.0), (0.0, 3.0), (0.0, 1.0), (0.0, 2.0), (0.0, 1.0), (0.0, 1.0)),
        reference=x[:300],
    )
    return profile, x[300:]


def _send(principal: str, k: int, rows: np.ndarray, t: float, gap: float) -> list[Interaction]:
    client = Client(ip=f"{40 + k}.{k * 13 % 250}.7.{k + 1}", user_agent=f"agent/{k}")
    return [
        Interaction(id=f"{principal}-{i}", ts=t + gap * i, principal=principal, model="m", client=client, features=row)
        for i, row in enumerate(rows)
    ]


def _run(eng: Engine, stream: list[Interaction]) -> None:
    for it in sorted(stream, key=lambda it: it.ts):
        eng.process(it)


def _two_passes(pool: np.ndarray, keys: int, per_key: int, start: float) -> tuple[list[Interaction], list[str]]:
    """Pass one: ``keys`` keys send ``per_key`` target records each with the sensitive value
    0; pass two: ``keys`` other keys send the same records with it set to 1."""
    targets = pool[: keys * per_key].copy()
    targets[:, SENSITIVE] = 0.0
    flipped = targets.copy()
    flipped[:, SENSITIVE] = 1.0
    stream: list[Interaction] = []
    names: list[str] = []
    t = start
    for p, rows in enumerate((targets, flipped)):
        for k in range(keys):
            name = f"pass{p}-{k}"
            names.append(name)
            stream += _send(name, p * keys + k, rows[k * per_key : (k + 1) * per_key], t, 0.002)
            t += 0.3
    return stream, names


def test_a_two_pass_attribute_inference_over_keys_is_one_actor(tabular: tuple[ModelProfile, np.ndarray]) -> None:
    profile, pool = tabular
    stream, names = _two_passes(pool, keys=6, per_key=10, start=T0)
    eng = engine_of(profile, "linkage")
    _run(eng, stream)
    assert sorted(eng.actors.members(names[0])) == sorted(names)


def test_batch_jobs_on_a_low_entropy_table_started_together_stay_apart(
    tabular: tuple[ModelProfile, np.ndarray],
) -> None:
    """Eight nightly jobs start in the same second, each scoring records of the same
    population (many differ from another job's records in a field or two) at machine pace."""
    profile, pool = tabular
    rng = np.random.default_rng(1)
    stream: list[Interaction] = []
    for k in range(8):
        rows = pool[rng.choice(len(pool), size=400, replace=False)]
        stream += _send(f"batch-{k}", k, rows, T0 + 0.01 * k, 0.005)
    eng = engine_of(profile, "linkage")
    det = eng.detectors("m")[0]
    _run(eng, stream)
    assert eng.actors.actors() == {}
    assert isinstance(det, LinkageDetector)
    copiers = [p for p, st in det._states.items() if st.pattern is not None]
    assert copiers  # the table does make natural near-copies across jobs ...
    assert all(st.copy_due is None for _, st in det._states.items())  # ... never record after record


def test_copies_of_records_an_hour_and_more_apart_do_not_link(tabular: tuple[ModelProfile, np.ndarray]) -> None:
    profile, pool = tabular
    stream, _ = _two_passes(pool, keys=6, per_key=10, start=T0)
    late = [it if it.principal.startswith("pass0") else _shift(it, 4000.0) for it in stream]
    eng = engine_of(profile, "linkage")
    _run(eng, late)
    assert eng.actors.actors() == {}


def _shift(it: Interaction, by: float) -> Interaction:
    return Interaction(
        id=it.id, ts=it.ts + by, principal=it.principal, model=it.model, client=it.client, features=it.features
    )


def test_the_index_finds_one_or_two_changed_features_and_nothing_else() -> None:
    index = CopyIndex(12, capacity=3)
    base = np.arange(12, dtype=np.uint16)
    index.add(base, "a", 10.0)
    one = base.copy()
    one[3] = 99
    two = one.copy()
    two[11] = 7
    three = two.copy()
    three[0] = 5
    assert [(c.principal, c.features, c.old, c.new) for c in index.find(one, "b", 0.0)] == [("a", (3,), (3,), (99,))]
    assert [c.features for c in index.find(two, "b", 0.0)] == [(3, 11)]
    assert index.find(three, "b", 0.0) == []
    assert index.find(base, "b", 0.0) == []  # an exact copy changes nothing
    assert index.find(one, "a", 0.0) == []  # its own record
    assert index.find(one, "b", 11.0) == []  # older than asked
    for k in range(3):  # capacity: the oldest goes first
        index.add(base + 100 + k, "c", 20.0 + k)
    assert len(index) == 3 and index.find(one, "b", 0.0) == []


def test_copy_parameters_are_checked(tabular: tuple[ModelProfile, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="copy_capacity"):
        LinkageDetector(profile=tabular[0], copy_capacity=0)
    with pytest.raises(ValueError, match="copy index"):
        CopyIndex(2, capacity=10)
