"""OpenAI-compatible LLM endpoints: ``/v1/chat/completions`` and ``/v1/completions``.

Hardening acts on the request (strip ``logprobs``, cap ``top_logprobs``, drop
``logit_bias`` and ``echo``) so it also covers streamed answers, and, for plain JSON
answers, strips any ``logprobs`` the upstream sends anyway and redacts PII and secrets
(``text.pii``) and echoes of the model's protected passages (``text.protected``, when the
spec carries them); streamed answers are redacted event by event (``HardenSpec.sse_redactor``).

A streamed answer (``"stream": true``) is passed through chunk by chunk; the gateway keeps
a bounded copy of the raw chunks and the engine worker reassembles the text from the SSE
events after the stream ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import msgspec
import numpy as np

from querywarden.core.records import Output
from querywarden.errors import TrafficError
from querywarden.gateway.adapters.base import Adapter, Instance, ParsedRequest
from querywarden.gateway.enforcement.harden import HardenSpec, harden_llm_request, strip_llm_logprobs
from querywarden.text.stream import redact_choices

LEAKY_PARAMS = ("logprobs", "top_logprobs", "logit_bias", "echo", "temperature", "top_p", "max_tokens", "n", "seed")
"""Request options recorded in ``Interaction.params``: the ones that matter for leakage."""


def _params(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in LEAKY_PARAMS if k in body}


def _model(body: dict[str, Any]) -> str | None:
    model = body.get("model")
    return model if isinstance(model, str) and model else None


class _OpenAIAdapter(Adapter):
    llm: ClassVar[bool] = True

    def harden_request(self, body: Any, spec: HardenSpec) -> bool:
        return isinstance(body, dict) and harden_llm_request(body, spec)

    def harden_response(self, body: Any, spec: HardenSpec, rng: np.random.Generator) -> bool:
        if not isinstance(body, dict):
            return False
        if spec.redact_only:  # a principal in good standing: only the declared passages go
            return redact_choices(body, spec.protected, spec.contexts, pii=False)
        stripped = spec.top_logprobs == 0 and strip_llm_logprobs(body)
        # PII, secrets and echoes of the protected passages out of a suspect's answers
        return redact_choices(body, spec.protected, spec.contexts) or stripped

    def outputs(self, body: Any, n: int) -> list[Output | None]:
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list):
            return [None] * n
        per = max(1, len(choices) // n) if n else 1  # with ``n`` > 1, choices come grouped per prompt
        result: list[Output | None] = []
        for i in range(n):
            group = [c for c in choices[i * per : (i + 1) * per] if isinstance(c, dict)]
            if not group:
                result.append(None)
                continue
            first = group[0]
            result.append(Output(text=_choice_text(first), logprobs=first.get("logprobs")))
        return result

    def stream_output(self, chunks: Sequence[bytes]) -> Output | None:
        texts: list[str] = []
        logprobs: list[Any] = []
        decoder = msgspec.json.Decoder()
        for line in b"".join(chunks).splitlines():
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if not payload or payload == b"[DONE]":
                continue
            try:
                event = decoder.decode(payload)
            except msgspec.DecodeError:
                continue
            choices = event.get("choices") if isinstance(event, dict) else None
            if not isinstance(choices, list):
                continue
            for choice in choices:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                piece = _choice_text(choice)
                if piece:
                    texts.append(piece)
                lp = choice.get("logprobs")
                if isinstance(lp, dict) and isinstance(lp.get("content"), list):
                    logprobs.extend(lp["content"])
        if not texts and not logprobs:
            return None
        return Output(text="".join(texts), logprobs={"content": logprobs} if logprobs else None)


class ChatCompletionsAdapter(_OpenAIAdapter):
    name: ClassVar[str] = "openai_chat"

    def parse_request(self, body: Any) -> ParsedRequest:
        if not isinstance(body, dict):
            raise TrafficError("body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise TrafficError("'messages' must be a non-empty list")
        normalized = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise TrafficError(f"messages[{i}] must be an object with a 'role'")
            normalized.append({"role": m["role"], "content": _content_text(m.get("content"))})
        return ParsedRequest(
            [Instance(messages=tuple(normalized))],
            model=_model(body),
            params=_params(body),
            stream=body.get("stream") is True,
        )


class CompletionsAdapter(_OpenAIAdapter):
    name: ClassVar[str] = "openai_completions"

    def parse_request(self, body: Any) -> ParsedRequest:
        if not isinstance(body, dict):
            raise TrafficError("body must be a JSON object")
        prompt = body.get("prompt")
        prompts = prompt if isinstance(prompt, list) else [prompt]
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise TrafficError("'prompt' must be a string or a non-empty list of strings")
        return ParsedRequest(
            [Instance(prompt=p) for p in prompts],
            model=_model(body),
            params=_params(body),
            stream=body.get("stream") is True,
        )


def _content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a multi-part content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _choice_text(choice: dict[str, Any]) -> str:
    for holder in (choice.get("message"), choice.get("delta")):
        if isinstance(holder, dict) and isinstance(holder.get("content"), str):
            return str(holder["content"])
    text = choice.get("text")
    return text if isinstance(text, str) else ""
