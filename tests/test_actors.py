"""The actor graph: evidence between principals accumulates per pair, merges at the
threshold, and an actor's id and members do not depend on arrival order."""

from __future__ import annotations

import itertools

import numpy as np

from querywarden.core import snapshot
from querywarden.core.actors import ActorGraph, actor_id
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, Finding, Interaction, Output, Severity
from querywarden.plugins import load_detectors

load_detectors()


def test_weak_evidence_alone_never_merges() -> None:
    g = ActorGraph(link_threshold=3.0)
    for i in range(50):  # one weak client link per pair among 50 NAT neighbours
        for j in range(i):
            assert g.link(f"corp-{i}", f"corp-{j}", 0.5, "linkage") is False
    assert g.actors() == {}
    assert g.actor_of("corp-3") is None
    assert g.members("corp-3") == ("corp-3",)


def test_pair_evidence_accumulates_to_the_threshold() -> None:
    g = ActorGraph(link_threshold=3.0)
    assert not g.link("a", "b", 1.5, "linkage")
    assert not g.link("b", "a", 1.0, "neardup")  # order of the pair does not matter
    assert g.link("a", "b", 0.5, "neardup")
    assert g.actor_of("a") == g.actor_of("b") is not None
    assert set(g.members("a")) == {"a", "b"}
    assert g.evidence("b") == {"neardup": 3.0}
    assert not g.link("a", "b", 5.0, "neardup")  # already one actor


def test_chains_of_pairs_merge_transitively_with_a_stable_id() -> None:
    g = ActorGraph(link_threshold=1.0)
    keys = [f"sybil-{k:02d}" for k in range(20)]
    for a, b in itertools.pairwise(keys):
        g.link(b, a, 1.0, "neardup")
    assert len(g.actors()) == 1
    assert {g.actor_of(k) for k in keys} == {next(iter(g.actors()))}
    assert sorted(g.members("sybil-07")) == keys

    reverse = ActorGraph(link_threshold=1.0)
    for a, b in itertools.pairwise(keys[::-1]):
        reverse.link(a, b, 1.0, "neardup")
    assert sorted(reverse.members("sybil-00")) == keys


def test_two_actors_merge_into_the_larger() -> None:
    g = ActorGraph(link_threshold=1.0)
    for k in range(1, 5):
        g.link("big-0", f"big-{k}", 1.0, "neardup")
    g.link("small-0", "small-1", 1.0, "linkage")
    big = g.actor_of("big-0")
    g.link("small-1", "big-3", 1.0, "neardup")
    assert g.actor_of("small-0") == big  # the larger cluster keeps its id
    assert len(g.members("small-0")) == 7
    assert g.evidence("big-2") == {"neardup": 5.0, "linkage": 1.0}


def test_no_self_links_and_no_negative_evidence() -> None:
    g = ActorGraph(link_threshold=0.5)
    assert not g.link("a", "a", 10.0, "x")
    assert not g.link("a", "b", 0.0, "x")
    assert not g.link("a", "b", -3.0, "x")
    assert g.actors() == {}


def test_pending_pairs_are_bounded() -> None:
    g = ActorGraph(link_threshold=3.0, max_pairs=100)
    for i in range(1000):
        g.link(f"p{i}", f"q{i}", 1.0, "x")
    assert len(g._pair_weight) <= 100
    # the oldest pending evidence was dropped, so an old pair starts over
    g.link("p0", "q0", 2.5, "x")
    assert g.actor_of("p0") is None
    g.link("p999", "q999", 2.0, "x")
    assert g.actor_of("p999") is not None


def test_actor_ids_are_deterministic_and_survive_a_snapshot() -> None:
    assert actor_id("k") == actor_id("k") != actor_id("j")
    g = ActorGraph(link_threshold=1.0)
    g.link("a", "b", 1.0, "neardup")
    g.link("c", "d", 0.5, "neardup")
    restored = snapshot.loads(snapshot.dumps(g))
    assert restored.actors() == g.actors()
    assert restored.link("c", "d", 0.5, "neardup")  # pending evidence came along


def test_join_names_what_each_merge_absorbed() -> None:
    g = ActorGraph(link_threshold=1.0)
    first = g.join("a", "b", 1.0, "x")
    assert first is not None and first.actor == g.actor_of("a")
    assert sorted(first.parts) == ["a", "b"]  # two principals in no actor yet
    grown = g.join("c", "a", 1.0, "x")
    assert grown is not None and grown.actor == first.actor and grown.parts == ("c",)
    g.join("d", "e", 1.0, "x")
    g.join("f", "d", 1.0, "x")
    small = g.actor_of("d")
    assert small is not None and small != first.actor
    both = g.join("e", "b", 1.0, "x")
    assert both is not None and both.actor == first.actor
    assert both.parts == (small,)  # the smaller actor's id is gone, its state goes to the larger
    assert g.join("a", "f", 5.0, "x") is None  # already one actor
    assert g.join("p", "q", 0.5, "x") is None  # below the threshold


def _boundary_engine() -> Engine:
    # a client link alone worth the whole threshold, so two keys on one client merge at once
    return Engine(
        {"m": ModelProfile(id="m", n_features=2, classes=("a", "b"))},
        detectors=[
            DetectorSpec("boundary", {"min_queries": 24, "recent": 24}),
            DetectorSpec("linkage", {"client_weight": 3.0}),
        ],
    )


def _borderline(engine: Engine, principal: str, ip: str, n: int, start: int) -> list[Finding]:
    found: list[Finding] = []
    for i in range(n):
        it = Interaction(
            id=f"{principal}-{i}",
            ts=1_800_000_000.0 + start + i,
            principal=principal,
            model="m",
            client=Client(ip=ip, user_agent="probe/1"),
            features=np.array([0.5, 0.5 + i * 1e-3]),
            output=Output(probabilities=np.array([0.52, 0.48])),
        )
        found.extend(f for f in engine.process(it).findings if f.severity >= Severity.MEDIUM)
    return found


def test_a_merge_brings_what_each_key_sent_before_it_to_the_actor() -> None:
    """Each key sends 20 boundary queries (under the 24 one needs); merged, the actor holds
    all 40 and is caught at once. Unmerged, neither key is."""
    engine = _boundary_engine()
    assert _borderline(engine, "key-a", "203.0.113.5", 20, 0) == []
    caught = _borderline(engine, "key-b", "203.0.113.9", 20, 100)
    actor = engine.actors.actor_of("key-b")
    assert actor is not None and actor == engine.actors.actor_of("key-a")
    assert caught and caught[0].actor == actor
    assert caught[0].queries_at_detection <= 5  # key-b's own count: the rest came from key-a

    apart = Engine(
        {"m": ModelProfile(id="m", n_features=2, classes=("a", "b"))},
        detectors=[DetectorSpec("boundary", {"min_queries": 24, "recent": 24})],
    )
    assert _borderline(apart, "key-a", "203.0.113.5", 20, 0) == []
    assert _borderline(apart, "key-b", "198.51.100.7", 20, 100) == []
