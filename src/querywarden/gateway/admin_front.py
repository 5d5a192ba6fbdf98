"""The admin port in process mode: health and metrics here, the rest from the engine process.

The proxy's process answers ``/healthz`` and ``/metrics`` itself, so both keep answering
while the engine process is down, restarting or stalled: ``/healthz`` then says 503 with
``"engine": "down"`` or ``"stalled"`` (see ``engine_health``), and ``/metrics`` has
``querywarden_engine_up 0`` and the requests that passed or were refused meanwhile.
``/metrics`` also carries the engine process's own families (the exports' counters),
fetched from it at scrape time within ``SCRAPE_TIMEOUT`` seconds, and left out when it
does not answer in time, so a stuck engine never holds up a scrape.

Every other path (``/api/``, ``/console/``, ...) goes to the admin app the engine process
serves on a Unix socket, where the live engine, the store and the console's sessions are,
so ``AdminContext.engine`` readers work unchanged. The request goes to the transport
directly, not through a client that would keep one operator's cookies for the next. While
the engine process is down or stalled these paths answer 503 at once; a request it does
not answer within ``FORWARD_TIMEOUT`` seconds gets 504.
"""

from __future__ import annotations

import logging

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from querywarden.gateway.engine_health import engine_state, process_health
from querywarden.gateway.metrics import GatewayMetrics
from querywarden.gateway.remote import ProcessPipeline

log = logging.getLogger("querywarden.gateway")

_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"proxy-connection"}
_OWN_FAMILIES = (b"querywarden_gateway_", b"querywarden_engine_")
"""Families this process reports; the engine process's copies (empty) are left out."""
SCRAPE_TIMEOUT = 2.0
FORWARD_TIMEOUT = 30.0
"""Seconds the engine process's admin app has to answer a forwarded request (console, API)."""


def create_front_app(pipeline: ProcessPipeline, metrics: GatewayMetrics) -> ASGIApp:
    return AdminFront(pipeline, metrics)


class AdminFront:
    def __init__(self, pipeline: ProcessPipeline, metrics: GatewayMetrics) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.transport = httpx.AsyncHTTPTransport(uds=pipeline.admin_uds) if pipeline.admin_uds else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self.transport is not None:
                        await self.transport.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            await process_health(self.pipeline)(scope, receive, send)
        elif path == "/metrics":
            text = generate_latest(self.metrics.registry) + await self._engine_metrics()
            await Response(text, media_type=CONTENT_TYPE_LATEST)(scope, receive, send)
        else:
            await self._forward(scope, receive, send)

    async def _engine_metrics(self) -> bytes:
        if self.transport is None or not self.pipeline.alive:
            return b""
        try:
            response = await self.transport.handle_async_request(_request("GET", b"/metrics", [], SCRAPE_TIMEOUT))
            body = await response.aread()
        except httpx.HTTPError as exc:
            log.warning("engine process metrics left out of the scrape: %r", exc)
            return b""
        kept = []
        for line in body.splitlines(keepends=True):
            name = line.split(b" ", 3)[2] if line.startswith(b"# ") and line.count(b" ") >= 2 else line
            if not name.startswith(_OWN_FAMILIES):
                kept.append(line)
        return b"".join(kept)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.transport is None or not self.pipeline.alive:
            state = engine_state(self.pipeline) if self.transport is not None else "down"
            error = {"code": f"engine_{state}", "message": f"the engine process is {state}; try again shortly"}
            await JSONResponse({"error": error}, status_code=503)(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP]
        if scope.get("client"):
            headers.append((b"x-forwarded-for", scope["client"][0].encode()))
        try:
            response = await self.transport.handle_async_request(
                _request(scope["method"], target, headers, FORWARD_TIMEOUT, b"".join(chunks))
            )
        except httpx.TimeoutException:
            error = {
                "code": "engine_timeout",
                "message": f"the engine process did not answer in {FORWARD_TIMEOUT:.0f} s",
            }
            await JSONResponse({"error": error}, status_code=504)(scope, receive, send)
            return
        except httpx.HTTPError:
            error = {"code": "engine_down", "message": "the engine process did not answer"}
            await JSONResponse({"error": error}, status_code=503)(scope, receive, send)
            return
        try:
            out = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


def _request(
    method: str, target: bytes, headers: list[tuple[bytes, bytes]], timeout: float, body: bytes = b""
) -> httpx.Request:
    return httpx.Request(
        method,
        httpx.URL("http://engine" + target.decode("latin-1")),
        headers=headers,
        content=body,
        extensions={"timeout": httpx.Timeout(timeout, connect=min(timeout, 2.0)).as_dict()},
    )
