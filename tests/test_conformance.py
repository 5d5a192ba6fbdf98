"""One conformance suite over every registered detector, built-in or plugin.

Each check holds for any detector, whatever it watches: clone, snapshot round-trip,
deterministic replay, actor merges, empty stream, malformed input, and bounded memory at
10^5 principals. The annotated samples every detector ships are checked in test_samples.py.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from querywarden.core.detector import Calibration, Detector
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, InputKind, Interaction, Output, Signal
from querywarden.plugins import load_detectors

DETECTORS = load_detectors()


@pytest.fixture(scope="module")
def digits() -> tuple[ModelProfile, np.ndarray, LogisticRegression]:
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float64)
    model = LogisticRegression(max_iter=300).fit(x[:1000], y[:1000])
    profile = ModelProfile(
        id="digits",
        input_kind=InputKind.IMAGE,
        n_features=64,
        shape=(8, 8),
        ranges=tuple((0.0, 16.0) for _ in range(64)),
        classes=tuple(str(c) for c in range(10)),
        reference=x[1000:1400],
    )
    return profile, x[1400:], model


def _stream(profile: ModelProfile, pool: np.ndarray, model: LogisticRegression, seed: int) -> list[Interaction]:
    """A mixed stream: natural queries, random ones, and a boundary-style walk, over 12 principals."""
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    principals: list[str] = []
    for i in range(600):
        kind = i % 3
        if kind == 0:
            rows.append(pool[rng.integers(len(pool))])
        elif kind == 1:
            rows.append(rng.uniform(0, 16, 64))
        else:
            base = pool[0] if not rows else rows[-1]
            rows.append(np.clip(base + rng.normal(0, 0.05, 64), 0, 16))
        principals.append(f"p{i % 12}")
    x = np.vstack(rows)
    probs = model.predict_proba(x)
    return [
        Interaction(
            id=f"r{i}",
            ts=1_700_000_000.0 + i * 2.0,
            principal=principals[i],
            model=profile.id,
            client=Client(ip=f"198.51.100.{i % 7}", user_agent="conformance/1"),
            features=x[i],
            output=Output(probabilities=probs[i], label=int(np.argmax(probs[i]))),
        )
        for i in range(len(x))
    ]


def _run(det: Detector, stream: list[Interaction]) -> list[Signal]:
    out: list[Signal] = []
    for it in stream:
        out.extend(det.update(it))
    return out


def _encode(signals: list[Signal]) -> bytes:
    return msgspec.json.encode(signals)


def _make(cls: type[Detector], profile: ModelProfile, **params: object) -> Detector:
    names = cls.param_names()
    return cls(profile=profile, **{k: v for k, v in params.items() if k in names})


pytestmark = pytest.mark.parametrize("name", sorted(DETECTORS))


def test_registered_with_contract(name: str) -> None:
    cls = DETECTORS[name]
    assert cls.name == name
    assert cls.technique, "a detector names its default ATLAS technique"
    assert cls.description, "a detector says in one line what it watches"
    assert cls.param_names()[0] == "profile"
    # every parameter besides the profile has a default, so a config may name only what it changes
    missing = [p for p in cls.param_names()[1:] if p not in cls.defaults()]
    assert not missing, f"parameters without defaults: {missing}"


def test_clone_has_same_params_and_no_state(name: str, digits: tuple) -> None:
    profile, pool, model = digits
    det = _make(DETECTORS[name], profile)
    _run(det, _stream(profile, pool, model, seed=1))
    twin = det.clone()
    assert twin is not det
    assert twin.params().keys() == det.params().keys()
    assert twin.state_size() == 0
    assert repr(twin) == repr(det)


def test_deterministic_replay(name: str, digits: tuple) -> None:
    profile, pool, model = digits
    stream = _stream(profile, pool, model, seed=2)
    a = _run(_make(DETECTORS[name], profile), stream)
    b = _run(_make(DETECTORS[name], profile), stream)
    assert _encode(a) == _encode(b)


def test_snapshot_round_trip_continues_identically(name: str, digits: tuple) -> None:
    profile, pool, model = digits
    stream = _stream(profile, pool, model, seed=3)
    head, tail = stream[:300], stream[300:]
    original = _make(DETECTORS[name], profile)
    _run(original, head)
    restored = original.clone()
    restored.restore(original.snapshot())
    assert restored.state_size() == original.state_size()
    assert _encode(_run(restored, tail)) == _encode(_run(original, tail))


def _as_actor(stream: list[Interaction], members: dict[str, str]) -> list[Interaction]:
    return [
        msgspec.structs.replace(it, actor=members[it.principal]) if it.principal in members else it for it in stream
    ]


def test_merge_folds_parts_and_the_actor_carries_on(name: str, digits: tuple) -> None:
    """Merging principals, then an actor into another, never breaks a detector: it goes on
    deterministically, its snapshot round-trips, and parts it never saw change nothing."""
    profile, pool, model = digits
    stream = _stream(profile, pool, model, seed=4)
    head, middle, tail = stream[:200], stream[200:400], stream[400:]
    members = {"p0": "actor-one", "p1": "actor-one", "p2": "actor-one"}
    later = {**dict.fromkeys(members, "actor-two"), "p3": "actor-two"}

    def run() -> tuple[Detector, list[Signal]]:
        det = _make(DETECTORS[name], profile)
        out = _run(det, head)
        det.merge("actor-one", ("p0", "p1", "p2"))
        out += _run(det, _as_actor(middle, members))
        det.merge("actor-two", ("actor-one", "p3"))
        return det, out

    det, out = run()
    _, out_again = run()
    assert _encode(out) == _encode(out_again)
    restored = det.clone()
    restored.restore(det.snapshot())
    tail = _as_actor(tail, later)
    assert _encode(_run(restored, tail)) == _encode(_run(det, tail))

    untouched = _replayed(DETECTORS[name], profile, head)
    size = untouched.state_size()
    untouched.merge("actor-never", ("nobody", "actor-gone"))
    assert untouched.state_size() == size
    assert _encode(_run(untouched, middle)) == _encode(_run(_replayed(DETECTORS[name], profile, head), middle))


def _replayed(cls: type[Detector], profile: ModelProfile, stream: list[Interaction]) -> Detector:
    det = _make(cls, profile)
    _run(det, stream)
    return det


def test_empty_stream(name: str, digits: tuple) -> None:
    profile, _, _ = digits
    det = _make(DETECTORS[name], profile)
    assert det.state_size() == 0
    fresh = det.clone()
    fresh.restore(det.snapshot())
    calibration = det.calibration()
    assert all(isinstance(c, Calibration) for c in calibration.values())
    assert set(calibration) <= set(det.param_names())


def test_malformed_interactions_do_not_crash(name: str, digits: tuple) -> None:
    profile, pool, _ = digits
    det = _make(DETECTORS[name], profile)
    odd = [
        Interaction(id="a", ts=1.0, principal="x", model="digits"),
        Interaction(id="b", ts=2.0, principal="x", model="digits", features=np.zeros(3)),
        Interaction(id="c", ts=3.0, principal="x", model="digits", features=pool[0], output=Output()),
        Interaction(
            id="d", ts=4.0, principal="x", model="digits", features=pool[1], output=Output(probabilities=np.ones(3) / 3)
        ),
        Interaction(id="e", ts=5.0, principal="x", model="digits", prompt="hello"),
        Interaction(id="f", ts=6.0, principal="x", model="digits", features=pool[2], output=Output(label="7")),
        Interaction(id="g", ts=0.5, principal="x", model="digits", features=pool[3]),  # out of order
    ]
    for it in odd:
        assert isinstance(det.update(it), list)


def test_memory_is_bounded_at_1e5_principals(name: str, digits: tuple) -> None:
    """State stops growing once the caps are reached, whatever the number of principals."""
    profile, pool, model = digits
    cls = DETECTORS[name]
    cap = 1_000
    det = _make(cls, profile, max_principals=cap, max_queries=10 * cap, max_items=10 * cap)
    probs = model.predict_proba(pool[:50])
    sizes = {}
    for i in range(100_000):
        j = i % 50
        det.update(
            Interaction(
                id=f"m{i}",
                ts=1_700_000_000.0 + i * 0.01,
                principal=f"k{i}",
                model="digits",
                features=pool[j] + (i % 7) * 0.01,
                output=Output(probabilities=probs[j]),
            )
        )
        if i + 1 in (50_000, 100_000):
            sizes[i + 1] = len(det.snapshot())
    if "max_principals" in cls.param_names():
        assert det.state_size() <= cap
    assert sizes[100_000] <= sizes[50_000] * 1.1 + 65_536, f"state grew with principals: {sizes}"
