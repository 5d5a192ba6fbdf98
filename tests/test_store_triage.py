"""Operators acknowledge and close findings in the store, on SQLite and PostgreSQL: the
close holds against a replay, gives way when the engine raises the finding again, and
every change (and every login) is in the operator audit with who, when and why."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from querywarden.core.records import Finding, Severity
from querywarden.store import Store, TriageRefused, open_store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/qw.db"
    return str(request.getfixturevalue("postgres_server").new_database())


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        yield s


def finding(revision: int = 1, status: str = "open", finding_id: str = "fnd-1", **kw: object) -> Finding:
    fields: dict[str, object] = {
        "finding_id": finding_id,
        "status": status,
        "principals": ("key_a",),
        "actor": None,
        "model": "credit",
        "technique": {"id": "AML.T0024.002", "name": "Extract AI Model"},
        "owasp": ("ML05:2023",),
        "severity": Severity.MEDIUM,
        "score": 0.6,
        "detectors": ("volume",),
        "first_seen_ts": 100.0,
        "detected_ts": 150.0,
        "updated_ts": 150.0 + revision,
        "trigger_id": "req-42",
        "queries_at_detection": 42,
        "evidence": {"count": 42},
        "action": "harden",
        "revision": revision,
    }
    fields.update(kw)
    return Finding(**fields)  # type: ignore[arg-type]


def test_acknowledging_keeps_the_finding_active_and_records_who_when_why(store: Store) -> None:
    store.add_findings([finding()])
    before = time.time()
    acknowledged = store.triage_finding(
        "fnd-1", "acknowledge", "looking at it, SOC-7", by="alice", client_ip="10.0.0.5"
    )
    assert acknowledged is not None and acknowledged.status == "open"
    assert [f.finding_id for f in store.findings(status="active")] == ["fnd-1"]
    detail = store.finding("fnd-1")
    assert detail is not None and detail.triage is not None
    t = detail.triage
    assert (t.acknowledged_by, t.acknowledged_note, t.closed_by, t.reopened) == (
        "alice",
        "looking at it, SOC-7",
        None,
        False,
    )
    assert t.acknowledged_at is not None and before <= t.acknowledged_at <= time.time()
    (event,) = store.operator_audit()
    assert (event.event, event.by, event.subject, event.note, event.client_ip) == (
        "acknowledge",
        "alice",
        "fnd-1",
        "looking at it, SOC-7",
        "10.0.0.5",
    )


def test_closing_hides_the_finding_from_active_lists_and_adds_a_closed_event(store: Store) -> None:
    store.add_findings([finding(), finding(2, "updated", severity=Severity.HIGH)])
    closed = store.triage_finding("fnd-1", "close", "false positive: load test", by="bob")
    assert closed is not None and closed.status == "closed" and closed.revision == 2
    assert store.findings(status="active") == [] and store.count_findings(status="closed") == 1
    detail = store.finding("fnd-1")
    assert detail is not None and detail.finding.status == "closed"
    assert [(e.status, e.revision) for e in detail.events] == [("open", 1), ("updated", 2), ("closed", 2)]
    assert detail.triage is not None and (detail.triage.closed_by, detail.triage.closed_revision) == ("bob", 2)
    assert store.stats().findings_per_status == {"closed": 1}


def test_a_closed_finding_stays_closed_on_replay_and_reopens_when_the_engine_raises_it(store: Store) -> None:
    events = [finding(), finding(2, "updated")]
    store.add_findings(events)
    store.triage_finding("fnd-1", "close", "", by="bob")
    store.add_findings(events)  # the same traffic replayed: nothing new from the engine
    assert store.finding("fnd-1").finding.status == "closed"  # type: ignore[union-attr]
    store.add_findings([finding(3, "updated", severity=Severity.HIGH)])  # the engine raised it again
    detail = store.finding("fnd-1")
    assert detail is not None and detail.finding.status == "updated" and detail.finding.severity is Severity.HIGH
    assert detail.triage is not None and detail.triage.reopened and detail.triage.closed_by == "bob"
    assert [f.finding_id for f in store.findings(status="active")] == ["fnd-1"]
    store.triage_finding("fnd-1", "close", "really done", by="bob")  # and it can be closed again
    assert store.finding("fnd-1").triage.reopened is False  # type: ignore[union-attr]


def test_refusals_name_the_reason(store: Store) -> None:
    assert store.triage_finding("fnd-missing", "close", by="bob") is None
    store.add_findings([finding(), finding(2, "closed")])  # the engine closed it itself
    with pytest.raises(TriageRefused, match="finding fnd-1 is closed; it re-opens when the engine raises it again"):
        store.triage_finding("fnd-1", "acknowledge", by="bob")
    with pytest.raises(ValueError, match="allowed: acknowledge, close"):
        store.triage_finding("fnd-1", "resolve", by="bob")
    assert store.operator_audit() == [], "a refused change is not audited"


def test_logins_are_audited_with_the_client_ip(store: Store) -> None:
    store.audit_operator("login_failed", by="alice", subject="alice", client_ip="192.0.2.9")
    store.audit_operator("login", by="alice", subject="alice", client_ip="192.0.2.9")
    assert [(e.event, e.client_ip) for e in store.operator_audit()] == [
        ("login", "192.0.2.9"),
        ("login_failed", "192.0.2.9"),
    ]
    assert [e.event for e in store.operator_audit(event="login_failed")] == ["login_failed"]
    assert [e.seq for e in store.operator_audit(limit=1, offset=1)] == [store.operator_audit()[1].seq]
    with pytest.raises(ValueError, match="unknown operator event 'logout'"):
        store.audit_operator("logout", by="alice", subject="alice")


def test_triage_survives_a_restart(store_url: str) -> None:
    with open_store(store_url) as store:
        store.add_findings([finding(), finding(finding_id="fnd-2")])
        store.triage_finding("fnd-1", "acknowledge", "mine", by="alice")
        store.triage_finding("fnd-2", "close", "noise", by="bob")
    with open_store(store_url) as store:
        triage = store.triage(["fnd-1", "fnd-2", "fnd-3"])
        assert set(triage) == {"fnd-1", "fnd-2"}
        assert triage["fnd-1"].acknowledged_by == "alice" and triage["fnd-2"].closed_note == "noise"
        assert [e.event for e in store.operator_audit()] == ["close", "acknowledge"]
