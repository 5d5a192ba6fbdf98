"""The adapter contract: how one wire protocol maps onto interactions and hardening.

An adapter is stateless. On the request path it validates the client's body
(``parse_request``, cheap, raising ``TrafficError`` for a 400) and hardens what it must;
the engine worker later turns the exchange into interactions (``outputs``), off the
critical path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from querywarden.core.records import Output, Vector
from querywarden.errors import TrafficError
from querywarden.gateway.enforcement.harden import HardenSpec, harden_probabilities


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance of a request: exactly one of features, prompt or messages is set."""

    features: Vector | None = None
    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    instances: list[Instance]
    model: str | None = None
    """The model the body names, if any (OpenAI ``model``)."""
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False


class Adapter:
    """Base class: subclasses set ``name`` and override what their protocol needs."""

    name: ClassVar[str] = ""
    llm: ClassVar[bool] = False

    def parse_request(self, body: Any) -> ParsedRequest:
        raise NotImplementedError

    def outputs(self, body: Any, n: int) -> list[Output | None]:
        """One output per instance, from the upstream's JSON body (None where unreadable)."""
        return [None] * n

    def stream_output(self, chunks: Sequence[bytes]) -> Output | None:
        """The output of a streamed (SSE) response, reassembled from its raw chunks."""
        return None

    def harden_request(self, body: Any, spec: HardenSpec) -> bool:
        """Strip leakage-prone options in place before forwarding. True if the body changed."""
        return False

    def harden_response(self, body: Any, spec: HardenSpec, rng: np.random.Generator) -> bool:
        """Harden the upstream's JSON body in place. True if it changed."""
        return False


def features_matrix(rows: Any, what: str) -> list[Instance]:
    """Numeric instances from a list of rows (or one flat row). Raises ``TrafficError``."""
    if not isinstance(rows, list) or not rows:
        raise TrafficError(f"{what} must be a non-empty list")
    if not isinstance(rows[0], list):
        rows = [rows]
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise TrafficError(f"{what} must be rows of numbers of equal length ({exc})") from None
    arr = arr.reshape(len(arr), -1)
    if not np.isfinite(arr).all():
        raise TrafficError(f"{what} contains NaN or infinite values")
    return [Instance(features=row) for row in arr]


def output_of(pred: Any) -> Output | None:
    """Read one prediction: a probability vector, scores, a label, or a dict naming them."""
    if isinstance(pred, dict):
        for key in ("probabilities", "probs", "scores", "logits"):
            if key in pred:
                out = output_of(pred[key])
                if out is not None and key in ("scores", "logits") and out.probabilities is not None:
                    return Output(scores=out.probabilities, label=pred.get("label"))
                if out is not None:
                    return Output(probabilities=out.probabilities, scores=out.scores, label=pred.get("label"))
        label = pred.get("label", pred.get("class"))
        return Output(label=label) if isinstance(label, int | str) else None
    if isinstance(pred, bool):
        return Output(label=int(pred))
    if isinstance(pred, int | str):
        return Output(label=pred)
    if isinstance(pred, float):
        return Output(scores=np.array([pred]))
    if isinstance(pred, list) and pred and all(isinstance(v, int | float) for v in pred):
        vec = np.asarray(pred, dtype=np.float64)
        if looks_like_probabilities(vec):
            return Output(probabilities=vec)
        return Output(scores=vec)
    return None


def looks_like_probabilities(vec: Vector) -> bool:
    return bool(vec.size >= 2 and (vec >= 0).all() and (vec <= 1).all() and abs(vec.sum() - 1.0) < 1e-3)


def harden_rows(preds: list[Any], spec: HardenSpec, rng: np.random.Generator) -> bool:
    """Harden every probability-vector row of ``preds`` in place. True if any changed."""
    changed = False
    for i, pred in enumerate(preds):
        if isinstance(pred, dict):
            for key in ("probabilities", "probs"):
                if isinstance(pred.get(key), list):
                    changed |= harden_rows_key(pred, key, spec, rng)
            continue
        if isinstance(pred, list) and pred and all(isinstance(v, int | float) for v in pred):
            vec = np.asarray(pred, dtype=np.float64)
            if looks_like_probabilities(vec):
                preds[i] = harden_probabilities(vec, spec, rng).tolist()
                changed = True
    return changed


def harden_rows_key(holder: dict[str, Any], key: str, spec: HardenSpec, rng: np.random.Generator) -> bool:
    value = holder[key]
    if value and all(isinstance(v, int | float) for v in value):  # one flat vector, not a list of rows
        wrapped = [value]
        changed = harden_rows(wrapped, spec, rng)
        holder[key] = wrapped[0]
        return changed
    return harden_rows(value, spec, rng)
