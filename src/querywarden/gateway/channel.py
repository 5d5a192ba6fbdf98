"""The channel between the proxy (data plane) and the engine process: messages and frames.

One stream socket (a socketpair) joins the two processes. Each frame is a 4-byte
big-endian length and a msgpack body, one of the tagged messages below:

- proxy -> engine: ``Hello`` (what to build: settings, config path, store, admin socket),
  then ``Batch`` after ``Batch`` of exchanges;
- engine -> proxy: ``Failed`` (could not start), ``Update`` (decisions, actor placements,
  how many exchanges it has finished, its counters) and ``Ready``.

An exchange crosses as the request already parsed on the proxy (feature rows as raw
float64 bytes) and the model's answer as received, so the proxy pays a copy, not a parse,
and the engine process turns it into interactions as the worker thread would.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
import numpy as np

from querywarden.core.records import Client, Decision
from querywarden.errors import QueryWardenError
from querywarden.gateway.adapters import Adapter, Instance, ParsedRequest, Router
from querywarden.gateway.exchange import Exchange

_LENGTH = struct.Struct(">I")
MAX_FRAME = 1 << 30
HEARTBEAT = 0.5
"""Most seconds between two frames from the engine process, news or not: the proxy takes
its silence for a stall (``engine_stall_timeout``)."""


class ChannelError(QueryWardenError):
    """The peer sent something that is not a frame of this channel."""


class WireInstance(msgspec.Struct, array_like=True, frozen=True):
    features: bytes | None
    prompt: str | None
    messages: list[dict[str, str]] | None


class WireExchange(msgspec.Struct, array_like=True, frozen=True):
    id: str
    ts: float
    principal: str
    model: str
    ip: str | None
    user_agent: str | None
    adapter: str
    instances: list[WireInstance]
    request_model: str | None
    request_params: dict[str, Any]
    stream_request: bool
    response: Any
    response_raw: bytes | None
    stream: list[bytes] | None
    params: dict[str, Any]


class Hello(msgspec.Struct, tag=True):
    settings: dict[str, Any]
    config_path: str | None
    store_url: str | None
    admin_uds: str | None
    decisions: list[Decision] = []
    """The proxy's mirror when it restarts a dead engine: decisions the new engine lacks
    (taken after the store's last write) are loaded, so none is lost to the crash."""


class Batch(msgspec.Struct, tag=True):
    exchanges: list[WireExchange]


class Update(msgspec.Struct, tag=True):
    handled: int
    """Exchanges the engine has finished with since it started (the proxy's acknowledgement)."""
    stats: tuple[int, int, int, int, int]
    """interactions, errors, findings, decisions, unknown_model, since it started."""
    decisions: list[Decision] = []
    cleared: list[str] = []
    actors: list[tuple[str, str]] = []
    actor_decisions: list[Decision] = []
    full: bool = False
    """``decisions`` is the engine's whole table: replace the mirror's."""


class Ready(msgspec.Struct, tag=True):
    pid: int


class Failed(msgspec.Struct, tag=True):
    message: str


ToEngine = Hello | Batch
ToProxy = Update | Ready | Failed

_ENCODER = msgspec.msgpack.Encoder()
TO_ENGINE = msgspec.msgpack.Decoder(ToEngine)
TO_PROXY = msgspec.msgpack.Decoder(ToProxy)


def frame(message: msgspec.Struct) -> bytes:
    """One message as a length-prefixed frame."""
    buf = bytearray(_LENGTH.size)
    _ENCODER.encode_into(message, buf, _LENGTH.size)
    _LENGTH.pack_into(buf, 0, len(buf) - _LENGTH.size)
    return bytes(buf)


class FrameReader:
    """Reassembles frames from the bytes a stream socket delivers, in whatever pieces."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buf += data
        buf, start = self._buf, 0
        while len(buf) - start >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buf, start)
            if size > MAX_FRAME:
                raise ChannelError(f"channel frame of {size} bytes exceeds {MAX_FRAME}")
            end = start + _LENGTH.size + size
            if len(buf) < end:
                break
            yield bytes(buf[start + _LENGTH.size : end])
            start = end
        if start:
            del buf[:start]


def to_wire(exchange: Exchange) -> WireExchange:
    request = exchange.request
    client = exchange.client
    return WireExchange(
        exchange.id,
        exchange.ts,
        exchange.principal,
        exchange.model,
        client.ip,
        client.user_agent,
        exchange.adapter.name,
        [
            WireInstance(
                inst.features.tobytes() if inst.features is not None else None,
                inst.prompt,
                list(inst.messages) if inst.messages is not None else None,
            )
            for inst in request.instances
        ],
        request.model,
        request.params,
        request.stream,
        exchange.response,
        exchange.response_raw,
        exchange.stream,
        exchange.params,
    )


def adapters_by_name(router: Router) -> dict[str, Adapter]:
    """Every adapter of a router under its name, to rebuild exchanges on the engine side."""
    found = [router.generic, router.kserve, router.tf, *router.exact.values()]
    return {a.name: a for a in found}


def from_wire(wire: WireExchange, adapters: Mapping[str, Adapter]) -> Exchange:
    adapter = adapters.get(wire.adapter)
    if adapter is None:
        raise ChannelError(f"exchange {wire.id}: unknown adapter {wire.adapter!r}; known: {', '.join(adapters)}")
    instances = [
        Instance(
            features=np.frombuffer(i.features, dtype=np.float64).copy() if i.features is not None else None,
            prompt=i.prompt,
            messages=tuple(i.messages) if i.messages is not None else None,
        )
        for i in wire.instances
    ]
    return Exchange(
        id=wire.id,
        ts=wire.ts,
        principal=wire.principal,
        model=wire.model,
        client=Client(ip=wire.ip, user_agent=wire.user_agent),
        adapter=adapter,
        request=ParsedRequest(
            instances, model=wire.request_model, params=wire.request_params, stream=wire.stream_request
        ),
        response=wire.response,
        response_raw=wire.response_raw,
        stream=wire.stream,
        params=wire.params,
    )
