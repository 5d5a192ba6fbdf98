"""The typed records that flow through the engine: Interaction, Signal, Finding, Decision.

All are frozen. Time is always the interaction's own ``ts`` (epoch seconds, float); the
core never reads a clock. Numeric inputs and probability outputs are numpy float64
vectors so detectors can work on them without copying.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]
Evidence = dict[str, Any]


class Severity(enum.IntEnum):
    """Ordered severities. ``low``/``info`` mean exposure; ``medium`` and up mean an attack pattern."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            allowed = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r}; allowed: {allowed}") from None


class Action(enum.Enum):
    """What the engine wants done to a principal's traffic."""

    ALLOW = "allow"
    HARDEN = "harden"
    THROTTLE = "throttle"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _ACTION_RANK[self]


_ACTION_RANK = {Action.ALLOW: 0, Action.HARDEN: 1, Action.THROTTLE: 2, Action.BLOCK: 3}


class InputKind(enum.Enum):
    TABULAR = "tabular"
    IMAGE = "image"
    TEXT = "text"


class Client(msgspec.Struct, frozen=True, kw_only=True):
    """Network facts about a request that are not the principal."""

    ip: str | None = None
    user_agent: str | None = None


class Output(msgspec.Struct, frozen=True, kw_only=True):
    """A normalized model output. Any field may be absent."""

    probabilities: Vector | None = None
    label: int | str | None = None
    scores: Vector | None = None
    text: str | None = None
    logprobs: Any = None

    def top_probability(self) -> float | None:
        p = self.probabilities
        if p is None or p.size == 0:
            return None
        return float(p.max())

    def predicted_class(self) -> int | str | None:
        """The class the model chose: the label if given, else the argmax of probabilities/scores."""
        if self.label is not None:
            return self.label
        for vec in (self.probabilities, self.scores):
            if vec is not None and vec.size:
                return int(vec.argmax())  # the method: np.argmax is a Python wrapper around it
        return None

    def margin(self) -> float | None:
        """Top-1 minus top-2 probability: small near the decision boundary."""
        p = self.probabilities
        if p is None or p.size < 2:
            return None
        top2 = np.partition(p, -2)[-2:]
        return float(top2[1] - top2[0])


class Interaction(msgspec.Struct, frozen=True, kw_only=True):
    """One request and its response, normalized. A batch becomes one per instance."""

    id: str
    ts: float
    principal: str
    model: str
    client: Client = Client()
    features: Vector | None = None
    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    output: Output | None = None
    params: dict[str, Any] = {}
    source: str | None = None
    """Where the record came from (``file:line`` for replay), echoed in errors."""
    actor: str | None = None
    """Set by the engine before detectors run, when the principal belongs to an actor."""

    def text(self) -> str | None:
        """All user-visible prompt text: the prompt, or the messages' contents joined."""
        if self.prompt is not None:
            return self.prompt
        if self.messages:
            return "\n".join(m.get("content", "") for m in self.messages)
        return None


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """One detector's observation about one interaction.

    ``score`` is in [0, 1]. ``severity`` is the detector's own reading of how bad the
    pattern is, after its calibrated threshold; the risk engine may raise it when several
    detectors agree. ``related`` names other principals that the evidence ties to this one
    (e.g. shared fingerprints); the risk engine clusters principals into actors from it.
    """

    detector: str
    technique: str
    principal: str
    model: str
    interaction_id: str
    ts: float
    score: float
    severity: Severity
    evidence: Evidence = {}
    related: tuple[str, ...] = ()
    link_weight: float = 0.0
    """How strongly ``related`` ties the principals together (0 = context only, 1 = certain)."""


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """An attack hypothesis about a principal or actor, with evidence and lifecycle."""

    finding_id: str
    status: str  # open | updated | closed
    principals: tuple[str, ...]
    actor: str | None
    model: str
    technique: dict[str, str]
    owasp: tuple[str, ...]
    severity: Severity
    score: float
    detectors: tuple[str, ...]
    first_seen_ts: float
    detected_ts: float
    updated_ts: float
    trigger_id: str
    queries_at_detection: int
    evidence: Evidence
    action: str
    revision: int = 1


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What to do with a principal's traffic from now on.

    ``shadow`` means the decision is only logged, never enforced. ``params`` carries the
    action's settings, e.g. ``{"round": 2}`` for harden or ``{"rate": 1.0}`` for throttle.
    """

    principal: str
    action: Action
    ts: float
    reason: str = ""
    finding_id: str | None = None
    actor: str | None = None
    params: dict[str, Any] = {}
    shadow: bool = False
    source: str = "engine"  # engine | operator

    @property
    def enforced_action(self) -> Action:
        return Action.ALLOW if self.shadow else self.action


ALLOW_ALL = Decision(principal="*", action=Action.ALLOW, ts=0.0, reason="default")
