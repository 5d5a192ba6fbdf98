"""Records survive the trip through rows and JSON whatever text and evidence they carry."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from querywarden.core.records import Action, Decision, Finding, Severity, Signal
from querywarden.errors import StoreError
from querywarden.store import Store, codec, open_store

# PostgreSQL text cannot hold NUL; the same rule keeps this test honest for both backends
text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=40)
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False), text
)
evidence = st.dictionaries(
    text,
    st.recursive(
        json_scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=12
    ),
    max_size=5,
)


_fresh = itertools.count()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres_server").new_database()
    with open_store(url) as s:
        yield s


@settings(max_examples=40, deadline=None)
@given(principal=text, detector=text, ev=evidence, score=st.floats(0, 1), severity=st.sampled_from(Severity))
def test_signals_round_trip(
    store: Store, principal: str, detector: str, ev: dict[str, object], score: float, severity: Severity
) -> None:
    sig = Signal(
        detector=detector,
        technique="AML.T0043",
        principal=principal,
        model="m",
        interaction_id="i",
        ts=1.5,
        score=score,
        severity=severity,
        evidence=ev,
        related=(principal + "'",),
    )
    store.add_signals([sig])
    assert store.signals(principal=principal, detector=detector, limit=1) == [sig]


@settings(max_examples=40, deadline=None)
@given(
    fid=text, principals=st.lists(text, min_size=1, max_size=4, unique=True), ev=evidence, revision=st.integers(1, 1000)
)
def test_findings_round_trip(
    store: Store, fid: str, principals: list[str], ev: dict[str, object], revision: int
) -> None:
    fid = f"{fid}#{next(_fresh)}"  # examples share the store: each finding is a new one
    f = Finding(
        finding_id=fid,
        status="updated",
        principals=tuple(principals),
        actor=None,
        model="m",
        technique={"id": "AML.T0024.001", "name": "Invert AI Model"},
        owasp=("ML03:2023",),
        severity=Severity.HIGH,
        score=0.5,
        detectors=("a", "b"),
        first_seen_ts=1.0,
        detected_ts=2.0,
        updated_ts=3.0,
        trigger_id="t",
        queries_at_detection=7,
        evidence=ev,
        action="block",
        revision=revision,
    )
    store.add_findings([f])
    detail = store.finding(fid)
    assert detail is not None and detail.finding.evidence == ev
    assert f in detail.events


@settings(max_examples=30, deadline=None)
@given(principal=text, reason=text, params=evidence, action=st.sampled_from(Action), shadow=st.booleans())
def test_decisions_round_trip(
    store: Store, principal: str, reason: str, params: dict[str, object], action: Action, shadow: bool
) -> None:
    d = Decision(
        principal=principal, action=action, ts=9.0, reason=reason, params=params, shadow=shadow, source="operator"
    )
    store.set_decision(d, reason, by=principal)
    assert next(x for x in store.load_decisions() if x.principal == principal) == d


def test_numpy_values_in_evidence_become_plain_json() -> None:
    encoded = codec.dumps({"n": np.int64(3), "x": np.float32(0.5), "v": np.arange(3), "flag": np.bool_(True)})
    assert codec.loads(encoded) == {"n": 3, "x": 0.5, "v": [0, 1, 2], "flag": True}


def test_values_json_cannot_hold_are_store_errors() -> None:
    with pytest.raises(StoreError, match="cannot encode dict as JSON"):
        codec.dumps({"when": object()})
