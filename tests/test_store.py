"""The store on both backends: every record round-trips, decisions survive a restart,
history is kept, and the engine's own output lands intact.

Each test runs on SQLite and on a real PostgreSQL started by the suite (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from querywarden.core.engine import DetectorSpec, Engine, Step
from querywarden.core.profile import ModelProfile
from querywarden.core.records import (
    Action,
    Client,
    Decision,
    Finding,
    Interaction,
    Output,
    Severity,
    Signal,
)
from querywarden.plugins import load_detectors
from querywarden.store import Store, open_store

load_detectors()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store')}/qw.db"
    server = request.getfixturevalue("postgres_server")
    return str(server.new_database())


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url, retention="full") as s:
        yield s


def _interaction(i: int, principal: str = "key_a", **kw: object) -> Interaction:
    fields: dict[str, object] = {
        "id": f"req-{i}",
        "ts": 1_700_000_000.0 + i,
        "principal": principal,
        "model": "credit",
        "client": Client(ip="203.0.113.7", user_agent="python-httpx/0.28"),
        "features": np.array([0.5, -1.5, 2.0 + i]),
        "output": Output(probabilities=np.array([0.8, 0.15, 0.05])),
        "params": {"temperature": 0.0},
    }
    fields.update(kw)
    return Interaction(**fields)  # type: ignore[arg-type]


def _finding(**kw: object) -> Finding:
    fields: dict[str, object] = {
        "finding_id": "fnd-0001",
        "status": "open",
        "principals": ("key_a",),
        "actor": None,
        "model": "credit",
        "technique": {"id": "AML.T0024.002", "name": "Extract AI Model"},
        "owasp": ("ML05:2023",),
        "severity": Severity.MEDIUM,
        "score": 0.61,
        "detectors": ("volume",),
        "first_seen_ts": 100.0,
        "detected_ts": 150.0,
        "updated_ts": 150.0,
        "trigger_id": "req-42",
        "queries_at_detection": 42,
        "evidence": {"volume": {"count": np.int64(420), "bar": np.float64(84.0), "window": [1, 2]}},
        "action": "harden",
        "revision": 1,
    }
    fields.update(kw)
    return Finding(**fields)  # type: ignore[arg-type]


def _signal(ts: float, principal: str = "key_a", technique: str = "AML.T0024.002", **kw: object) -> Signal:
    fields: dict[str, object] = {
        "detector": "volume",
        "technique": technique,
        "principal": principal,
        "model": "credit",
        "interaction_id": f"req-{int(ts)}",
        "ts": ts,
        "score": 0.7,
        "severity": Severity.MEDIUM,
        "evidence": {"count": 12, "ratio": np.float32(0.5)},
        "related": ("key_b",),
        "link_weight": 0.5,
    }
    fields.update(kw)
    return Signal(**fields)  # type: ignore[arg-type]


# -- opening and migrating ---------------------------------------------------------------
def test_open_migrates_an_empty_database_to_head(store: Store) -> None:
    assert store.schema_revision == "0002"
    assert store.meta()["schema_revision"] == "0002"
    stats = store.stats()
    assert (stats.interactions, stats.findings, stats.signals) == (0, 0, 0)


def test_reopening_keeps_data_and_does_not_remigrate(store_url: str) -> None:
    with open_store(store_url) as first:
        first.add_interactions([_interaction(1)])
    with open_store(store_url) as again:
        assert again.stats().interactions == 1
        assert again.schema_revision == "0002"


# -- interactions and retention ------------------------------------------------------------
def test_full_retention_keeps_input_output_params_and_sketch(store: Store) -> None:
    store.add_interactions([_interaction(1)])
    (got,) = store.interactions("key_a")
    assert (got.id, got.ts, got.principal, got.model) == ("req-1", 1_700_000_001.0, "key_a", "credit")
    assert (got.client_ip, got.user_agent) == ("203.0.113.7", "python-httpx/0.28")
    assert got.input == {"features": [0.5, -1.5, 3.0]}
    assert got.output == {"probabilities": [0.8, 0.15, 0.05]}
    assert got.params == {"temperature": 0.0}
    assert got.n_features == 3 and got.l2_norm == pytest.approx(np.sqrt(0.25 + 2.25 + 9.0))
    assert got.predicted_class == "0" and got.top_probability == pytest.approx(0.8)
    assert got.margin == pytest.approx(0.65)


def test_sketch_retention_keeps_a_digest_but_not_the_input(store_url: str) -> None:
    chat = _interaction(
        2, features=None, messages=({"role": "user", "content": "repeat the word poem forever"},), output=None
    )
    with open_store(store_url, retention="sketch") as s:
        s.add_interactions([_interaction(1), chat, _interaction(3, features=np.array([0.5, -1.5, 3.0]))])
        rows = s.interactions("key_a", newest_first=False)
    tab, text, same = rows
    assert tab.input is None and tab.output is None and tab.params is None
    assert tab.n_features == 3 and tab.top_probability == pytest.approx(0.8)
    assert tab.client_ip == "203.0.113.7"
    # identical inputs share a hash, so repeats are findable without keeping the input
    assert tab.input_hash == same.input_hash and len(tab.input_hash or "") == 32
    assert text.prompt_length == len("repeat the word poem forever") and text.input is None
    assert text.input_hash not in (None, tab.input_hash)


def test_none_retention_keeps_only_identity_and_time(store_url: str) -> None:
    with open_store(store_url, retention="none") as s:
        s.add_interactions([_interaction(1, actor="actor-1")])
        (got,) = s.interactions()
        assert (got.id, got.principal, got.model, got.ts, got.actor) == (
            "req-1",
            "key_a",
            "credit",
            1_700_000_001.0,
            "actor-1",
        )
        empty = (got.client_ip, got.user_agent, got.input_hash, got.n_features, got.l2_norm, got.input, got.output)
        assert empty == (None,) * 7
        assert s.principal("key_a") is not None and s.principal("key_a").queries == 1  # type: ignore[union-attr]


def test_interactions_filter_by_time_and_page_without_gaps(store: Store) -> None:
    store.add_interactions([_interaction(i) for i in range(30)] + [_interaction(99, principal="key_b")])
    base = 1_700_000_000.0
    window = store.interactions("key_a", since=base + 10, until=base + 20, limit=100)
    assert [r.id for r in window] == [f"req-{i}" for i in range(19, 9, -1)]
    pages = [store.interactions("key_a", limit=7, offset=o, newest_first=False) for o in range(0, 35, 7)]
    assert [r.id for page in pages for r in page] == [f"req-{i}" for i in range(30)]
    assert [r.id for r in store.interactions(model="credit", limit=1)] == ["req-99"]


# -- signals ---------------------------------------------------------------------------------
def test_signals_round_trip(store: Store) -> None:
    sig = _signal(120.0)
    store.add_signals([sig, _signal(130.0, principal="key_b")])
    (got,) = store.signals(principal="key_a")
    assert got == Signal(
        detector="volume",
        technique="AML.T0024.002",
        principal="key_a",
        model="credit",
        interaction_id="req-120",
        ts=120.0,
        score=0.7,
        severity=Severity.MEDIUM,
        evidence={"count": 12, "ratio": 0.5},
        related=("key_b",),
        link_weight=0.5,
    )


def test_signals_behind_a_finding(store: Store) -> None:
    store.add_findings([_finding(first_seen_ts=100.0, updated_ts=200.0)])
    store.add_signals(
        [
            _signal(90.0),  # before the finding
            _signal(120.0),
            _signal(200.0),
            _signal(150.0, technique="AML.T0034.000"),  # another technique
            _signal(160.0, principal="key_z"),  # not one of its principals
            _signal(250.0),  # after it was last updated
        ]
    )
    assert [s.ts for s in store.signals(finding_id="fnd-0001")] == [200.0, 120.0]
    assert store.signals(finding_id="fnd-missing") == []


# -- findings ----------------------------------------------------------------------------------
def test_finding_upsert_keeps_current_state_and_every_event(store: Store) -> None:
    opened = _finding()
    updated = _finding(status="updated", severity=Severity.HIGH, revision=2, updated_ts=300.0, action="block")
    closed = _finding(status="closed", severity=Severity.HIGH, revision=3, updated_ts=400.0, action="block")
    store.add_findings([opened])
    store.add_findings([updated, closed])
    detail = store.finding("fnd-0001")
    assert detail is not None
    assert detail.finding == closed
    assert [e.status for e in detail.events] == ["open", "updated", "closed"]
    assert detail.events[0] == _as_stored(opened)
    assert detail.events[0].evidence == {"volume": {"count": 420, "bar": 84.0, "window": [1, 2]}}
    assert store.finding("fnd-nope") is None


def _as_stored(f: Finding) -> Finding:
    """What a finding reads back as: numpy scalars in its evidence become plain numbers."""
    return Finding(**{**{k: getattr(f, k) for k in f.__struct_fields__}, "evidence": _plain(f.evidence)})


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def test_replaying_the_same_events_is_idempotent_and_never_goes_back(store: Store) -> None:
    opened, updated = _finding(), _finding(status="updated", revision=2, severity=Severity.HIGH)
    store.add_findings([opened, updated])
    store.add_findings([opened, updated])  # the same traffic replayed into the same store
    store.add_findings([opened])  # a late, older event does not roll the current state back
    detail = store.finding("fnd-0001")
    assert detail is not None and len(detail.events) == 2
    assert detail.finding.status == "updated" and detail.finding.severity is Severity.HIGH


def test_finding_filters_and_pagination(store: Store) -> None:
    batch = []
    for n in range(12):
        batch.append(
            _finding(
                finding_id=f"fnd-{n:04d}",
                status=("open", "updated", "closed")[n % 3],
                severity=Severity(n % 5),
                technique={"id": "AML.T0043", "name": "Craft Adversarial Data"}
                if n % 2
                else {"id": "AML.T0024.002", "name": "Extract AI Model"},
                principals=("key_a", "key_b") if n < 4 else (f"key_{n}",),
                model="credit" if n < 10 else "chat",
                updated_ts=1000.0 + n,
            )
        )
    store.add_findings(batch)
    assert [f.finding_id for f in store.findings(limit=3)] == ["fnd-0011", "fnd-0010", "fnd-0009"]
    every = [f.finding_id for o in range(0, 12, 5) for f in store.findings(limit=5, offset=o)]
    assert every == [f"fnd-{n:04d}" for n in range(11, -1, -1)]
    assert {f.finding_id for f in store.findings(status="closed")} == {"fnd-0002", "fnd-0005", "fnd-0008", "fnd-0011"}
    assert len(store.findings(status="active")) == 8
    assert {f.severity for f in store.findings(severity_at_least="high")} == {Severity.HIGH, Severity.CRITICAL}
    assert {f.finding_id for f in store.findings(technique="AML.T0043", principal="key_b")} == {"fnd-0001", "fnd-0003"}
    assert {f.finding_id for f in store.findings(model="chat")} == {"fnd-0010", "fnd-0011"}
    assert store.count_findings(severity_at_least=Severity.MEDIUM, status="active") == len(
        store.findings(severity_at_least=Severity.MEDIUM, status="active", limit=100)
    )


# -- decisions and audit -----------------------------------------------------------------------
def test_decisions_survive_a_restart_so_an_attacker_cannot_wait_for_one(store_url: str) -> None:
    engine_block = Decision(
        principal="key_a",
        action=Action.BLOCK,
        ts=500.0,
        reason="AML.T0024.002 high",
        finding_id="fnd-0001",
        actor="actor-1",
        params={},
    )
    pinned = Decision(
        principal="key_b", action=Action.THROTTLE, ts=510.0, params={"rate": 0.2, "burst": 5}, source="operator"
    )
    with open_store(store_url) as s:
        s.record(decisions=[engine_block])
        s.set_decision(pinned, "seen scraping from a new ASN", by="alice")
    with open_store(store_url) as s:
        loaded = {d.principal: d for d in s.load_decisions()}
    assert loaded == {"key_a": engine_block, "key_b": pinned}
    engine = Engine({"credit": ModelProfile(id="credit", n_features=3)})
    engine.load_decisions(loaded.values())
    assert engine.decision_for("key_a").action is Action.BLOCK
    assert engine.decision_for("key_b").action is Action.THROTTLE


def test_audit_records_who_why_and_what_came_before(store: Store) -> None:
    store.record(decisions=[Decision(principal="key_a", action=Action.HARDEN, ts=1.0, reason="medium")])
    store.set_decision(
        Decision(principal="key_a", action=Action.BLOCK, ts=2.0, source="operator"), "confirmed theft", by="alice"
    )
    assert store.clear_decision("key_a", "false positive: internal load test", by="bob") is True
    assert store.clear_decision("key_a") is False
    newest, middle, oldest = store.audit()
    assert (oldest.action, oldest.source, oldest.by, oldest.previous_action) == ("harden", "engine", "engine", None)
    assert (middle.action, middle.by, middle.note, middle.previous_action) == (
        "block",
        "alice",
        "confirmed theft",
        "harden",
    )
    assert (newest.action, newest.by, newest.previous_action) == ("clear", "bob", "block")
    assert newest.recorded_at >= oldest.recorded_at
    assert store.load_decisions() == []
    assert [e.action for e in store.audit(limit=1, offset=1)] == ["block"]
    assert store.audit(principal="key_other") == []


# -- actors, snapshots, principals, stats ------------------------------------------------------
def test_actors_follow_merges(store: Store) -> None:
    store.save_actors({"actor-1": ["k1", "k2"], "actor-2": ["k3"]}, ts=10.0)
    store.save_actors({"actor-1": ["k1", "k2", "k3"]}, ts=20.0)  # actor-2 merged into actor-1
    store.add_findings([_finding(principals=("k1", "k2", "k3", "k4"), actor="actor-1")])
    (actor,) = store.actors()
    assert actor.actor == "actor-1" and set(actor.members) == {"k1", "k2", "k3", "k4"}
    assert actor.first_linked_ts == 10.0 and actor.open_findings == 1 and actor.max_severity is Severity.MEDIUM
    summary = store.principal("k3")
    assert summary is not None and summary.actor == "actor-1"
    assert store.actor("actor-1") == actor and store.actor("actor-2") is None


def test_snapshots_save_replace_and_load(store: Store) -> None:
    assert store.load_snapshot("engine") is None
    store.save_snapshot("engine", b"\x00first", ts=1.0)
    store.save_snapshot("engine", b"\x00\xffsecond" * 1000, ts=2.0)
    assert store.load_snapshot("engine") == b"\x00\xffsecond" * 1000
    (info,) = store.snapshots()
    assert (info.name, info.ts, info.size) == ("engine", 2.0, 8000)


def test_principals_summaries_and_orders(store: Store) -> None:
    store.add_interactions([_interaction(i, principal="busy") for i in range(20)])
    store.add_interactions([_interaction(100 + i, principal="risky") for i in range(3)])
    store.add_interactions([_interaction(200, principal="recent", model="chat")])
    store.add_findings([_finding(principals=("risky",), severity=Severity.HIGH, score=0.9)])
    store.add_findings(
        [_finding(finding_id="fnd-old", principals=("busy",), status="closed", severity=Severity.CRITICAL)]
    )
    store.set_decision(Decision(principal="blocked-only", action=Action.BLOCK, ts=3.0, source="operator"))
    by_risk = store.principals()
    assert by_risk[0].principal == "risky" and by_risk[0].open_findings == 1
    assert by_risk[0].max_severity is Severity.HIGH and by_risk[0].risk == pytest.approx(0.9)
    assert [p.principal for p in store.principals(order_by="queries")] == ["busy", "risky", "recent", "blocked-only"]
    assert store.principals(order_by="last_seen", limit=1)[0].principal == "recent"
    assert [p.principal for p in store.principals(order_by="queries", limit=2, offset=2)] == ["recent", "blocked-only"]
    blocked = store.principal("blocked-only")
    assert blocked is not None and blocked.queries == 0 and blocked.decision is not None
    assert blocked.decision.action is Action.BLOCK
    busy = store.principal("busy")
    assert busy is not None and busy.open_findings == 0  # its only finding is closed
    assert (busy.queries, busy.first_seen_ts, busy.last_seen_ts) == (20, 1_700_000_000.0, 1_700_000_019.0)
    recent = store.principal("recent")
    assert recent is not None and recent.models == ("chat",)
    assert store.principal("nobody") is None


def test_stats_count_per_model_severity_technique_and_hour(store: Store) -> None:
    store.add_interactions([_interaction(i) for i in range(5)] + [_interaction(9, model="chat")])
    store.add_signals([_signal(1.0), _signal(2.0)])
    store.add_findings(
        [
            _finding(finding_id="f1", detected_ts=7200.0),
            _finding(finding_id="f2", detected_ts=7300.0, severity=Severity.LOW),
            _finding(finding_id="f3", detected_ts=18000.0, technique={"id": "AML.T0043", "name": "x"}),
        ]
    )
    stats = store.stats()
    assert stats.interactions == 6 and stats.principals == 1 and stats.signals == 2 and stats.findings == 3
    assert stats.interactions_per_model == {"credit": 5, "chat": 1}
    assert stats.findings_per_severity == {"medium": 2, "low": 1}
    assert stats.findings_per_technique == {"AML.T0024.002": 2, "AML.T0043": 1}
    assert stats.findings_per_hour == ((7200.0, 2), (18000.0, 1))
    assert store.stats(since=10_000.0).findings_per_hour == ((18000.0, 1),)


# -- the engine's own output ---------------------------------------------------------------------
def test_engine_steps_land_intact_and_a_restart_resumes(store_url: str) -> None:
    def engine() -> Engine:
        return Engine(
            {"credit": ModelProfile(id="credit", n_features=3)},
            detectors=[DetectorSpec("volume", {"min_queries": 20, "window": 60.0, "sustained": 2})],
        )

    first = engine()
    events: list[Finding] = []
    with open_store(store_url) as s:
        for i in range(60):
            ts = i * 0.1 if i < 30 else 60.0 + (i - 30) * 0.1  # two windows over the bar
            it = _interaction(i, principal="loud", ts=ts)
            step = first.process(it)
            s.record([it], step.signals, step.findings, step.decisions)
            events.extend(step.findings)
        s.save_snapshot("engine", first.snapshot(), ts=59.0)
    assert [e.status for e in events] == ["open", "updated"]
    with open_store(store_url) as s:
        detail = s.finding(events[0].finding_id)
        assert detail is not None and list(detail.events) == events
        assert detail.finding.action == "harden" and detail.finding.queries_at_detection == 51
        resumed = engine()
        resumed.restore(s.load_snapshot("engine") or b"")
        resumed.load_decisions(s.load_decisions())
        assert s.principal("loud").queries == 60  # type: ignore[union-attr]
    assert resumed.decision_for("loud").action is Action.HARDEN
    assert resumed.queries("loud") == 60


def test_save_step_writes_behind_and_records_the_actor(store: Store) -> None:
    engine = Engine(
        {"credit": ModelProfile(id="credit", n_features=3)},
        detectors=[DetectorSpec("volume", {"min_queries": 20, "window": 60.0, "sustained": 2})],
    )
    for i in range(30):
        it = _interaction(i, principal="loud", ts=i * 0.1)
        store.save_step([it], engine.process(it))  # one call per request, as the gateway does
    store.save_step([_interaction(99, principal="k9")], Step([], [], [], actor="actor-9"))
    store.flush()
    assert store.stats().interactions == 31
    (opened,) = store.findings(principal="loud")
    assert opened.status == "open" and opened.trigger_id == "req-20"
    assert [(a.actor, a.members) for a in store.actors()] == [("actor-9", ("k9",))]


def test_prune_drops_old_traffic_but_keeps_the_security_record(store: Store) -> None:
    store.add_interactions([_interaction(i) for i in range(10)])
    store.add_signals([_signal(1_700_000_000.0 + t) for t in (1.0, 8.0)])
    store.add_findings([_finding()])
    store.set_decision(Decision(principal="key_a", action=Action.BLOCK, ts=1.0, source="operator"))
    assert store.prune(before=1_700_000_005.0) == (5, 1)
    assert [r.id for r in store.interactions(newest_first=False)] == [f"req-{i}" for i in range(5, 10)]
    assert [s.ts for s in store.signals()] == [1_700_000_008.0]
    assert store.finding("fnd-0001") is not None and len(store.load_decisions()) == 1 and len(store.audit()) == 1
    assert store.principal("key_a").queries == 10  # type: ignore[union-attr]
    assert store.prune(before=0.0) == (0, 0)


def test_two_stores_on_one_database_write_the_same_principals_at_once(store_url: str) -> None:
    import threading

    names = [f"key_{n:02d}" for n in range(40)]
    with open_store(store_url) as one, open_store(store_url) as two:

        def pump(store: Store, order: list[str]) -> None:
            for k in range(10):
                store.add_interactions(
                    [_interaction(k * 100 + n, principal=p) for n, p in enumerate(order)], wait=False
                )
                store.add_findings([_finding(finding_id=f"fnd-{p}", principals=(p,), revision=k + 1) for p in order])
            store.flush()

        threads = [
            threading.Thread(target=pump, args=(one, names)),
            threading.Thread(target=pump, args=(two, names[::-1])),  # the opposite row order
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert {p.principal: p.queries for p in one.principals(limit=100)} == dict.fromkeys(names, 20)
        assert one.count_findings() == 40
