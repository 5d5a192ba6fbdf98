"""A lean HTTP/1.1 keep-alive pool to the upstream, as an httpx transport.

The gateway speaks httpx's request/response model to its model server (and can take any
httpx transport, e.g. ``httpx.ASGITransport`` to wrap an in-process app), but httpx's
default transport spends about a millisecond of CPU per request in its connection pool,
more than the whole latency budget. This transport does the one thing the gateway needs,
HTTP/1.1 with keep-alive to a known origin, directly on asyncio streams: roughly a tenth
of the cost. It also works under ``httpx.AsyncClient(transport=...)``.

Behaviour a proxy needs:
- connections are reused LIFO and dropped after ``keepalive_expiry`` idle seconds (below
  uvicorn's default 5 s keep-alive, so the server rarely closes one under us); a request
  sent on a reused connection that the server had closed is retried once on a fresh one;
- bodies are streamed both ways: ``Content-Length``, chunked, or read-until-close; a
  chunked (e.g. SSE) answer is handed on chunk by chunk;
- errors are httpx's own (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``,
  ``RemoteProtocolError``...), so callers handle one exception family.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx

_NO_BODY_STATUS = frozenset({204, 304})
_MAX_HEAD = 64 * 1024
_READ_SIZE = 64 * 1024


class _Conn:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()


class _Stale(Exception):
    """A reused connection was closed by the server before it answered."""


class UpstreamTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int = 256, keepalive_expiry: float = 4.0) -> None:
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self._idle: dict[tuple[str, str, int], deque[_Conn]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._ssl: ssl.SSLContext | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        framed = any(k.lower() in (b"transfer-encoding", b"content-length") for k, _ in request.headers.raw)
        body = request.stream if framed else None
        return await self._call(request.method, request.url, _request_head(request), body, timeouts, request)

    async def forward(
        self,
        method: str,
        url: httpx.URL,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        """The gateway's own call: ``handle_async_request`` for a body already in hand,
        without building an ``httpx.Request`` first (normalizing its headers cost about a
        fifth of the proxy's CPU per request). The upstream gets the same bytes httpx would
        send: ``Host`` first, then ``headers`` (without Host or Content-Length), then
        ``Content-Length``. Errors carry no request."""
        lines = [b"%s %s HTTP/1.1\r\nHost: %s" % (method.encode(), url.raw_path, url.netloc)]
        lines.extend(b"%s: %s" % (k, v) for k, v in headers)
        lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
        return await self._call(method, url, b"\r\n".join(lines), body, timeouts, None)

    async def _call(
        self,
        method: str,
        url: httpx.URL,
        head: bytes,
        body: Any,
        timeouts: dict[str, float | None],
        request: httpx.Request | None,
    ) -> httpx.Response:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_connections)
        if self._slots.locked():  # a timer per request costs more than the proxying: arm one only to wait
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no free connection to the upstream", request=request) from None
        else:
            await self._slots.acquire()  # returns at once: a slot is free
        try:
            return await self._send(method, url, head, body, timeouts, request)
        except BaseException:
            self._slots.release()
            raise

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        head: bytes,
        body: Any,
        timeouts: dict[str, float | None],
        request: httpx.Request | None,
    ) -> httpx.Response:
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        reusable_body = isinstance(body, bytes | httpx.ByteStream) or body is None
        conn = self._reuse(origin)
        fresh = conn is None
        for _attempt in range(2):
            if conn is None:
                conn = await self._connect(origin, request, timeouts.get("connect"))
            try:
                status, reason, headers = await self._exchange(conn, request, head, body, timeouts, fresh)
                break
            except _Stale:
                conn.close()
                if not reusable_body:
                    raise httpx.RemoteProtocolError(
                        "upstream closed a kept-alive connection", request=request
                    ) from None
                conn, fresh = None, True
            except BaseException:
                conn.close()
                raise
        else:  # unreachable: a fresh connection never raises _Stale
            raise httpx.RemoteProtocolError("upstream closed the connection", request=request)
        stream = _ResponseBody(self, origin, conn, method, request, status, headers, timeouts.get("read"))
        return httpx.Response(
            status,
            headers=headers,
            stream=stream,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()

    def _reuse(self, origin: tuple[str, str, int]) -> _Conn | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < self.keepalive_expiry and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    def release(self, origin: tuple[str, str, int], conn: _Conn | None) -> None:
        """Return a connection (None when it was closed) and free its slot."""
        if conn is not None:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(origin, deque()).append(conn)
        if self._slots is not None:
            self._slots.release()

    async def _connect(
        self, origin: tuple[str, str, int], request: httpx.Request | None, timeout: float | None
    ) -> _Conn:
        scheme, host, port = origin
        if scheme == "https" and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            async with asyncio.timeout(timeout):
                tls = self._ssl if scheme == "https" else None
                reader, writer = await asyncio.open_connection(host, port, ssl=tls, limit=_MAX_HEAD)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}", request=request) from None
        return _Conn(reader, writer)

    async def _exchange(
        self,
        conn: _Conn,
        request: httpx.Request | None,
        head: bytes,
        body: Any,
        timeouts: dict[str, float | None],
        fresh: bool,
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        writer = conn.writer
        try:
            if isinstance(body, bytes | httpx.ByteStream) or body is None:
                if isinstance(body, httpx.ByteStream):
                    body = b"".join([c async for c in body])
                writer.write(head + body if body is not None else head)
                if writer.transport.get_write_buffer_size():  # the socket took less than all of it
                    async with asyncio.timeout(timeouts.get("write")):
                        await writer.drain()
                elif writer.transport.is_closing():
                    raise ConnectionResetError("the upstream closed the connection")
            else:
                async with asyncio.timeout(timeouts.get("write")):
                    writer.write(head)
                    async for chunk in body:
                        if chunk:
                            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            await writer.drain()
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("writing to the upstream timed out", request=request) from None
        except OSError as exc:
            if not fresh:
                raise _Stale from None
            raise httpx.WriteError(str(exc), request=request) from None
        try:
            async with asyncio.timeout(timeouts.get("read")):
                raw = await conn.reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise httpx.ReadTimeout("the upstream did not answer in time", request=request) from None
        except asyncio.IncompleteReadError as exc:
            if not exc.partial and not fresh:
                raise _Stale from None
            raise httpx.RemoteProtocolError(
                "upstream closed the connection before answering", request=request
            ) from None
        except (asyncio.LimitOverrunError, ValueError):
            raise httpx.RemoteProtocolError("upstream response head too large", request=request) from None
        except OSError as exc:
            if not fresh:
                raise _Stale from None
            raise httpx.ReadError(str(exc), request=request) from None
        return _parse_head(raw, request)


def _request_head(request: httpx.Request) -> bytes:
    url = request.url
    target = url.raw_path
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), target)]
    lines.extend(b"%s: %s" % (k, v) for k, v in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _parse_head(raw: bytes, request: httpx.Request | None) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"malformed status line from upstream: {lines[0][:80]!r}", request=request)
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise httpx.RemoteProtocolError("malformed header line from upstream", request=request)
        headers.append((name.strip(), value.strip()))
    return int(parts[1]), parts[2] if len(parts) > 2 else b"", headers


class _ResponseBody(httpx.AsyncByteStream):
    """The upstream's body as it arrives; the connection goes back to the pool once it is read."""

    def __init__(
        self,
        transport: UpstreamTransport,
        origin: tuple[str, str, int],
        conn: _Conn,
        method: str,
        request: httpx.Request | None,
        status: int,
        headers: list[tuple[bytes, bytes]],
        timeout: float | None,
    ) -> None:
        self.transport = transport
        self.origin = origin
        self.conn: _Conn | None = conn
        self.request = request
        self.timeout = timeout
        self.length: int | None = None
        self.chunked = False
        self.keep_alive = True
        for k, v in headers:
            lk = k.lower()
            if lk == b"content-length" and v.isdigit():
                self.length = int(v)
            elif lk == b"transfer-encoding" and b"chunked" in v.lower():
                self.chunked = True
            elif lk == b"connection" and b"close" in v.lower():
                self.keep_alive = False
        if method == "HEAD" or status in _NO_BODY_STATUS or 100 <= status < 200:
            self.length, self.chunked = 0, False
        elif self.length is None and not self.chunked:
            self.keep_alive = False  # the body ends when the upstream closes the connection
        self.done = False

    async def _read(self, coro: Any) -> bytes:
        try:
            async with asyncio.timeout(self.timeout):
                return bytes(await coro)
        except TimeoutError:
            raise httpx.ReadTimeout("the upstream stopped sending", request=self.request) from None
        except (asyncio.IncompleteReadError, OSError, ValueError, asyncio.LimitOverrunError) as exc:
            raise httpx.RemoteProtocolError(f"upstream body cut short: {exc}", request=self.request) from None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self.conn
        if conn is None or self.done:
            return
        reader = conn.reader
        if self.chunked:
            while True:
                size_line = await self._read(reader.readuntil(b"\r\n"))
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await self._read(reader.readuntil(b"\r\n"))) != b"\r\n":
                        pass  # trailers
                    break
                data = await self._read(reader.readexactly(size + 2))
                yield data[:-2]
        elif self.length is not None:
            remaining = self.length
            while remaining > 0:
                data = await self._read(reader.read(min(remaining, _READ_SIZE)))
                if not data:
                    raise httpx.RemoteProtocolError("upstream body cut short", request=self.request)
                remaining -= len(data)
                yield data
        else:
            while data := await self._read(reader.read(_READ_SIZE)):
                yield data
        self.done = True

    async def aclose(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.done and self.keep_alive:
            self.transport.release(self.origin, conn)
        else:
            conn.close()
            self.transport.release(self.origin, None)


async def read_answer(response: httpx.Response, raw_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole body of an answer, decoded as ``response.aread()`` would.

    An answer from this transport without a ``Content-Encoding`` is read straight from the
    connection: ``aread`` would pass the bytes through httpx's decoder and chunker chain
    for nothing, which costs more per request than the read. Anything else (a compressed
    answer, another transport) goes through ``aread``.
    """
    stream = response.stream
    if not isinstance(stream, _ResponseBody) or any(
        k.lower() == b"content-encoding" and v.strip().lower() != b"identity" for k, v in raw_headers
    ):
        return await response.aread()
    chunks = [chunk async for chunk in stream]
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
