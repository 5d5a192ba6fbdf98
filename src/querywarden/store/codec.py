"""Records to rows and back, and the retention rule for raw input.

Retention decides how much of a request the store keeps:
- ``full``: the sketch plus the input, output and params as JSON (for forensics);
- ``sketch``: a compact digest only: a hash of the input (finds exact repeats without
  keeping the input), the number of features, the L2 norm, the predicted class, the
  top probability, the margin and the prompt length;
- ``none``: the interaction's id, time, principal, model and actor; no request content
  and no client facts.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any

import msgspec
import numpy as np

from querywarden.core.records import Action, Decision, Finding, Interaction, Severity, Signal
from querywarden.errors import StoreError


class Retention(enum.Enum):
    FULL = "full"
    SKETCH = "sketch"
    NONE = "none"

    @classmethod
    def parse(cls, text: str) -> Retention:
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(r.value for r in cls)
            raise StoreError(f"unknown retention {text!r}; allowed: {allowed}") from None


def _enc_hook(obj: Any) -> Any:
    """numpy values appear in evidence and vectors; JSON gets their plain Python form."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, enum.Enum):
        return obj.value
    raise NotImplementedError(f"cannot store a {type(obj).__name__} as JSON")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.json.Decoder()


def dumps(value: Any) -> str:
    try:
        return _encoder.encode(value).decode()
    except (NotImplementedError, TypeError, OverflowError) as exc:
        raise StoreError(f"cannot encode {type(value).__name__} as JSON: {exc}") from exc


def loads(text: str | None) -> Any:
    return None if text is None else _decoder.decode(text)


# -- interactions --------------------------------------------------------------------------
def interaction_row(i: Interaction, retention: Retention) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": i.id,
        "ts": i.ts,
        "principal": i.principal,
        "model": i.model,
        "actor": i.actor,
        "client_ip": None,
        "user_agent": None,
        "input_hash": None,
        "n_features": None,
        "l2_norm": None,
        "predicted_class": None,
        "top_probability": None,
        "margin": None,
        "prompt_length": None,
        "input_json": None,
        "output_json": None,
        "params_json": None,
    }
    if retention is Retention.NONE:
        return row
    row["client_ip"] = i.client.ip
    row["user_agent"] = i.client.user_agent
    text = i.text()
    if i.features is not None:
        features = np.ascontiguousarray(i.features, dtype=np.float64)
        row["input_hash"] = hashlib.blake2b(features.tobytes(), digest_size=16).hexdigest()
        row["n_features"] = int(features.size)
        row["l2_norm"] = float(np.sqrt(features @ features)) if features.size else 0.0
    elif text is not None:
        row["input_hash"] = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    if text is not None:
        row["prompt_length"] = len(text)
    out = i.output
    if out is not None:
        predicted = out.predicted_class()
        row["predicted_class"] = None if predicted is None else str(predicted)
        row["top_probability"] = out.top_probability()
        row["margin"] = out.margin()
    if retention is Retention.FULL:
        row["input_json"] = dumps(_input_of(i))
        row["output_json"] = None if out is None else dumps(_output_of(out))
        row["params_json"] = dumps(i.params) if i.params else None
    return row


def _input_of(i: Interaction) -> dict[str, Any]:
    if i.features is not None:
        return {"features": i.features}
    if i.messages is not None:
        return {"messages": list(i.messages)}
    return {"prompt": i.prompt}


def _output_of(out: Any) -> dict[str, Any]:
    fields = ("probabilities", "label", "scores", "text", "logprobs")
    return {f: getattr(out, f) for f in fields if getattr(out, f) is not None}


# -- signals -------------------------------------------------------------------------------
def signal_row(s: Signal) -> dict[str, Any]:
    return {
        "detector": s.detector,
        "technique": s.technique,
        "principal": s.principal,
        "model": s.model,
        "interaction_id": s.interaction_id,
        "ts": s.ts,
        "score": s.score,
        "severity": int(s.severity),
        "evidence": dumps(s.evidence),
        "related": dumps(s.related),
        "link_weight": s.link_weight,
    }


def signal_from(row: Any) -> Signal:
    return Signal(
        detector=row.detector,
        technique=row.technique,
        principal=row.principal,
        model=row.model,
        interaction_id=row.interaction_id,
        ts=row.ts,
        score=row.score,
        severity=Severity(row.severity),
        evidence=loads(row.evidence),
        related=tuple(loads(row.related)),
        link_weight=row.link_weight,
    )


# -- findings ------------------------------------------------------------------------------
def finding_row(f: Finding) -> dict[str, Any]:
    return {
        "finding_id": f.finding_id,
        "status": f.status,
        "principals": dumps(f.principals),
        "actor": f.actor,
        "model": f.model,
        "technique_id": f.technique["id"],
        "technique_name": f.technique.get("name", ""),
        "owasp": dumps(f.owasp),
        "severity": int(f.severity),
        "score": f.score,
        "detectors": dumps(f.detectors),
        "first_seen_ts": f.first_seen_ts,
        "detected_ts": f.detected_ts,
        "updated_ts": f.updated_ts,
        "trigger_id": f.trigger_id,
        "queries_at_detection": f.queries_at_detection,
        "evidence": dumps(f.evidence),
        "action": f.action,
        "revision": f.revision,
    }


def finding_from(row: Any) -> Finding:
    return Finding(
        finding_id=row.finding_id,
        status=row.status,
        principals=tuple(loads(row.principals)),
        actor=row.actor,
        model=row.model,
        technique={"id": row.technique_id, "name": row.technique_name},
        owasp=tuple(loads(row.owasp)),
        severity=Severity(row.severity),
        score=row.score,
        detectors=tuple(loads(row.detectors)),
        first_seen_ts=row.first_seen_ts,
        detected_ts=row.detected_ts,
        updated_ts=row.updated_ts,
        trigger_id=row.trigger_id,
        queries_at_detection=row.queries_at_detection,
        evidence=loads(row.evidence),
        action=row.action,
        revision=row.revision,
    )


def finding_event_row(f: Finding) -> dict[str, Any]:
    return {
        "finding_id": f.finding_id,
        "revision": f.revision,
        "status": f.status,
        "ts": f.updated_ts,
        "severity": int(f.severity),
        "body": dumps(finding_row(f)),
    }


def finding_event_from(body: str) -> Finding:
    return finding_from(_Row(loads(body)))


class _Row:
    """Attribute access over a dict, so an event body decodes like a table row."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


# -- decisions -----------------------------------------------------------------------------
def decision_row(d: Decision) -> dict[str, Any]:
    return {
        "principal": d.principal,
        "action": d.action.value,
        "ts": d.ts,
        "reason": d.reason,
        "finding_id": d.finding_id,
        "actor": d.actor,
        "params": dumps(d.params),
        "shadow": d.shadow,
        "source": d.source,
    }


def decision_from(row: Any) -> Decision:
    return Decision(
        principal=row.principal,
        action=Action(row.action),
        ts=row.ts,
        reason=row.reason,
        finding_id=row.finding_id,
        actor=row.actor,
        params=loads(row.params),
        shadow=bool(row.shadow),
        source=row.source,
    )
