"""The OpenAPI 3.1 document of the REST API, served at ``/api/openapi.json``.

Written by hand next to the routes rather than generated: the API is small, and a test
holds the two together (every route is described, every described path is routed).
"""

from __future__ import annotations

from typing import Any

import querywarden

SEVERITIES = ["info", "low", "medium", "high", "critical"]
ACTIONS = ["allow", "harden", "throttle", "block"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _p(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


PAGE = [
    _q("limit", "Page size (1-500).", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
    _q("offset", "Rows to skip.", {"type": "integer", "minimum": 0, "default": 0}),
]
TIME = [
    _q("since", "Epoch seconds, inclusive.", {"type": "number"}),
    _q("until", "Epoch seconds, exclusive.", {"type": "number"}),
]


def _page_of(item: str, total: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {
        "items": {"type": "array", "items": _ref(item)},
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
        "next_offset": {"type": ["integer", "null"], "description": "Offset of the next page; null on the last one."},
    }
    if total:
        props["total"] = {"type": "integer"}
    return {"type": "object", "properties": props, "required": ["items", "limit", "offset", "next_offset"]}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}},
        "400": {"$ref": "#/components/responses/BadRequest"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
    }


def _get(
    summary: str, schema: dict[str, Any], params: list[dict[str, Any]] | None = None, not_found: bool = False
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or [], "responses": _ok(schema)}
    if not_found:
        op["responses"]["404"] = {"$ref": "#/components/responses/NotFound"}
    return op


def _schemas() -> dict[str, Any]:
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
            "decision": {"oneOf": [_ref("Decision"), {"type": "null"}]},
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
                        "events": {"type": "array", "items": _ref("Finding")},
                        "signals": {"type": "array", "items": _ref("Signal")},
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


def document() -> dict[str, Any]:
    finding_filters = [
        _q(
            "status", "open, updated, closed or active (not closed).", {"enum": ["open", "updated", "closed", "active"]}
        ),
        _q("severity", "Lowest severity.", {"enum": SEVERITIES}),
        _q("technique", "ATLAS technique id, e.g. AML.T0024.002."),
        _q("principal", "Only findings naming this principal."),
        _q("model", "Only findings on this model."),
        _q("actor", "Only findings on this actor."),
        _q("since", "Detected at or after (epoch seconds).", {"type": "number"}),
    ]
    decision_reply = {
        "type": "object",
        "properties": {
            "decision": {"oneOf": [_ref("Decision"), {"type": "null"}]},
            "enforced_now": {"type": "boolean", "description": "True when a running gateway enforces it at once."},
        },
    }
    change = {
        "summary": "Set an operator decision on a principal; audited, and enforced at once when mounted on serve.",
        "parameters": [_p("principal")],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("DecisionChange")}}},
        "responses": {**_ok(decision_reply), "403": {"$ref": "#/components/responses/Csrf"}},
    }
    clear = {
        "summary": "Lift the principal's decision (back to allow and the policy); audited as clear.",
        "parameters": [_p("principal"), _q("note", "Why; kept in the audit log.")],
        "responses": {**_ok(decision_reply), "403": {"$ref": "#/components/responses/Csrf"}},
    }
    paths: dict[str, Any] = {
        "/openapi.json": {
            "get": {"summary": "This document.", "security": [], "responses": {"200": {"description": "OK"}}}
        },
        "/whoami": {"get": _get("Who the request is authenticated as.", {"type": "object"})},
        "/findings": {
            "get": _get("Findings, most recently updated first.", _page_of("Finding", True), finding_filters + PAGE)
        },
        "/findings/{finding_id}": {
            "get": _get(
                "One finding with its events and the signals behind it.",
                _ref("FindingDetail"),
                [_p("finding_id")],
                True,
            )
        },
        "/principals": {
            "get": _get(
                "Principals, highest risk first (or by queries, last_seen).",
                _page_of("Principal"),
                [_q("order_by", "risk, queries or last_seen.", {"enum": ["risk", "queries", "last_seen"]}), *PAGE],
            )
        },
        "/principals/{principal}": {
            "get": _get("A principal's summary, live decision and audit.", _ref("Principal"), [_p("principal")], True)
        },
        "/principals/{principal}/interactions": {
            "get": _get(
                "A principal's stored interactions, newest first.",
                _page_of("Interaction"),
                [_p("principal"), _q("model", "Only this model."), *TIME, *PAGE],
            )
        },
        "/principals/{principal}/signals": {
            "get": _get(
                "A principal's signals, newest first.",
                _page_of("Signal"),
                [_p("principal"), _q("detector", "Only this detector."), *TIME, *PAGE],
            )
        },
        "/actors": {
            "get": _get(
                "Actors (clusters of principals one adversary is believed to control).", _page_of("Actor"), PAGE
            )
        },
        "/actors/{actor}": {"get": _get("One actor with its findings.", _ref("Actor"), [_p("actor")], True)},
        "/decisions": {
            "get": _get(
                "Current decisions.",
                _page_of("Decision", True),
                [
                    _q("action", "Only this action.", {"enum": ACTIONS}),
                    _q("source", "engine or operator.", {"enum": ["engine", "operator"]}),
                    *PAGE,
                ],
            )
        },
        "/decisions/{principal}": {
            "get": _get("A principal's stored and live decision.", {"type": "object"}, [_p("principal")]),
            "put": change,
            "delete": clear,
        },
        "/audit": {
            "get": _get(
                "Decision changes, newest first.",
                _page_of("AuditEntry"),
                [_q("principal", "Only this principal."), *PAGE],
            )
        },
        "/models": {
            "get": _get(
                "Exposure inventory: every model, most exposed first.",
                {"type": "object", "properties": {"items": {"type": "array", "items": _ref("Exposure")}}},
            )
        },
        "/intel": {
            "get": _get(
                "Loaded threat-intel feeds and the matches recorded in the store, newest first.",
                {
                    "allOf": [
                        _page_of("IntelMatch"),
                        {"type": "object", "properties": {"feeds": {"type": "array", "items": _ref("Feed")}}},
                    ]
                },
                [_q("principal", "Only this principal's matches."), *PAGE],
            )
        },
        "/stats": {
            "get": _get(
                "Counts for the overview.",
                _ref("Stats"),
                [_q("since", "findings_per_hour from this time.", {"type": "number"})],
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "QueryWarden command center API",
            "version": querywarden.__version__,
            "description": "Findings, principals, actors, decisions, models and stats. Lists page with limit/offset.",
        },
        "servers": [{"url": "/api"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token whose SHA-256 is in [console] token_sha256.",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "qw_session",
                    "description": "Console login; state changes also need X-CSRF-Token.",
                },
            },
            "schemas": _schemas(),
            "responses": {
                "BadRequest": {
                    "description": "A parameter or body is invalid; the message names it.",
                    "content": {"application/json": {"schema": _ref("Error")}},
                },
                "Unauthorized": {
                    "description": "No valid token or session.",
                    "content": {"application/json": {"schema": _ref("Error")}},
                },
                "NotFound": {
                    "description": "No such record.",
                    "content": {"application/json": {"schema": _ref("Error")}},
                },
                "Csrf": {
                    "description": "Session request without a valid X-CSRF-Token.",
                    "content": {"application/json": {"schema": _ref("Error")}},
                },
            },
        },
    }
