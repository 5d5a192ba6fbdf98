"""Answering the LLM benchmark's requests the way the gateway would record and return them.

The benchmark never mocks the assistant: each request body is answered by
:func:`querywarden.llm.server.answer`, the function the HTTP server uses, and recorded
as an :class:`~querywarden.gateway.exchange.Exchange` through the gateway's own OpenAI
adapters, streamed answers as SSE chunks. So the engine sees exactly what it would see
behind the gateway, and the caller's view of a hardened answer (logprobs stripped, PII and
echoes of the system prompt redacted) is made by the gateway's own code.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from querywarden.bench.llm_attacks import Reply
from querywarden.bench.llm_benign import LlmRequest
from querywarden.core.records import Client, Interaction
from querywarden.gateway.adapters.base import Adapter
from querywarden.gateway.adapters.openai import ChatCompletionsAdapter, CompletionsAdapter
from querywarden.gateway.enforcement.harden import REDACT_ONLY, HardenSpec, protect
from querywarden.gateway.exchange import Exchange
from querywarden.llm.assistant import MODEL_ID, Assistant
from querywarden.llm.server import answer
from querywarden.text.protected import ProtectedText

_ENCODER = msgspec.json.Encoder()
_ADAPTERS = {"chat": ChatCompletionsAdapter(), "completions": CompletionsAdapter()}


class Answerer:
    """Answers requests with the assistant and records them through the gateway's adapters.

    Answers are cached by body: benign traffic is shared by every scenario and the model is
    deterministic for a given body (the prompt seeds its sampler).
    """

    def __init__(self, assistant: Assistant, protected: ProtectedText | None = None) -> None:
        self.assistant = assistant
        self.protected = protected
        """The passages the gateway would redact from a hardened principal's answers."""
        self._cache: dict[tuple[str, bytes], Any] = {}
        self._rng = np.random.default_rng(0)

    def respond(self, endpoint: str, body: dict[str, Any]) -> Any:
        key = (endpoint, _ENCODER.encode(body))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = answer(self.assistant, endpoint, body)
        return hit

    def exchange(
        self, req: LlmRequest, spec: HardenSpec | None, *, guarded: bool = False
    ) -> tuple[list[Interaction], Reply]:
        """Answer ``req`` and record it; ``guarded`` answers it through the gateway (``spec`` when
        the principal is hardened), otherwise straight from the assistant."""
        adapter = _ADAPTERS[req.endpoint]
        body = msgspec.json.decode(_ENCODER.encode(req.body))  # a private copy: hardening edits in place
        parsed = adapter.parse_request(body)
        if spec is not None:
            adapter.harden_request(body, spec)
        if guarded and self.protected is not None:  # as the gateway: declared passages never go out
            spec = protect(spec or REDACT_ONLY, self.protected, parsed.instances)
        out = self.respond(req.endpoint, body)
        ex = Exchange(
            id=req.id,
            ts=req.ts,
            principal=req.principal,
            model=MODEL_ID,
            client=Client(ip=req.ip, user_agent=req.user_agent),
            adapter=adapter,
            request=parsed,
        )
        if isinstance(out, list):
            ex.stream = [b"data: " + _ENCODER.encode(chunk) + b"\n\n" for chunk in out] + [b"data: [DONE]\n\n"]
        else:
            ex.response = out
        items = [msgspec.structs.replace(i, source=None) for i in ex.interactions()]
        return items, self.client_view(adapter, ex, spec)

    def client_view(self, adapter: Adapter, ex: Exchange, spec: HardenSpec | None) -> Reply:
        """What the caller reads: the answer after the gateway's response hardening.

        As in the gateway, a hardened principal's JSON answer loses its logprobs and has PII
        redacted (``harden_response``), and a streamed one goes through ``SseRedactor``; every
        guarded answer loses echoes of the declared system prompt. The engine learns from the
        unredacted copy either way.
        """
        if spec is None:
            return reply_of(ex.response if ex.stream is None else _events(b"".join(ex.stream)))
        if ex.stream is not None:
            redactor = spec.sse_redactor()
            return reply_of(_events(redactor.feed(b"".join(ex.stream)) + redactor.finish()))
        body = msgspec.json.decode(_ENCODER.encode(ex.response))
        adapter.harden_response(body, spec, self._rng)
        return reply_of(body)


def _events(raw: bytes) -> list[dict[str, Any]]:
    """The JSON events of an SSE body."""
    out = []
    for line in raw.splitlines():
        payload = line[5:].strip() if line.startswith(b"data:") else b""
        if payload and payload != b"[DONE]":
            out.append(msgspec.json.decode(payload))
    return out


def reply_of(out: Any) -> Reply:
    """What the client read from a response body or its stream chunks."""
    chunks = out if isinstance(out, list) else [out]
    texts: list[str] = []
    tokens: list[str] = []
    for chunk in chunks:
        for choice in chunk.get("choices", []):
            holder = choice.get("message") or choice.get("delta") or {}
            texts.append(holder.get("content") or choice.get("text") or "")
            lp = choice.get("logprobs")
            if isinstance(lp, dict):
                for item in lp.get("content") or []:
                    tokens.append(item["token"])
                    tokens.extend(t["token"] for t in item.get("top_logprobs", []))
                for top in lp.get("top_logprobs") or []:
                    tokens.extend(top)
    return Reply("".join(texts), tuple(tokens))
