"""The gateway: an ASGI reverse proxy that puts the response ladder in the request path.

For a request on a known route the gateway:

1. reads the body (refusing it with 413 past ``max_body_bytes``);
2. identifies the principal (401 when none and ``on_missing_principal = "refuse"``);
3. looks up the principal's decision, an O(1) read: ``block`` answers 403 naming the
   finding, ``throttle`` takes a token or answers 429 with Retry-After, ``shadow`` only
   counts what it would have done;
4. validates the body through the route's adapter (400 with the reason);
5. forwards it over a pooled keep-alive connection (502 when the upstream is down, 504
   when it is slow), hardening LLM request options first when the decision says so;
6. returns the answer, hardened when the decision says so, streaming SSE chunk by chunk;
7. hands the exchange to the engine queue, never waiting for detection.

Unknown routes are passed through untouched and counted, after the same principal
identification and the same ``block`` and ``throttle`` steps. ``transport`` lets the gateway
wrap an in-process ASGI app (``httpx.ASGITransport``) instead of a URL, which makes it
plain middleware around any model app.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
import time
from collections.abc import Mapping

import httpx
import msgspec
import numpy as np
from starlette.types import Receive, Scope, Send

from querywarden.core.records import Action, Client, Decision
from querywarden.errors import PolicyError, TrafficError
from querywarden.gateway.adapters import Route, Router
from querywarden.gateway.asgi import (
    body_stream,
    downstream_headers,
    header,
    is_event_stream,
    read_body,
    request_id,
    send_error,
    target,
    upstream_headers,
    upstream_timeout,
)
from querywarden.gateway.enforcement.harden import REDACT_ONLY, HardenSpec, protect
from querywarden.gateway.enforcement.throttle import ThrottleSpec, TokenBuckets
from querywarden.gateway.exchange import Exchange
from querywarden.gateway.metrics import GatewayMetrics
from querywarden.gateway.pipeline import Pipeline
from querywarden.gateway.principal import PrincipalResolver
from querywarden.gateway.settings import GatewaySettings
from querywarden.gateway.upstream import UpstreamTransport, read_answer
from querywarden.text.protected import ProtectedText

log = logging.getLogger("querywarden.gateway")

_MAX_STREAM_COPY = 1 << 20
"""Bytes of a streamed answer kept for the engine; the client always gets all of it."""
_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        pipeline: Pipeline,
        *,
        metrics: GatewayMetrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        protected: Mapping[str, ProtectedText] | None = None,
    ) -> None:
        self.settings = settings
        self.protected = dict(protected or {})
        """Per model id: the protected passages (system prompt) whose echoes every LLM answer loses."""
        self.pipeline = pipeline
        self.metrics = metrics or GatewayMetrics()
        self.router = Router(settings.generic_paths)
        self.principals = PrincipalResolver(settings)
        self.buckets = TokenBuckets(settings.max_throttled)
        self.rng = np.random.default_rng(settings.seed)
        self._transport = transport
        self._pool: httpx.AsyncBaseTransport | None = None
        self._seq = itertools.count(1)
        self._prefix = f"gw-{secrets.token_hex(3)}-"
        self._default_harden = HardenSpec.parse({})
        self._urls: dict[str, httpx.URL] = {}
        self._timeouts = {"timeout": upstream_timeout(settings).as_dict()}

    # -- lifecycle -----------------------------------------------------------------------
    def upstream(self) -> httpx.AsyncBaseTransport:
        """The connection pool to the model server (an httpx transport).

        Requests go to the transport directly, not through ``httpx.AsyncClient.send``: a
        client keeps a cookie jar, and a proxy that stored one caller's ``Set-Cookie`` would
        send it on another caller's requests. (Skipping the client's auth, redirect and
        cookie steps also saves CPU on every request.)
        """
        if self._pool is None:
            self._pool = self._transport or UpstreamTransport(max_connections=self.settings.max_connections)
        return self._pool

    async def startup(self) -> None:
        self.upstream()
        self.pipeline.start()

    async def shutdown(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
        self.pipeline.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        # other scope types (websocket) are not model traffic: the connection is closed unanswered

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- the request path ----------------------------------------------------------------
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        route = self.router.match(scope["method"], scope["path"])
        if route is None:
            outcome = await self._passthrough(scope, receive, send)
            self.metrics.observe("passthrough", outcome, time.perf_counter() - started)
            return
        outcome = await self._guarded(route, scope, receive, send)
        self.metrics.observe(route.adapter.name, outcome, time.perf_counter() - started)

    async def _guarded(self, route: Route, scope: Scope, receive: Receive, send: Send) -> str:
        s = self.settings
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        body = await read_body(headers, receive, s.max_body_bytes)
        if body is None:
            await send_error(send, 413, "too_large", f"request body exceeds {s.max_body_bytes} bytes")
            return "too_large"
        peer = scope.get("client")
        client_ip = peer[0] if peer else None
        principal = self.principals.resolve(headers, client_ip)
        if principal is None:
            await send_error(send, 401, "no_principal", "no API key, bearer token or identity header on the request")
            return "no_principal"

        decision = self.pipeline.decision_for(principal)
        action, refused = await self._gate(principal, decision, send)
        if refused is not None:
            return refused

        rid = request_id(headers) or f"{self._prefix}{next(self._seq)}"
        try:
            payload = _DECODER.decode(body)
        except msgspec.DecodeError as exc:
            log.info("request %s from %s: malformed JSON: %s", rid, principal, exc)
            await send_error(send, 400, "bad_request", f"malformed JSON: {exc}", request_id=rid)
            return "bad_request"
        try:
            parsed = route.adapter.parse_request(payload)
        except TrafficError as exc:
            log.info("request %s from %s: %s", rid, principal, exc.reason)
            await send_error(send, 400, "bad_request", exc.reason, request_id=rid)
            return "bad_request"
        if (s.on_engine_failure == "closed" and not self.pipeline.alive) or (
            s.on_overflow == "closed" and not self.pipeline.has_room()
        ):
            await send_error(send, 503, "overloaded", "detection is unavailable; try again later", request_id=rid)
            return "overloaded"

        spec = self._harden_spec(decision) if action is Action.HARDEN else None
        if spec is not None and route.adapter.harden_request(payload, spec):
            body = _ENCODER.encode(payload)
        exchange = Exchange(
            id=rid,
            ts=time.time(),
            principal=principal,
            model=self._model(route, parsed.model),
            client=Client(ip=client_ip, user_agent=header(headers, b"user-agent")),
            adapter=route.adapter,
            request=parsed,
        )
        if route.adapter.llm and (protected := self.protected.get(exchange.model)) is not None:
            spec = protect(spec or REDACT_ONLY, protected, parsed.instances)  # declared passages never go out
        return await self._forward(scope, headers, body, rid, client_ip, exchange, spec, send)

    async def _gate(self, principal: str, decision: Decision, send: Send) -> tuple[Action, str | None]:
        """Apply ``block`` and ``throttle``: the action left to apply, and the outcome when refused."""
        action = decision.action
        if action is not Action.ALLOW and decision.shadow:
            self.metrics.shadowed.labels(action.value).inc()
            return Action.ALLOW, None
        if action is Action.BLOCK:
            await send_error(send, 403, "blocked", "this principal is blocked", finding_id=decision.finding_id)
            return action, "blocked"
        if action is Action.THROTTLE:
            wait = self._throttle(principal, decision)
            if wait > 0:
                retry = str(max(1, math.ceil(wait))).encode()
                await send_error(
                    send, 429, "throttled", "rate limited", extra=[(b"retry-after", retry)], retry_after=wait
                )
                return action, "throttled"
        return action, None

    def _url(self, target: str) -> httpx.URL:
        """The upstream URL for a path (parsed once per distinct path: parsing costs more than proxying)."""
        url = self._urls.get(target)
        if url is None:
            if len(self._urls) >= 1024:
                self._urls.clear()
            url = self._urls[target] = httpx.URL(self.settings.upstream.rstrip("/") + target)
        return url

    def _throttle(self, principal: str, decision: Decision) -> float:
        try:
            spec = ThrottleSpec.parse(decision.params)
        except PolicyError as exc:
            log.error("decision for %s has bad throttle params (%s); using the defaults", principal, exc)
            spec = ThrottleSpec.parse({})
        key = principal
        if self.settings.throttle_scope == "actor":
            key = decision.actor or self.pipeline.actor_of(principal) or principal
        return self.buckets.take(key, spec, time.monotonic())

    def _harden_spec(self, decision: Decision) -> HardenSpec:
        if not decision.params:
            return self._default_harden
        try:
            return HardenSpec.parse(decision.params)
        except PolicyError as exc:
            log.error("decision for %s has bad harden params (%s); using the defaults", decision.principal, exc)
            return self._default_harden

    def _model(self, route: Route, named: str | None) -> str:
        name = route.model or named or self.settings.default_model or "default"
        return self.settings.models.get(name, name)

    async def _forward(
        self,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        rid: str,
        client_ip: str | None,
        exchange: Exchange,
        spec: HardenSpec | None,
        send: Send,
    ) -> str:
        out_headers = upstream_headers(headers, client_ip, rid, identity=True)
        pool = self.upstream()
        try:
            if isinstance(pool, UpstreamTransport):  # the pool's own path skips building an httpx.Request
                response = await pool.forward(
                    scope["method"], self._url(target(scope)), out_headers, body, self._timeouts["timeout"]
                )
            else:
                request = httpx.Request(
                    scope["method"],
                    self._url(target(scope)),
                    headers=out_headers,
                    content=body,
                    extensions=self._timeouts,
                )
                response = await pool.handle_async_request(request)
        except httpx.TimeoutException:
            await send_error(send, 504, "upstream_timeout", "the model server did not answer in time", request_id=rid)
            return "upstream_timeout"
        except httpx.HTTPError as exc:
            log.warning("request %s: upstream unreachable: %s", rid, exc)
            await send_error(send, 502, "upstream_error", "the model server is unreachable", request_id=rid)
            return "upstream_error"
        raw_headers = response.headers.raw
        try:
            if is_event_stream(raw_headers):
                return await self._stream(response, exchange, send, spec)
            raw = await read_answer(response, raw_headers)
        except httpx.TimeoutException:
            await send_error(send, 504, "upstream_timeout", "the model server did not answer in time", request_id=rid)
            return "upstream_timeout"
        except httpx.HTTPError as exc:
            log.warning("request %s: upstream failed mid-answer: %s", rid, exc)
            await send_error(send, 502, "upstream_error", "the model server closed the connection", request_id=rid)
            return "upstream_error"
        finally:
            await response.aclose()
        outcome = "forwarded"
        if response.status_code >= 400:
            outcome = "upstream_status"
        elif spec is not None:
            out = self._harden(exchange, raw, spec)
            if out is not None:
                raw = out
                outcome = "hardened"
        if exchange.response is None:
            exchange.response_raw = raw
        resp_headers = downstream_headers(raw_headers, decoded=True)
        resp_headers.append((b"content-length", str(len(raw)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": resp_headers})
        if outcome != "upstream_status":
            # queued before the last byte leaves, so a client that saw its answer can rely on
            # the engine having it; a full queue is counted by the pipeline (fail-open)
            self.pipeline.submit(exchange)
        await send({"type": "http.response.body", "body": raw})
        return "forwarded" if outcome == "upstream_status" else outcome

    def _harden(self, exchange: Exchange, raw: bytes, spec: HardenSpec) -> bytes | None:
        try:
            original = _DECODER.decode(raw)
            payload = _DECODER.decode(raw)
        except msgspec.DecodeError:
            return None
        exchange.response = original  # the engine learns from what the model said, not the hardened copy
        if exchange.adapter.harden_response(payload, spec, self.rng):
            return _ENCODER.encode(payload)
        return None

    async def _stream(self, response: httpx.Response, exchange: Exchange, send: Send, spec: HardenSpec | None) -> str:
        """Pass an SSE answer through chunk by chunk, keeping a bounded copy for the engine.

        Hardened LLM answers go through a streaming redactor: PII is replaced event by event,
        holding back only the tail that could still be the start of a match.
        """
        headers = downstream_headers(response.headers.raw, decoded=False)
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        redactor = (
            spec.sse_redactor() if spec is not None and exchange.adapter.llm and response.status_code < 400 else None
        )
        kept: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            if size < _MAX_STREAM_COPY:
                kept.append(chunk)
                size += len(chunk)
            out = redactor.feed(chunk) if redactor is not None else chunk
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
        exchange.stream = kept  # the engine learns from what the model said, not the redacted copy
        if response.status_code < 400:
            self.pipeline.submit(exchange)
        await send({"type": "http.response.body", "body": redactor.finish() if redactor is not None else b""})
        return "hardened" if redactor is not None and redactor.redacted else "forwarded"

    async def _passthrough(self, scope: Scope, receive: Receive, send: Send) -> str:
        """Forward an unknown route untouched: body streamed both ways, headers kept.

        The principal's ``block`` and ``throttle`` apply here as on model routes, so a
        blocked caller cannot reach the model through a path no adapter knows (a new model
        version, an embeddings endpoint). ``harden`` cannot rewrite a body no adapter reads:
        the answer passes as it is, counted as outcome ``not_hardened``.
        """
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        peer = scope.get("client")
        client_ip = peer[0] if peer else None
        principal = self.principals.resolve(headers, client_ip)
        if principal is None:
            await send_error(send, 401, "no_principal", "no API key, bearer token or identity header on the request")
            return "no_principal"
        action, refused = await self._gate(principal, self.pipeline.decision_for(principal), send)
        if refused is not None:
            return refused
        out_headers = upstream_headers(headers, client_ip, None, identity=False)
        has_body = header(headers, b"content-length") not in (None, "0") or header(headers, b"transfer-encoding")
        request = httpx.Request(
            scope["method"],
            self._url(target(scope)),
            headers=out_headers,
            content=body_stream(receive) if has_body else None,
            extensions=self._timeouts,
        )
        try:
            response = await self.upstream().handle_async_request(request)
        except httpx.TimeoutException:
            await send_error(send, 504, "upstream_timeout", "the model server did not answer in time")
            return "upstream_timeout"
        except httpx.HTTPError:
            await send_error(send, 502, "upstream_error", "the model server is unreachable")
            return "upstream_error"
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": downstream_headers(response.headers.raw, decoded=False),
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()
        return "not_hardened" if action is Action.HARDEN else "forwarded"
