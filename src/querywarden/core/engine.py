"""The engine: one pure object that turns interactions into signals, findings and decisions.

The gateway, the SDK, ``replay`` and the benchmark all drive the same ``Engine``:

    engine = Engine(profiles, detectors=[DetectorSpec("volume")])
    step = engine.process(interaction)        # -> Step(signals, findings, decisions)
    engine.decision_for("key_8f2c")           # O(1): what to do with this principal now

It performs no I/O and reads no clock, so a traffic file always replays to the same
findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from querywarden.core import registry, snapshot
from querywarden.core.actors import ActorGraph
from querywarden.core.detector import Detector, PrincipalStates
from querywarden.core.policy import DEFAULT_POLICY, Policy
from querywarden.core.profile import ModelProfile
from querywarden.core.records import ALLOW_ALL, Action, Decision, Finding, Interaction, Severity, Signal
from querywarden.core.risk import RiskEngine
from querywarden.errors import DetectorError, TrafficError


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """A detector to run: its registered name, its parameters, and the models it watches."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    """Empty means every model."""


@dataclass(frozen=True, slots=True)
class Step:
    """What one interaction caused."""

    signals: list[Signal]
    findings: list[Finding]
    decisions: list[Decision]
    actor: str | None = None


_EMPTY = Step([], [], [])


class Engine:
    def __init__(
        self,
        profiles: Mapping[str, ModelProfile],
        *,
        detectors: Iterable[DetectorSpec] = (),
        policy: Policy = DEFAULT_POLICY,
        risk: RiskEngine | None = None,
        actors: ActorGraph | None = None,
        sweep_every: int = 10_000,
        max_principals: int = 1_000_000,
    ) -> None:
        self.profiles = dict(profiles)
        self.policy = policy
        self.risk = risk or RiskEngine()
        self.actors = actors or ActorGraph()
        self.sweep_every = sweep_every
        self.specs = tuple(detectors)
        self._detectors: dict[str, list[Detector]] = {m: self._build(p) for m, p in self.profiles.items()}
        self._textless = {m: _textless(ds) for m, ds in self._detectors.items()}
        self._queries: PrincipalStates[list[int]] = PrincipalStates(_counter, max_principals)
        self._decisions: dict[str, Decision] = {}
        self._pinned: dict[str, Decision] = {}
        self._processed = 0
        self._last_ts = 0.0

    def _build(self, profile: ModelProfile) -> list[Detector]:
        built = []
        for spec in self.specs:
            if spec.models and profile.id not in spec.models:
                continue
            cls = registry.get(spec.name)
            unknown = set(spec.params) - set(cls.param_names())
            if unknown:
                allowed = ", ".join(n for n in cls.param_names() if n != "profile")
                raise DetectorError(f"detector {spec.name!r} has no parameter {sorted(unknown)}; allowed: {allowed}")
            built.append(cls(profile=profile, **dict(spec.params)))
        # link evidence first: a merge it causes reaches the other detectors on the same interaction
        built.sort(key=lambda det: not det.supplies_links)
        return built

    def add_model(self, profile: ModelProfile) -> None:
        """Start watching a model the engine was not built with (the gateway meets it live)."""
        if profile.id not in self._detectors:
            self.profiles[profile.id] = profile
            self._detectors[profile.id] = self._build(profile)
            self._textless[profile.id] = _textless(self._detectors[profile.id])

    def detectors(self, model: str) -> list[Detector]:
        return list(self._detectors.get(model, ()))

    # -- the hot path -------------------------------------------------------------------
    def process(self, interaction: Interaction) -> Step:
        detectors = self._detectors.get(interaction.model)
        if detectors is None:
            known = ", ".join(sorted(self._detectors))
            raise TrafficError(f"unknown model {interaction.model!r}; configured: {known}", source=interaction.source)
        answer = interaction.output
        if interaction.prompt is None and not interaction.messages and (answer is None or answer.text is None):
            detectors = self._textless[interaction.model]
        self._processed += 1
        self._last_ts = max(self._last_ts, interaction.ts)
        counter = self._queries.get(interaction.principal)
        counter[0] += 1
        actor = self.actors.actor_of(interaction.principal)
        if actor is not None and interaction.actor != actor:
            interaction = msgspec.structs.replace(interaction, actor=actor)

        signals: list[Signal] = []
        for det in detectors:
            out = det.update(interaction)
            if out:
                signals.extend(out)
                if self._link(out):
                    actor = self.actors.actor_of(interaction.principal)
                    if actor != interaction.actor:
                        interaction = msgspec.structs.replace(interaction, actor=actor)

        findings: list[Finding] = []
        if self._processed % self.sweep_every == 0:
            findings.extend(self.risk.sweep(self._last_ts))
        if not signals and not findings:
            return _EMPTY

        decisions: list[Decision] = []
        for sig in signals:
            actor = self.actors.actor_of(sig.principal)
            members = self.actors.members(sig.principal) if actor else (sig.principal,)
            queries = self._queries.get(sig.principal)[0]
            event = self.risk.observe(sig, actor=actor, principals=members, queries=queries)
            if event is None:
                continue
            decision = self._decide(event)
            if decision is not None:
                event = msgspec.structs.replace(event, action=_action_label(decision))
                self.risk.set_action(event.finding_id, event.action)
                decisions.extend(self._apply(decision, event.principals))
            findings.append(event)
        return Step(signals, findings, decisions, self.actors.actor_of(interaction.principal))

    def _link(self, signals: list[Signal]) -> bool:
        """Add the signals' link evidence to the actor graph; True if it merged anything.

        Each merge is handed at once to every detector, of every model, which folds the
        parts' state into the actor's (``Detector.merge``); the detectors still to run on
        the current interaction then see it as the actor's."""
        merged = False
        for sig in signals:
            if sig.link_weight > 0:
                for other in sig.related:
                    merge = self.actors.join(sig.principal, other, sig.link_weight, sig.detector)
                    if merge is not None:
                        merged = True
                        for detectors in self._detectors.values():
                            for det in detectors:
                                det.merge(merge.actor, merge.parts)
        return merged

    def decision_for(self, principal: str) -> Decision:
        """The principal's current decision: an operator's pin wins over the engine's."""
        return self._pinned.get(principal) or self._decisions.get(principal) or ALLOW_ALL

    # -- decisions ----------------------------------------------------------------------
    def _decide(self, finding: Finding) -> Decision | None:
        rule = self.policy.decide(finding)
        if rule is None:
            return None
        return Decision(
            principal=finding.principals[0],
            action=rule.action,
            ts=finding.updated_ts,
            reason=f"{finding.technique['id']} {finding.severity.label}",
            finding_id=finding.finding_id,
            actor=finding.actor,
            params=dict(rule.params),
            shadow=rule.shadow,
        )

    def _apply(self, decision: Decision, principals: Iterable[str]) -> list[Decision]:
        """Apply a decision to each principal unless it already has an equal or stronger one."""
        changed = []
        for p in principals:
            current = self._decisions.get(p)
            if current is not None and current.action.rank >= decision.action.rank and not current.shadow:
                continue
            d = msgspec.structs.replace(decision, principal=p)
            self._decisions[p] = d
            changed.append(d)
        return changed

    def set_decision(self, decision: Decision) -> None:
        """An operator's decision. It pins the principal until cleared with ``clear_decision``."""
        self._pinned[decision.principal] = msgspec.structs.replace(decision, source="operator")

    def clear_decision(self, principal: str) -> None:
        self._pinned.pop(principal, None)
        self._decisions.pop(principal, None)

    def load_decisions(self, decisions: Iterable[Decision]) -> None:
        """Restore persisted decisions (so an attacker cannot wait for a restart)."""
        for d in decisions:
            target = self._pinned if d.source == "operator" else self._decisions
            target[d.principal] = d

    def decisions(self) -> list[Decision]:
        merged = dict(self._decisions)
        merged.update(self._pinned)
        return list(merged.values())

    # -- end of stream and state --------------------------------------------------------
    def flush(self) -> list[Finding]:
        """Close findings that are stale at the latest interaction time."""
        return self.risk.sweep(self._last_ts)

    def queries(self, principal: str) -> int:
        c = self._queries.peek(principal)
        return c[0] if c else 0

    def snapshot(self) -> bytes:
        """All learned state: detectors, risk, actors, counters and decisions."""
        state = {
            "detectors": {m: [(d.name, d.snapshot()) for d in ds] for m, ds in self._detectors.items()},
            "core": snapshot.dumps(
                (self.risk, self.actors, self._queries, self._decisions, self._pinned, self._processed, self._last_ts)
            ),
        }
        return snapshot.dumps(state)

    def restore(self, blob: bytes) -> None:
        state = snapshot.loads(blob)
        for model, saved in state["detectors"].items():
            current = self._detectors.get(model)
            if current is None:
                continue  # the model was removed from the config: its state is dropped
            by_name = dict(saved)
            for det in current:
                if det.name in by_name:
                    det.restore(by_name[det.name])
        (
            self.risk,
            self.actors,
            self._queries,
            self._decisions,
            self._pinned,
            self._processed,
            self._last_ts,
        ) = snapshot.loads(state["core"])


def _textless(detectors: list[Detector]) -> list[Detector]:
    """The detectors to run on an interaction that carries no text: all but those that need
    only text (their ``needs``), which would look and return nothing."""
    return [d for d in detectors if d.needs != _TEXT_ONLY]


_TEXT_ONLY = frozenset({"text"})


def _counter() -> list[int]:
    return [0]


def _action_label(decision: Decision) -> str:
    label = decision.action.value
    return f"shadow:{label}" if decision.shadow else label


__all__ = ["Action", "DetectorSpec", "Engine", "Severity", "Step"]
