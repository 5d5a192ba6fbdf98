"""The upstream transport against a raw HTTP/1.1 server whose connection handling the test
controls: keep-alive reuse, a server that drops idle connections, every body framing."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import Awaitable, Callable

import httpx
import pytest

from querywarden.gateway.upstream import UpstreamTransport, read_answer

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    chunked = b"transfer-encoding: chunked" in head.lower()
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
        return head, body
    return head, await reader.readexactly(length)


class RawServer:
    """Counts connections; ``respond`` writes one answer and says whether to keep the connection."""

    def __init__(self, respond: Handler) -> None:
        self.respond = respond
        self.connections = 0
        self.bodies: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for w in self.writers:
            w.close()
        for w in self.writers:
            with contextlib.suppress(ConnectionError):
                await w.wait_closed()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                _, body = await read_request(reader)
                self.bodies.append(body)
                if not await self.respond(reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def ok(body: bytes = b'{"ok": true}', *, keep: bool = True) -> Handler:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        return keep

    return respond


def client(url: str, **kw: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, transport=UpstreamTransport(**kw), timeout=httpx.Timeout(2.0))


def test_connections_are_kept_alive_and_reused() -> None:
    async def run() -> None:
        server = RawServer(ok())
        async with server as url, client(url) as c:
            for i in range(20):
                r = await c.post("/p", content=b"x" * i)
                assert r.json() == {"ok": True}
            assert server.connections == 1 and server.bodies[-1] == b"x" * 19

    asyncio.run(run())


def test_a_connection_the_server_dropped_is_retried_on_a_fresh_one() -> None:
    async def run() -> None:
        server = RawServer(ok(keep=False))  # answers, then closes without saying so
        async with server as url, client(url) as c:
            for _ in range(3):
                await asyncio.sleep(0.05)  # let the close arrive, or not: both must work
                assert (await c.post("/p", content=b"{}")).status_code == 200
            assert server.connections == 3

    asyncio.run(run())


def test_idle_connections_expire() -> None:
    async def run() -> None:
        server = RawServer(ok())
        async with server as url, client(url, keepalive_expiry=0.05) as c:
            await c.get("/")
            await asyncio.sleep(0.1)
            await c.get("/")
            assert server.connections == 2

    asyncio.run(run())


def test_chunked_answers_arrive_chunk_by_chunk() -> None:
    release = asyncio.Event()

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"6\r\ndata:1\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\ndata:2\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async def run() -> None:
        server = RawServer(respond)
        async with server as url, client(url) as c:
            async with c.stream("POST", "/s", content=b"{}") as r:
                chunks = r.aiter_raw()
                assert await chunks.__anext__() == b"data:1"
                release.set()
                assert [c async for c in chunks] == [b"data:2"]
            # the connection went back to the pool in a clean state
            assert (await c.post("/s", content=b"{}")).content == b"data:1data:2"
            assert server.connections == 1

    asyncio.run(run())


def test_a_body_without_length_ends_when_the_server_closes() -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it")
        await writer.drain()
        return False

    async def run() -> None:
        server = RawServer(respond)
        async with server as url, client(url) as c:
            assert (await c.get("/")).text == "all of it"
            assert (await c.get("/")).text == "all of it"
            assert server.connections == 2

    asyncio.run(run())


def test_streamed_request_bodies_are_sent_chunked() -> None:
    async def parts():  # type: ignore[no-untyped-def]
        for p in (b"ab", b"", b"cd"):
            yield p

    async def run() -> None:
        server = RawServer(ok())
        async with server as url, client(url) as c:
            assert (await c.put("/u", content=parts())).status_code == 200
            assert server.bodies == [b"abcd"]

    asyncio.run(run())


@pytest.mark.parametrize(
    ("respond", "error"),
    [
        (b"garbage\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", httpx.RemoteProtocolError),
    ],
)
def test_broken_answers_are_httpx_errors(respond: bytes, error: type[Exception]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(respond)
        await writer.drain()
        return False

    async def run() -> None:
        async with RawServer(handler) as url, client(url) as c:
            with pytest.raises(error):
                await c.get("/")

    asyncio.run(run())


def test_a_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    async def run() -> None:
        async with RawServer(silent) as url:
            c = httpx.AsyncClient(base_url=url, transport=UpstreamTransport(), timeout=httpx.Timeout(0.2))
            with pytest.raises(httpx.ReadTimeout):
                await c.get("/")
            await c.aclose()

    asyncio.run(run())


def test_read_answer_reads_plain_answers_raw_and_decodes_compressed_ones() -> None:
    plain = b'{"predictions": [[0.25, 0.75]]}'
    packed = gzip.compress(plain)

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        gz = len(server.bodies) % 2 == 0
        body = packed if gz else plain
        extra = b"content-encoding: gzip\r\n" if gz else b""
        writer.write(b"HTTP/1.1 200 OK\r\n%scontent-length: %d\r\n\r\n%s" % (extra, len(body), body))
        await writer.drain()
        return True

    server = RawServer(respond)

    async def run() -> None:
        transport = UpstreamTransport()
        async with server as url:
            for i in range(4):
                request = httpx.Request("POST", f"{url}/p", content=b"x", extensions={"timeout": {}})
                response = await transport.handle_async_request(request)
                try:
                    assert await read_answer(response, response.headers.raw) == plain, i
                finally:
                    await response.aclose()
            assert server.connections == 1  # a raw read leaves the connection reusable
        await transport.aclose()

    asyncio.run(run())


def test_the_gateways_forward_sends_the_bytes_an_httpx_request_would() -> None:
    heads: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head, body = await read_request(reader)
                heads.append(head + body)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()

    async def run() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = httpx.URL(f"http://127.0.0.1:{port}/v1/models/m:predict?x=1")
        headers = [(b"content-type", b"application/json"), (b"x-request-id", b"r-1")]
        timeouts = httpx.Timeout(2.0).as_dict()
        pool = UpstreamTransport()
        try:
            via_httpx = await pool.handle_async_request(
                httpx.Request("POST", url, headers=headers, content=b"{}", extensions={"timeout": timeouts})
            )
            assert await read_answer(via_httpx, via_httpx.headers.raw) == b"ok"
            await via_httpx.aclose()
            forwarded = await pool.forward("POST", url, headers, b"{}", timeouts)
            assert forwarded.status_code == 200 and await read_answer(forwarded, forwarded.headers.raw) == b"ok"
            await forwarded.aclose()
        finally:
            await pool.aclose()
            server.close()
            for w in writers:
                w.close()
                with contextlib.suppress(ConnectionError):
                    await w.wait_closed()
            await server.wait_closed()
        assert len(heads) == 2 and heads[0] == heads[1], heads
        assert heads[1].startswith(b"POST /v1/models/m:predict?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")

    asyncio.run(run())
