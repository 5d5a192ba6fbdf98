"""The gateway's harden mode redacts PII from LLM answers, streamed or not, and the engine still sees it.

A real gateway in front of a real loopback model server that answers chat completions
with other customers' contact details, split over SSE events at awkward places.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_upstream import LoopbackServer
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Action, Decision, InputKind
from querywarden.gateway import EnginePipeline, Gateway, GatewaySettings
from querywarden.plugins import load_detectors
from querywarden.text.protected import ProtectedText

KEY = {"x-api-key": "leaky-key"}
PROFILES = {"chat": ModelProfile(id="chat", input_kind=InputKind.TEXT, output_kind="text")}


def _answer(n: int) -> str:
    return f"Customer {n} is rosa{n}@example.com, card 4111 1111 1111 1111, phone +44 20 7946 {1000 + n}."


async def _model(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A chat-completions server that leaks: JSON, or SSE in 7-character deltas."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    request = json.loads(body)
    text = _answer(len(request["messages"][0]["content"]))
    if request.get("stream"):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(0, len(text), 7):
            event = {"choices": [{"index": 0, "delta": {"content": text[i : i + 7]}}]}
            await send(
                {"type": "http.response.body", "body": f"data: {json.dumps(event)}\n\n".encode(), "more_body": True}
            )
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        return
    payload = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


@contextmanager
def gateway(engine: Engine, protected: ProtectedText | None = None) -> Iterator[tuple[httpx.Client, Gateway]]:
    with LoopbackServer(_model) as upstream:
        settings = GatewaySettings(upstream=upstream.url, default_model="chat", seed=3)
        passages = {"chat": protected} if protected is not None else None
        gw = Gateway(settings, EnginePipeline.from_settings(engine, settings), protected=passages)
        with LoopbackServer(gw) as server, httpx.Client(base_url=server.url, timeout=10) as client:
            yield client, gw


def _streamed_text(raw: bytes) -> str:
    parts = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data: {"):
            parts.append(json.loads(line[6:])["choices"][0]["delta"]["content"])
    return "".join(parts)


def _ask(client: httpx.Client, n: int, *, stream: bool) -> str:
    body = {"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "x" * n}]}
    if not stream:
        return str(
            client.post("/v1/chat/completions", json=body, headers=KEY).json()["choices"][0]["message"]["content"]
        )
    with client.stream("POST", "/v1/chat/completions", json=body, headers=KEY) as r:
        return _streamed_text(r.read())


@pytest.mark.parametrize("stream", [False, True])
def test_hardened_answers_are_redacted_and_others_are_not(stream: bool) -> None:
    with gateway(Engine(PROFILES, detectors=[])) as (client, gw):
        assert _ask(client, 1, stream=stream) == _answer(1)
        principal = gw.principals.hashed("key", "leaky-key")
        gw.pipeline.engine.set_decision(Decision(principal=principal, action=Action.HARDEN, ts=0.0, finding_id="f"))
        text = _ask(client, 2, stream=stream)
    assert text == "Customer 2 is [REDACTED:email], card [REDACTED:card], phone [REDACTED:phone]."


@pytest.mark.parametrize("stream", [False, True])
def test_no_answer_echoes_the_protected_passages_and_hardened_ones_lose_pii_too(stream: bool) -> None:
    protected = ProtectedText.from_passages(["Customer 3 is rosa3 (example.com), card 4111 1111 1111 1111"])
    with gateway(Engine(PROFILES, detectors=[]), protected) as (client, gw):
        allowed = _ask(client, 3, stream=stream)  # a principal in good standing: only the passage goes
        assert _ask(client, 4, stream=stream) == _answer(4)
        principal = gw.principals.hashed("key", "leaky-key")
        gw.pipeline.engine.set_decision(Decision(principal=principal, action=Action.HARDEN, ts=0.0, finding_id="f"))
        echoed, other = _ask(client, 3, stream=stream), _ask(client, 4, stream=stream)
    assert allowed == "[REDACTED:protected], phone +44 20 7946 1003."
    assert echoed == "[REDACTED:protected], phone [REDACTED:phone]."
    assert other == "Customer 4 is [REDACTED:email], card [REDACTED:card], phone [REDACTED:phone]."


def test_leakage_detector_hardens_the_principal_and_later_streams_are_redacted() -> None:
    load_detectors()
    engine = Engine(PROFILES, detectors=[DetectorSpec("llm_leakage", {"min_distinct_pii": 5})])
    with gateway(engine) as (client, gw):
        for n in range(1, 3):
            assert "@example.com" in _ask(client, n, stream=True)  # two emails, two phones, one card: 5 values
            gw.pipeline.drain(5)
        principal = gw.principals.hashed("key", "leaky-key")
        assert gw.pipeline.engine.decision_for(principal).action is Action.HARDEN
        later = _ask(client, 4, stream=True)
        gw.pipeline.drain(5)
    assert "@" not in later and "[REDACTED:email]" in later


def test_serve_reads_the_protected_passages_from_the_config(tmp_path: Path) -> None:
    from querywarden.gateway.server import build_server

    (tmp_path / "system.txt").write_text("You are Penny, the support assistant of Northgate Bank. Code ESC-1.")
    config = tmp_path / "qw.toml"
    config.write_text('[models.chat]\ninput_kind = "text"\noutput_kind = "text"\nprotected_text = "system.txt"\n')
    server = build_server(GatewaySettings(upstream="http://127.0.0.1:9"), config)
    try:
        assert set(server.gateway.protected) == {"chat"}
        assert server.gateway.protected["chat"].find("you are penny, the support assistant of northgate bank")
    finally:
        server.close()
