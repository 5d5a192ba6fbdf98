"""The OpenAPI 3.1 document of the REST API, served at ``/api/openapi.json``.

Written by hand next to the routes rather than generated: the API is small, and a test
holds the two together (every route is described, every described path is routed).
"""

from __future__ import annotations

from typing import Any

import querywarden
from querywarden.api.schemas import ACTIONS, SEVERITIES, ref, schemas
from querywarden.store import OPERATOR_EVENTS


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
        "items": {"type": "array", "items": ref(item)},
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
            "decision": {"oneOf": [ref("Decision"), {"type": "null"}]},
            "enforced_now": {"type": "boolean", "description": "True when a running gateway enforces it at once."},
        },
    }
    change = {
        "summary": "Set an operator decision on a principal; audited, and enforced at once when mounted on serve.",
        "parameters": [_p("principal")],
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref("DecisionChange")}}},
        "responses": {**_ok(decision_reply), "403": {"$ref": "#/components/responses/Csrf"}},
    }
    clear = {
        "summary": "Lift the principal's decision (back to allow and the policy); audited as clear.",
        "parameters": [_p("principal"), _q("note", "Why; kept in the audit log.")],
        "responses": {**_ok(decision_reply), "403": {"$ref": "#/components/responses/Csrf"}},
    }

    def triage(summary: str) -> dict[str, Any]:
        return {
            "summary": summary,
            "parameters": [_p("finding_id")],
            "requestBody": {"required": False, "content": {"application/json": {"schema": ref("TriageChange")}}},
            "responses": {
                **_ok({"type": "object", "properties": {"finding": ref("Finding")}}),
                "403": {"$ref": "#/components/responses/Csrf"},
                "404": {"$ref": "#/components/responses/NotFound"},
                "409": {"$ref": "#/components/responses/Conflict"},
            },
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
                ref("FindingDetail"),
                [_p("finding_id")],
                True,
            )
        },
        "/findings/{finding_id}/acknowledge": {
            "post": triage("Acknowledge a finding: it stays active, marked with who, when and why; audited.")
        },
        "/findings/{finding_id}/close": {
            "post": triage("Close a finding; audited. It re-opens when the engine raises it again.")
        },
        "/principals": {
            "get": _get(
                "Principals, highest risk first (or by queries, last_seen).",
                _page_of("Principal"),
                [_q("order_by", "risk, queries or last_seen.", {"enum": ["risk", "queries", "last_seen"]}), *PAGE],
            )
        },
        "/principals/{principal}": {
            "get": _get("A principal's summary, live decision and audit.", ref("Principal"), [_p("principal")], True)
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
        "/actors/{actor}": {"get": _get("One actor with its findings.", ref("Actor"), [_p("actor")], True)},
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
        "/audit/operator": {
            "get": _get(
                "Operator events other than decisions (finding triage, console logins), newest first.",
                _page_of("OperatorEvent"),
                [
                    _q("event", "Only this event.", {"enum": list(OPERATOR_EVENTS)}),
                    _q("subject", "Only this finding id or login name."),
                    *PAGE,
                ],
            )
        },
        "/models": {
            "get": _get(
                "Exposure inventory: every model, most exposed first.",
                {"type": "object", "properties": {"items": {"type": "array", "items": ref("Exposure")}}},
            )
        },
        "/intel": {
            "get": _get(
                "Loaded threat-intel feeds and the matches recorded in the store, newest first.",
                {
                    "allOf": [
                        _page_of("IntelMatch"),
                        {"type": "object", "properties": {"feeds": {"type": "array", "items": ref("Feed")}}},
                    ]
                },
                [_q("principal", "Only this principal's matches."), *PAGE],
            )
        },
        "/stats": {
            "get": _get(
                "Counts for the overview.",
                ref("Stats"),
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
            "schemas": schemas(),
            "responses": {
                "BadRequest": {
                    "description": "A parameter or body is invalid; the message names it.",
                    "content": {"application/json": {"schema": ref("Error")}},
                },
                "Unauthorized": {
                    "description": "No valid token or session.",
                    "content": {"application/json": {"schema": ref("Error")}},
                },
                "NotFound": {
                    "description": "No such record.",
                    "content": {"application/json": {"schema": ref("Error")}},
                },
                "Conflict": {
                    "description": "The record's state does not allow the change (e.g. the finding is closed).",
                    "content": {"application/json": {"schema": ref("Error")}},
                },
                "Csrf": {
                    "description": "Session request without a valid X-CSRF-Token.",
                    "content": {"application/json": {"schema": ref("Error")}},
                },
            },
        },
    }
