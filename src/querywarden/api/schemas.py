"""The JSON schemas of the REST API's records, for its OpenAPI document.

They describe what ``querywarden.api.serialize`` writes, field for field.
"""

from __future__ import annotations

from typing import Any

from querywarden.store import OPERATOR_EVENTS

SEVERITIES = ["info", "low", "medium", "high", "critical"]
ACTIONS = ["allow", "harden", "throttle", "block"]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def schemas() -> dict[str, Any]:
    nullable_str = {"type": ["string", "null"]}
    decision = {
        "type": "object",
        "properties": {
            "principal": {"type": "string"},
            "action": {"enum": ACTIONS},
            "ts": {"type": "number"},
            "reason": {"type": "string"},
            "finding_id": nullable_str,
            "actor": nullable_str,
            "params": {"type": "object"},
            "shadow": {"type": "boolean"},
            "source": {"enum": ["engine", "operator"]},
        },
    }
    finding = {
        "type": "object",
        "description": "An attack hypothesis about a principal or actor (DESIGN.md, Findings).",
        "properties": {
            "finding_id": {"type": "string"},
            "status": {"enum": ["open", "updated", "closed"]},
            "principals": {"type": "array", "items": {"type": "string"}},
            "actor": nullable_str,
            "model": {"type": "string"},
            "technique": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}},
            "owasp": {"type": "array", "items": {"type": "string"}},
            "severity": {"enum": SEVERITIES},
            "score": {"type": "number"},
            "detectors": {"type": "array", "items": {"type": "string"}},
            "first_seen_ts": {"type": "number"},
            "detected_ts": {"type": "number"},
            "updated_ts": {"type": "number"},
            "trigger_id": {"type": "string"},
            "queries_at_detection": {"type": "integer"},
            "evidence": {"type": "object"},
            "action": {"type": "string"},
            "revision": {"type": "integer"},
            "triage": {
                "oneOf": [ref("Triage"), {"type": "null"}],
                "description": "What operators did to it; in finding lists and details, not in events.",
            },
        },
    }
    nullable_num = {"type": ["number", "null"]}
    triage = {
        "type": "object",
        "description": "An operator's acknowledgment and close of a finding (wall-clock times).",
        "properties": {
            "acknowledged_by": nullable_str,
            "acknowledged_at": nullable_num,
            "acknowledged_note": nullable_str,
            "closed_by": nullable_str,
            "closed_at": nullable_num,
            "closed_note": nullable_str,
            "closed_revision": {"type": ["integer", "null"], "description": "The finding's revision when closed."},
            "reopened": {"type": "boolean", "description": "Closed, then raised again by the engine."},
        },
    }
    operator_event = {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"},
            "recorded_at": {"type": "number"},
            "event": {"enum": list(OPERATOR_EVENTS)},
            "by": {"type": "string"},
            "subject": {"type": "string", "description": "The finding id, or the user name a login was tried for."},
            "note": {"type": "string"},
            "client_ip": nullable_str,
        },
    }
    signal = {
        "type": "object",
        "properties": {
            "detector": {"type": "string"},
            "technique": {"type": "string"},
            "principal": {"type": "string"},
            "model": {"type": "string"},
            "interaction_id": {"type": "string"},
            "ts": {"type": "number"},
            "score": {"type": "number"},
            "severity": {"enum": SEVERITIES},
            "evidence": {"type": "object"},
            "related": {"type": "array", "items": {"type": "string"}},
        },
    }
    principal = {
        "type": "object",
        "properties": {
            "principal": {"type": "string"},
            "queries": {"type": "integer"},
            "first_seen_ts": {"type": ["number", "null"]},
            "last_seen_ts": {"type": ["number", "null"]},
            "models": {"type": "array", "items": {"type": "string"}},
            "open_findings": {"type": "integer"},
            "max_severity": {"enum": [*SEVERITIES, None]},
            "risk": {"type": "number"},
            "decision": {"oneOf": [ref("Decision"), {"type": "null"}]},
            "actor": nullable_str,
        },
    }
    actor = {
        "type": "object",
        "properties": {
            "actor": {"type": "string"},
            "members": {"type": "array", "items": {"type": "string"}},
            "first_linked_ts": {"type": "number"},
            "open_findings": {"type": "integer"},
            "max_severity": {"enum": [*SEVERITIES, None]},
        },
    }
    audit = {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"},
            "principal": {"type": "string"},
            "action": {"enum": [*ACTIONS, "clear"]},
            "previous_action": nullable_str,
            "ts": {"type": "number"},
            "recorded_at": {"type": "number"},
            "source": {"enum": ["engine", "operator"]},
            "by": {"type": "string"},
            "note": {"type": "string"},
            "reason": {"type": "string"},
            "finding_id": nullable_str,
            "params": {"type": "object"},
            "shadow": {"type": "boolean"},
        },
    }
    interaction = {
        "type": "object",
        "description": "An interaction as the store keeps it; input, output and params only under full retention.",
        "properties": {
            "id": {"type": "string"},
            "ts": {"type": "number"},
            "principal": {"type": "string"},
            "model": {"type": "string"},
            "actor": nullable_str,
            "client_ip": nullable_str,
            "predicted_class": nullable_str,
            "top_probability": {"type": ["number", "null"]},
            "margin": {"type": ["number", "null"]},
            "input_hash": nullable_str,
            "n_features": {"type": ["integer", "null"]},
            "prompt_length": {"type": ["integer", "null"]},
            "input": {"type": ["object", "null"]},
            "output": {"type": ["object", "null"]},
            "params": {"type": ["object", "null"]},
        },
    }
    exposure = {
        "type": "object",
        "description": "What a model's API reveals, its active hardening and an exposure score (0-100) with reasons.",
        "properties": {
            "model": {"type": "string"},
            "output_kind": {"type": "string"},
            "classes": {"type": ["integer", "null"]},
            "reveals": {"type": "array", "items": {"type": "string"}},
            "probabilities": {"type": "boolean"},
            "precision_decimals": {"type": ["integer", "null"], "description": "16 means unrounded floats."},
            "logprobs": {"type": "boolean"},
            "interactions": {"type": "integer"},
            "calls_per_day": {"type": "number"},
            "principals": {"type": "integer"},
            "open_findings": {"type": "integer"},
            "hardening": {"type": "array", "items": {"type": "string"}},
            "decisions": {"type": "object", "additionalProperties": {"type": "integer"}},
            "score": {"type": "integer", "minimum": 0, "maximum": 100},
            "reasons": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"points": {"type": "integer"}, "reason": {"type": "string"}},
                },
            },
            "inferred": {"type": "boolean"},
        },
    }
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    stats = {
        "type": "object",
        "properties": {
            "interactions": {"type": "integer"},
            "principals": {"type": "integer"},
            "signals": {"type": "integer"},
            "findings": {"type": "integer"},
            "interactions_per_model": counts,
            "findings_per_status": counts,
            "findings_per_severity": counts,
            "findings_per_technique": counts,
            "findings_per_hour": {
                "type": "array",
                "items": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "integer"}]},
            },
            "decisions_per_action": counts,
        },
    }
    error = {
        "type": "object",
        "properties": {
            "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}
        },
    }
    change = {
        "type": "object",
        "required": ["action"],
        "additionalProperties": False,
        "properties": {
            "action": {"enum": ACTIONS},
            "params": {"type": "object", "description": 'e.g. {"round": 1, "top_k": 1} or {"rate": 0.2, "burst": 5}'},
            "note": {"type": "string", "maxLength": 500, "description": "Why; kept in the audit log."},
        },
    }
    return {
        "Finding": finding,
        "FindingDetail": {
            "allOf": [
                finding,
                {
                    "type": "object",
                    "properties": {
                        "events": {"type": "array", "items": ref("Finding")},
                        "signals": {"type": "array", "items": ref("Signal")},
                    },
                },
            ]
        },
        "Signal": signal,
        "Decision": decision,
        "DecisionChange": change,
        "Principal": principal,
        "Actor": actor,
        "AuditEntry": audit,
        "OperatorEvent": operator_event,
        "Triage": triage,
        "TriageChange": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"note": {"type": "string", "maxLength": 500, "description": "Why; kept in the audit log."}},
        },
        "Interaction": interaction,
        "Exposure": exposure,
        "Stats": stats,
        "Error": error,
        "Feed": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "kind": {"enum": ["stix", "taxii", "ip", "key"]},
                "source": {"type": "string"},
                "indicators": {"type": "integer"},
                "loaded_ts": {"type": "number"},
                "skipped": {"type": "integer", "description": "Indicators the import could not use."},
            },
        },
        "IntelMatch": {
            "type": "object",
            "properties": {
                "ts": {"type": "number"},
                "principal": {"type": "string"},
                "model": {"type": "string"},
                "interaction_id": {"type": "string"},
                "indicator": {"type": "string"},
                "feed": {"type": "string"},
                "on": {
                    "type": "string",
                    "description": "What matched: the principal, the client address or a fingerprint.",
                },
                "value": {"type": "string"},
                "name": {"type": "string"},
                "severity": {"enum": SEVERITIES},
                "confidence": {"type": "number"},
            },
        },
    }
