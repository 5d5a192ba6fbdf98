"""ASGI and HTTP plumbing for the gateway: bodies, headers, request ids and error answers.

Kept apart from the request flow in ``app`` so that module reads as the ladder it applies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
from starlette.types import Message, Receive, Scope, Send

from querywarden.gateway.settings import GatewaySettings

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
_JSON = (b"content-type", b"application/json")


def upstream_timeout(s: GatewaySettings) -> httpx.Timeout:
    return httpx.Timeout(s.read_timeout, connect=s.connect_timeout, pool=s.connect_timeout)


async def read_body(headers: list[tuple[bytes, bytes]], receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it is known to exceed ``limit``."""
    declared = header(headers, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def body_stream(receive: Receive) -> AsyncIterator[bytes]:
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        more = message.get("more_body", False)


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode("latin-1")
    return None


def is_event_stream(raw: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and v.startswith(b"text/event-stream") for k, v in raw)


def request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    rid = header(headers, b"x-request-id")
    if rid and len(rid) <= 128 and rid.isprintable():
        return rid
    return None


def target(scope: Scope) -> str:
    path: str = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    qs: bytes = scope.get("query_string", b"")
    return f"{path}?{qs.decode('latin-1')}" if qs else path


def upstream_headers(
    headers: list[tuple[bytes, bytes]], client_ip: str | None, rid: str | None, *, identity: bool
) -> list[tuple[bytes, bytes]]:
    out = [(k, v) for k, v in headers if k not in _HOP_BY_HOP and not (identity and k == b"accept-encoding")]
    if identity:
        out.append((b"accept-encoding", b"identity"))
    if rid is not None and header(headers, b"x-request-id") is None:
        out.append((b"x-request-id", rid.encode("latin-1")))
    if client_ip:
        prior = header(headers, b"x-forwarded-for")
        out = [(k, v) for k, v in out if k != b"x-forwarded-for"]
        out.append((b"x-forwarded-for", (f"{prior}, {client_ip}" if prior else client_ip).encode("latin-1")))
    return out


def downstream_headers(raw: list[tuple[bytes, bytes]], *, decoded: bool) -> list[tuple[bytes, bytes]]:
    out = []
    for k, v in raw:
        lk = k.lower()
        if lk in _HOP_BY_HOP or (decoded and lk == b"content-encoding"):
            continue
        out.append((lk, v))
    return out


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    extra: list[tuple[bytes, bytes]] | None = None,
    **fields: Any,
) -> None:
    """A JSON error body that says what happened and, for a block, which finding caused it."""
    error: dict[str, Any] = {"code": code, "message": message}
    error.update({k: v for k, v in fields.items() if v is not None})
    body = msgspec.json.encode({"error": error})
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
