"""Risk engine: lifecycle, severity combination, actor adoption, decay."""

from __future__ import annotations

from querywarden.core.records import Severity, Signal
from querywarden.core.risk import RiskEngine


def _sig(detector: str, sev: Severity, ts: float = 0.0, principal: str = "p", score: float = 0.5) -> Signal:
    return Signal(
        detector=detector,
        technique="AML.T0024.002",
        principal=principal,
        model="m",
        interaction_id=f"i{ts}",
        ts=ts,
        score=score,
        severity=sev,
    )


def test_info_signal_opens_nothing() -> None:
    risk = RiskEngine()
    assert risk.observe(_sig("a", Severity.INFO), actor=None, principals=("p",), queries=1) is None


def test_two_detectors_at_medium_raise_one_level() -> None:
    risk = RiskEngine()
    first = risk.observe(_sig("a", Severity.MEDIUM), actor=None, principals=("p",), queries=1)
    assert first is not None and first.status == "open" and first.severity is Severity.MEDIUM
    second = risk.observe(_sig("b", Severity.MEDIUM, ts=1.0), actor=None, principals=("p",), queries=2)
    assert second is not None and second.status == "updated" and second.severity is Severity.HIGH
    assert second.detectors == ("a", "b")
    assert second.finding_id == first.finding_id


def test_repeated_signal_without_change_is_silent() -> None:
    risk = RiskEngine()
    risk.observe(_sig("a", Severity.MEDIUM), actor=None, principals=("p",), queries=1)
    assert risk.observe(_sig("a", Severity.MEDIUM, ts=2.0), actor=None, principals=("p",), queries=2) is None


def test_exposure_joined_by_attack_keeps_exposure_opening_but_moves_detection() -> None:
    risk = RiskEngine()
    opened = risk.observe(_sig("budget", Severity.LOW, ts=0.0), actor=None, principals=("p",), queries=10)
    raised = risk.observe(_sig("prada", Severity.MEDIUM, ts=5.0), actor=None, principals=("p",), queries=40)
    assert opened is not None and raised is not None
    assert raised.first_seen_ts == 0.0 and raised.detected_ts == 5.0 and raised.queries_at_detection == 40
    # exposure is not a second pattern: a batch customer holds it too, so it never lifts medium to high
    assert raised.severity is Severity.MEDIUM and raised.detectors == ("budget", "prada")
    assert "budget" in raised.evidence, "the finding keeps what the account already held"


def test_actor_adopts_member_findings() -> None:
    risk = RiskEngine()
    a = risk.observe(_sig("x", Severity.MEDIUM, principal="k1"), actor=None, principals=("k1",), queries=1)
    risk.observe(_sig("x", Severity.MEDIUM, principal="k2"), actor=None, principals=("k2",), queries=1)
    merged = risk.observe(
        _sig("y", Severity.MEDIUM, ts=3.0, principal="k2"), actor="actor-1", principals=("k1", "k2"), queries=2
    )
    assert merged is not None and merged.actor == "actor-1"
    assert set(merged.principals) == {"k1", "k2"}
    assert merged.finding_id == a.finding_id  # one finding for the actor, not two
    assert merged.severity is Severity.HIGH


def test_risk_decays_with_half_life() -> None:
    risk = RiskEngine(half_life=100.0)
    risk.observe(_sig("a", Severity.CRITICAL, score=1.0), actor=None, principals=("p",), queries=1)
    assert abs(risk.risk("p", 0.0) - 1.0) < 1e-9
    assert abs(risk.risk("p", 100.0) - 0.5) < 1e-9


def test_sweep_closes_after_quiet_period() -> None:
    risk = RiskEngine(close_after=10.0)
    risk.observe(_sig("a", Severity.MEDIUM), actor=None, principals=("p",), queries=1)
    assert risk.sweep(5.0) == []
    closed = risk.sweep(10.0)
    assert len(closed) == 1 and closed[0].status == "closed"
    assert risk.open_findings() == []
