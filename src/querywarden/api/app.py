"""The REST API: findings, principals, actors, decisions, models and stats, as JSON.

Every route but ``/openapi.json`` needs an identity (see ``querywarden.console.auth``):
``Authorization: Bearer <token>`` for machines, the console's session cookie for
browsers. A state change made with the cookie must carry ``X-CSRF-Token``. Lists are
paginated with ``limit`` (at most ``MAX_LIMIT``) and ``offset`` and answer
``{"items": [...], "limit", "offset", "next_offset"}``; ``next_offset`` is null on the
last page. Errors answer ``{"error": {"code", "message"}}`` with a 4xx status.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from querywarden.api import serialize
from querywarden.api.openapi import document
from querywarden.console import intel
from querywarden.console.auth import CSRF_HEADER, SAFE_METHODS, Identity
from querywarden.console.context import OPERATOR_ACTIONS, ConsoleContext
from querywarden.console.exposure import inventory
from querywarden.console.web import client_address
from querywarden.core.records import Severity
from querywarden.errors import StoreError
from querywarden.store import OPERATOR_EVENTS, TriageRefused

MAX_LIMIT = 500
MAX_NOTE = 500
FINDING_STATUSES = ("open", "updated", "closed", "active")
PRINCIPAL_ORDERS = ("risk", "queries", "last_seen")
Handler = Callable[[Request, Identity], Awaitable[Response]]


class BadRequest(Exception):
    """A query parameter or body the API cannot use; answered with 400 naming the parameter."""


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _int(request: Request, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: expected an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{name}: must be between {low} and {high if high is not None else 'any'}, got {value}")
    return value


def _float(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadRequest(f"{name}: expected epoch seconds, got {raw!r}") from None


def _choice(request: Request, name: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
    raw = request.query_params.get(name) or default
    if raw is not None and raw not in allowed:
        raise BadRequest(f"{name}: unknown value {raw!r}; allowed: {', '.join(allowed)}")
    return raw


def _page(request: Request) -> tuple[int, int]:
    return _int(request, "limit", 50, low=1, high=MAX_LIMIT), _int(request, "offset", 0)


def paged(items: list[Any], limit: int, offset: int, **extra: Any) -> JSONResponse:
    body = {
        "items": items,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(items) == limit else None,
    }
    body.update(extra)
    return JSONResponse(body)


async def _note(request: Request) -> str:
    """The ``note`` of a JSON body (``{"note": "why"}``); an empty body means no note."""
    raw = await request.body()
    if not raw.strip():
        return ""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("body: expected a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    unknown = set(body) - {"note"}
    if unknown:
        raise BadRequest(f"body: unknown field(s) {sorted(unknown)}; allowed: note")
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise BadRequest(f"note: expected a string of at most {MAX_NOTE} characters")
    return note


def create_api(ctx: ConsoleContext) -> Starlette:
    """The API as an ASGI app, to be mounted at ``/api``."""
    store = ctx.store

    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            who = ctx.auth.identify(request)
            if who is None:
                return error(401, "unauthorized", "log in at /console/login or send Authorization: Bearer <token>")
            if request.method not in SAFE_METHODS and not who.csrf_ok(request.headers.get(CSRF_HEADER)):
                return error(403, "csrf", "a state change with a session cookie needs the X-CSRF-Token header")
            try:
                return await handler(request, who)
            except BadRequest as exc:
                return error(400, "bad_request", str(exc))
            except TriageRefused as exc:
                return error(409, "conflict", exc.reason)
            except StoreError as exc:
                return error(503, "store", exc.located())

        return endpoint

    async def openapi(request: Request) -> Response:
        return JSONResponse(document())

    async def list_findings(request: Request, who: Identity) -> Response:
        limit, offset = _page(request)
        severity = _choice(request, "severity", tuple(s.label for s in Severity))
        filters: dict[str, Any] = {
            "status": _choice(request, "status", FINDING_STATUSES),
            "severity_at_least": severity,
            "technique": request.query_params.get("technique") or None,
            "principal": request.query_params.get("principal") or None,
            "model": request.query_params.get("model") or None,
            "actor": request.query_params.get("actor") or None,
            "since": _float(request, "since"),
        }
        found = store.findings(**filters, limit=limit, offset=offset)
        triage = store.triage([f.finding_id for f in found])
        items = [serialize.triaged(f, triage.get(f.finding_id)) for f in found]
        return paged(items, limit, offset, total=store.count_findings(**filters))

    async def get_finding(request: Request, who: Identity) -> Response:
        detail = store.finding(request.path_params["finding_id"])
        if detail is None:
            return error(404, "not_found", f"no finding {request.path_params['finding_id']!r}")
        body = serialize.triaged(detail.finding, detail.triage)
        body["events"] = [serialize.finding(e) for e in detail.events]
        body["signals"] = [serialize.signal(s) for s in store.signals(finding_id=detail.finding.finding_id, limit=200)]
        return JSONResponse(body)

    def triage_finding(action: str) -> Handler:
        async def handler(request: Request, who: Identity) -> Response:
            fid = request.path_params["finding_id"]
            note = await _note(request)
            client = client_address(request)
            found = ctx.triage(fid, action, note, by=who.name, client_ip=client)
            if found is None:
                return error(404, "not_found", f"no finding {fid!r}")
            detail = store.finding(fid)
            body = serialize.triaged(found, detail.triage if detail is not None else None)
            return JSONResponse({"finding": body})

        return handler

    async def list_principals(request: Request, who: Identity) -> Response:
        limit, offset = _page(request)
        order = _choice(request, "order_by", PRINCIPAL_ORDERS, "risk") or "risk"
        items = [serialize.principal(p) for p in store.principals(order_by=order, limit=limit, offset=offset)]
        return paged(items, limit, offset)

    async def get_principal(request: Request, who: Identity) -> Response:
        name = request.path_params["principal"]
        summary = store.principal(name)
        if summary is None:
            return error(404, "not_found", f"no principal {name!r}")
        body = serialize.principal(summary)
        body["live_decision"] = serialize.decision(ctx.enforced(name))
        body["audit"] = [serialize.audit(e) for e in store.audit(limit=50, principal=name)]
        return JSONResponse(body)

    async def principal_interactions(request: Request, who: Identity) -> Response:
        limit, offset = _page(request)
        rows = store.interactions(
            request.path_params["principal"],
            since=_float(request, "since"),
            until=_float(request, "until"),
            limit=limit,
            offset=offset,
            model=request.query_params.get("model") or None,
        )
        return paged([serialize.interaction(i) for i in rows], limit, offset)

    async def principal_signals(request: Request, who: Identity) -> Response:
        limit, offset = _page(request)
        rows = store.signals(
            request.path_params["principal"],
            detector=request.query_params.get("detector") or None,
            since=_float(request, "since"),
            until=_float(request, "until"),
            limit=limit,
            offset=offset,
        )
        return paged([serialize.signal(s) for s in rows], limit, offset)

    async def list_actors(request: Request, who: Identity) -> Response:
        limit, offset = _page(request)
        actors = store.actors()[offset : offset + limit]
        return paged([serialize.actor(a) for a in actors], limit, offset)

    async def get_actor(request: Request, who: Identity) -> Response:
        name = request.path_params["actor"]
        found = store.actor(name)
        if found is None:
            return error(404, "not_found", f"no actor {name!r}")
        body = serialize.actor(found)
        body["findings"] = [serialize.finding(f) for f in store.findings(actor=name, limit=100)]
        return JSONResponse(body)

    async def list_decisions(request: Request, who: Identity) -> Response:
        limit, offset = _page(request)
        action = _choice(request, "action", ("allow", "harden", "throttle", "block"))
        source = _choice(request, "source", ("engine", "operator"))
        rows = [
            d
            for d in store.load_decisions()
            if (action is None or d.action.value == action) and (source is None or d.source == source)
        ]
        return paged([serialize.decision(d) for d in rows[offset : offset + limit]], limit, offset, total=len(rows))

    async def get_decision(request: Request, who: Identity) -> Response:
        name = request.path_params["principal"]
        stored = next((d for d in store.load_decisions() if d.principal == name), None)
        live = ctx.enforced(name)
        return JSONResponse(
            {
                "principal": name,
                "stored": serialize.decision(stored),
                "live": serialize.decision(live),
                "enforced_now": ctx.live,
            }
        )

    async def put_decision(request: Request, who: Identity) -> Response:
        name = request.path_params["principal"]
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("body: expected a JSON object") from None
        if not isinstance(body, dict):
            raise BadRequest("body: expected a JSON object")
        unknown = set(body) - {"action", "params", "note"}
        if unknown:
            raise BadRequest(f"body: unknown field(s) {sorted(unknown)}; allowed: action, params, note")
        action, params, note = body.get("action"), body.get("params"), body.get("note", "")
        if action not in OPERATOR_ACTIONS[:-1]:
            raise BadRequest(f"action: expected one of {', '.join(OPERATOR_ACTIONS[:-1])}, got {action!r}")
        if params is not None and not isinstance(params, dict):
            raise BadRequest("params: expected an object")
        if not isinstance(note, str) or len(note) > 500:
            raise BadRequest("note: expected a string of at most 500 characters")
        summary = store.principal(name)
        decision = ctx.apply(
            name, action, by=who.name, note=note, params=params, actor=summary.actor if summary else None
        )
        return JSONResponse({"decision": serialize.decision(decision), "enforced_now": ctx.live})

    async def delete_decision(request: Request, who: Identity) -> Response:
        name = request.path_params["principal"]
        ctx.apply(name, "clear", by=who.name, note=request.query_params.get("note", ""))
        return JSONResponse({"principal": name, "decision": None, "enforced_now": ctx.live})

    async def list_audit(request: Request, who: Identity) -> Response:
        limit, offset = _page(request)
        rows = store.audit(limit=limit, offset=offset, principal=request.query_params.get("principal") or None)
        return paged([serialize.audit(e) for e in rows], limit, offset)

    async def list_operator_audit(request: Request, who: Identity) -> Response:
        limit, offset = _page(request)
        rows = store.operator_audit(
            limit,
            offset,
            event=_choice(request, "event", OPERATOR_EVENTS),
            subject=request.query_params.get("subject") or None,
        )
        return paged([serialize.operator_event(e) for e in rows], limit, offset)

    async def list_models(request: Request, who: Identity) -> Response:
        items = [serialize.exposure(e) for e in inventory(store, ctx.profiles, ctx.policy)]
        return JSONResponse({"items": items})

    async def get_stats(request: Request, who: Identity) -> Response:
        return JSONResponse(serialize.stats(store.stats(since=_float(request, "since"))))

    async def get_intel(request: Request, who: Identity) -> Response:
        limit, offset = _page(request)
        found = intel.matches(
            store, principal=request.query_params.get("principal") or None, limit=limit, offset=offset
        )
        return paged(
            [serialize.intel_match(m) for m in found],
            limit,
            offset,
            feeds=[serialize.feed(f) for f in intel.feeds(ctx.intel)],
        )

    async def whoami(request: Request, who: Identity) -> Response:
        return JSONResponse({"name": who.name, "via": who.via, "live": ctx.live})

    routes = [
        Route("/openapi.json", openapi),
        Route("/whoami", guarded(whoami)),
        Route("/findings", guarded(list_findings)),
        Route("/findings/{finding_id}", guarded(get_finding)),
        Route("/findings/{finding_id}/acknowledge", guarded(triage_finding("acknowledge")), methods=["POST"]),
        Route("/findings/{finding_id}/close", guarded(triage_finding("close")), methods=["POST"]),
        Route("/principals", guarded(list_principals)),
        Route("/principals/{principal}", guarded(get_principal)),
        Route("/principals/{principal}/interactions", guarded(principal_interactions)),
        Route("/principals/{principal}/signals", guarded(principal_signals)),
        Route("/actors", guarded(list_actors)),
        Route("/actors/{actor}", guarded(get_actor)),
        Route("/decisions", guarded(list_decisions)),
        Route("/decisions/{principal}", guarded(get_decision), methods=["GET"]),
        Route("/decisions/{principal}", guarded(put_decision), methods=["PUT"]),
        Route("/decisions/{principal}", guarded(delete_decision), methods=["DELETE"]),
        Route("/audit", guarded(list_audit)),
        Route("/audit/operator", guarded(list_operator_audit)),
        Route("/models", guarded(list_models)),
        Route("/stats", guarded(get_stats)),
        Route("/intel", guarded(get_intel)),
    ]
    return Starlette(routes=routes)
