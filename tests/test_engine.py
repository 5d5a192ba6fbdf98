"""The engine end to end with a real detector: findings, decisions, actors, snapshots."""

from __future__ import annotations

import numpy as np
import pytest

from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.policy import Policy, Rule
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Action, Decision, Interaction, Severity
from querywarden.errors import DetectorError, TrafficError
from querywarden.plugins import load_detectors

load_detectors()

PROFILE = ModelProfile(id="credit", n_features=3)


def _engine(**kw: object) -> Engine:
    return Engine(
        {"credit": PROFILE},
        detectors=[DetectorSpec("volume", {"min_queries": 20, "window": 60.0, "sustained": 2})],
        **kw,  # type: ignore[arg-type]
    )


def _burst(engine: Engine, principal: str, n: int, start: float, step: float = 0.1) -> list:
    steps = []
    for i in range(n):
        it = Interaction(
            id=f"{principal}-{start}-{i}",
            ts=start + i * step,
            principal=principal,
            model="credit",
            features=np.zeros(3),
        )
        steps.append(engine.process(it))
    return steps


def test_quiet_principal_yields_nothing() -> None:
    engine = _engine()
    steps = _burst(engine, "calm", 10, 0.0, step=5.0)
    assert all(not s.signals and not s.findings for s in steps)
    assert engine.decision_for("calm").action is Action.ALLOW


def test_exposure_then_attack_escalates_and_decides() -> None:
    engine = _engine()
    findings = [f for s in _burst(engine, "loud", 30, 0.0) for f in s.findings]
    assert [f.status for f in findings] == ["open"]
    assert findings[0].severity is Severity.LOW
    assert findings[0].queries_at_detection == 21
    assert findings[0].trigger_id == "loud-0.0-20"
    assert engine.decision_for("loud").action is Action.ALLOW  # low is exposure: alert only
    # a second consecutive window over the bar is a sustained pattern: medium -> harden
    later = [f for s in _burst(engine, "loud", 30, 60.0) for f in s.findings]
    assert later and later[-1].status == "updated" and later[-1].severity is Severity.MEDIUM
    assert later[-1].queries_at_detection == 51  # the detection moment is when it reached medium
    decision = engine.decision_for("loud")
    assert decision.action is Action.HARDEN and decision.finding_id == later[-1].finding_id
    assert later[-1].action == "harden"


def test_unknown_model_is_a_located_traffic_error() -> None:
    engine = _engine()
    it = Interaction(id="x", ts=0.0, principal="p", model="nope", source="t.jsonl:7")
    with pytest.raises(TrafficError, match=r"t\.jsonl:7: unknown model 'nope'; configured: credit"):
        engine.process(it)


def test_unknown_detector_parameter_lists_allowed() -> None:
    with pytest.raises(DetectorError, match="allowed: window"):
        Engine({"credit": PROFILE}, detectors=[DetectorSpec("volume", {"windw": 3})])


def test_operator_pin_wins_and_can_be_cleared() -> None:
    engine = _engine()
    engine.set_decision(Decision(principal="k", action=Action.BLOCK, ts=1.0, reason="analyst"))
    assert engine.decision_for("k").action is Action.BLOCK
    assert engine.decision_for("k").source == "operator"
    engine.clear_decision("k")
    assert engine.decision_for("k").action is Action.ALLOW


def test_shadow_policy_logs_but_does_not_enforce() -> None:
    policy = Policy(rules=(Rule(min_severity=Severity.LOW, action=Action.BLOCK, shadow=True),))
    engine = _engine(policy=policy)
    findings = [f for s in _burst(engine, "loud", 30, 0.0) for f in s.findings]
    assert findings[0].action == "shadow:block"
    decision = engine.decision_for("loud")
    assert decision.shadow and decision.enforced_action is Action.ALLOW


def test_principal_exception_rule_spares_declared_keys_only() -> None:
    policy = Policy(
        rules=(
            Rule(min_severity=Severity.LOW, action=Action.ALLOW, principals=("svc-monitor-*",)),
            Rule(min_severity=Severity.LOW, action=Action.BLOCK),
        )
    )
    engine = _engine(policy=policy)
    spared = [f for s in _burst(engine, "svc-monitor-7", 30, 0.0) for f in s.findings]
    caught = [f for s in _burst(engine, "key-unknown", 30, 0.0) for f in s.findings]
    assert spared and spared[0].action == "allow"  # still a finding, so still on the console
    assert engine.decision_for("svc-monitor-7").enforced_action is Action.ALLOW
    assert caught[0].action == "block"
    assert engine.decision_for("key-unknown").enforced_action is Action.BLOCK


def test_principal_patterns_must_cover_every_principal_of_a_finding() -> None:
    from dataclasses import dataclass

    rule = Rule(min_severity=Severity.LOW, action=Action.ALLOW, principals=("svc-*",))

    @dataclass
    class _F:
        severity: Severity
        technique: dict[str, str]
        principals: tuple[str, ...]

    assert rule.matches(_F(Severity.HIGH, {"id": "AML.T0043"}, ("svc-a", "svc-b")))  # type: ignore[arg-type]
    assert not rule.matches(_F(Severity.HIGH, {"id": "AML.T0043"}, ("svc-a", "stranger")))  # type: ignore[arg-type]


def test_snapshot_restore_resumes_state_and_decisions() -> None:
    engine = _engine()
    _burst(engine, "loud", 30, 0.0)
    _burst(engine, "loud", 30, 60.0)
    blob = engine.snapshot()
    fresh = _engine()
    fresh.restore(blob)
    assert fresh.decision_for("loud").action is Action.HARDEN
    assert fresh.queries("loud") == 60
    # the restored engine continues exactly as the original would
    a = [f.severity for s in _burst(engine, "loud", 30, 120.0) for f in s.findings]
    b = [f.severity for s in _burst(fresh, "loud", 30, 120.0) for f in s.findings]
    assert a == b


def test_flush_closes_stale_findings() -> None:
    engine = _engine()
    _burst(engine, "loud", 30, 0.0)
    engine.process(Interaction(id="late", ts=200_000.0, principal="other", model="credit"))
    closed = engine.flush()
    assert [f.status for f in closed] == ["closed"]
    assert closed[0].principals == ("loud",)


def test_detectors_that_need_only_text_are_skipped_on_interactions_without_text() -> None:
    engine = Engine({"credit": PROFILE}, detectors=[DetectorSpec("llm_leakage"), DetectorSpec("volume")])
    leakage = next(d for d in engine.detectors("credit") if d.name == "llm_leakage")
    calls: list[str] = []
    original = leakage.update
    leakage.update = lambda it: calls.append(it.id) or original(it)  # type: ignore[method-assign]
    engine.process(Interaction(id="numbers", ts=1.0, principal="p", model="credit", features=np.zeros(3)))
    engine.process(Interaction(id="words", ts=2.0, principal="p", model="credit", prompt="hello"))
    assert calls == ["words"]
    assert [d.name for d in engine.detectors("credit")] == ["llm_leakage", "volume"], "all still listed"
