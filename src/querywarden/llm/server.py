"""An OpenAI-compatible HTTP server for the demo assistant (Starlette).

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` and ``GET /v1/models``.
It honours what attacks on LLM APIs lean on, so QueryWarden can be shown stopping them
against the real thing rather than a mock:

- ``logprobs``/``top_logprobs`` (chat: ``logprobs: true`` plus ``top_logprobs`` 0-20;
  completions: ``logprobs`` 0-20 in the legacy layout with ``tokens``, ``token_logprobs``,
  ``top_logprobs`` and ``text_offset``);
- ``logit_bias`` (token id strings to values in [-100, 100]; ids are the model's
  vocabulary indices);
- ``temperature``, ``max_tokens``, ``seed``;
- ``stream: true``: server-sent events, one chunk per token, each carrying its logprobs,
  then ``data: [DONE]``.

A malformed body gets 400 with OpenAI's error shape, naming the parameter.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from querywarden.llm.assistant import MAX_TOP_LOGPROBS, MODEL_ID, Assistant, Options
from querywarden.llm.model import Generation, ModelError, TokenChoice

_ENCODER = msgspec.json.Encoder()


class BadRequest(Exception):
    """A request the API refuses; becomes a 400 with OpenAI's error body."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def create_app(assistant: Assistant, *, model_id: str = MODEL_ID) -> Starlette:
    """The assistant as an ASGI app. Serve it with uvicorn, or wrap it with the gateway."""
    ids = itertools.count(1)

    async def chat(request: Request) -> Response:
        return await _handle(request, lambda body: answer(assistant, "chat", body, model_id, next(ids)))

    async def completions(request: Request) -> Response:
        return await _handle(request, lambda body: answer(assistant, "completions", body, model_id, next(ids)))

    async def models(_: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": model_id, "object": "model", "owned_by": "querywarden"}]}
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


Answer = dict[str, Any] | list[dict[str, Any]]
"""A JSON response body, or the chunks of a streamed one."""


def answer(assistant: Assistant, endpoint: str, body: dict[str, Any], model_id: str = MODEL_ID, n: int = 1) -> Answer:
    """The response to one request body, without HTTP: ``endpoint`` is ``chat`` or ``completions``.

    Raises ``BadRequest`` for a body the API refuses. The benchmark calls this directly, so
    what it records is exactly what the server would have sent.
    """
    if endpoint == "chat":
        return _chat(assistant, body, model_id, n)
    if endpoint == "completions":
        return _completions(assistant, body, model_id, n)
    raise BadRequest(f"unknown endpoint {endpoint!r}; allowed: chat, completions")


async def _handle(request: Request, respond: Callable[[dict[str, Any]], Answer]) -> Response:
    try:
        body = msgspec.json.decode(await request.body())
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        out = respond(body)
        return _sse(out) if isinstance(out, list) else JSONResponse(out)
    except msgspec.DecodeError as exc:
        return _error(f"malformed JSON: {exc}", None)
    except BadRequest as exc:
        return _error(exc.message, exc.param)
    except ModelError as exc:
        return _error(exc.reason, None)


def _error(message: str, param: str | None) -> Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    return JSONResponse(body, status_code=400)


# -- request options ---------------------------------------------------------------------
def options(body: dict[str, Any], *, top_logprobs: int) -> Options:
    """Sampling options from a request body; wrong types and ranges name the parameter."""
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 48))
    temperature = body.get("temperature", 0.7)
    seed = body.get("seed")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise BadRequest("max_tokens must be an integer", "max_tokens")
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or math.isnan(temperature):
        raise BadRequest("temperature must be a number", "temperature")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise BadRequest("seed must be an integer", "seed")
    if body.get("n", 1) != 1:
        raise BadRequest("this model returns one choice per prompt: n must be 1", "n")
    try:
        return Options(
            max_tokens=max_tokens,
            temperature=float(temperature),
            logit_bias=_logit_bias(body.get("logit_bias")),
            top_logprobs=top_logprobs,
            seed=seed,
        )
    except ModelError as exc:
        raise BadRequest(exc.reason) from None


def _logit_bias(raw: Any) -> dict[int, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest("logit_bias must map token ids to numbers", "logit_bias")
    bias: dict[int, float] = {}
    for key, value in raw.items():
        try:
            tid = int(key)
        except ValueError:
            raise BadRequest(f"logit_bias key {key!r} is not a token id", "logit_bias") from None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise BadRequest(f"logit_bias value for {key!r} must be a number", "logit_bias")
        bias[tid] = float(value)
    return bias


def _count(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TOP_LOGPROBS:
        raise BadRequest(f"{name} must be an integer in [0, {MAX_TOP_LOGPROBS}]", name)
    return value


# -- /v1/chat/completions ----------------------------------------------------------------
def _chat(assistant: Assistant, body: dict[str, Any], model_id: str, n: int) -> Answer:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", "messages")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise BadRequest(f"messages[{i}] must have a string role and content", "messages")
        turns.append({"role": m["role"], "content": m["content"]})
    want_logprobs = body.get("logprobs") is True
    top = _count(body, "top_logprobs")
    if top and not want_logprobs:
        raise BadRequest("top_logprobs needs logprobs: true", "top_logprobs")
    gen = assistant.chat(turns, options(body, top_logprobs=top if want_logprobs else 0))
    rid, created = f"chatcmpl-{n}", int(time.time())
    if body.get("stream") is True:
        return _chat_chunks(gen, rid, created, model_id, want_logprobs)
    logprobs = {"content": [_chat_logprob(t) for t in gen.tokens]} if want_logprobs else None
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": gen.text},
                "logprobs": logprobs,
                "finish_reason": gen.finish_reason,
            }
        ],
        "usage": _usage(gen),
    }


def _chat_logprob(t: TokenChoice) -> dict[str, Any]:
    return {
        "token": t.token,
        "logprob": t.logprob,
        "bytes": list(t.token.encode()),
        "top_logprobs": [{"token": tok, "logprob": lp, "bytes": list(tok.encode())} for tok, lp in t.top],
    }


def _chat_chunks(gen: Generation, rid: str, created: int, model_id: str, logprobs: bool) -> list[dict[str, Any]]:
    head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model_id}
    chunks: list[dict[str, Any]] = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    ]
    for token, text in zip(gen.tokens, gen.pieces(), strict=True):
        choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "finish_reason": None}
        if logprobs:
            choice["logprobs"] = {"content": [_chat_logprob(token)]}
        chunks.append({**head, "choices": [choice]})
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": gen.finish_reason}]})
    return chunks


# -- /v1/completions ---------------------------------------------------------------------
def _completions(assistant: Assistant, body: dict[str, Any], model_id: str, n: int) -> Answer:
    prompt = body.get("prompt")
    raw = prompt if isinstance(prompt, list) else [prompt]
    prompts = [p for p in raw if isinstance(p, str)]
    if not prompts or len(prompts) != len(raw):
        raise BadRequest("prompt must be a string or a non-empty list of strings", "prompt")
    top = _count(body, "logprobs")
    opts = options(body, top_logprobs=top)
    gens = [assistant.complete(p, opts) for p in prompts]
    rid, created = f"cmpl-{n}", int(time.time())
    want = body.get("logprobs") is not None
    if body.get("stream") is True:
        return _completion_chunks(gens, rid, created, model_id, want)
    choices = [
        {
            "index": i,
            "text": "".join(g.pieces(leading_space=True)),
            "logprobs": _legacy_logprobs(g.tokens, g.pieces(leading_space=True)) if want else None,
            "finish_reason": g.finish_reason,
        }
        for i, g in enumerate(gens)
    ]
    usage = {k: sum(_usage(g)[k] for g in gens) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    body_out = {"id": rid, "object": "text_completion", "created": created, "model": model_id}
    return {**body_out, "choices": choices, "usage": usage}


def _legacy_logprobs(tokens: tuple[TokenChoice, ...], pieces: list[str], offset: int = 0) -> dict[str, Any]:
    offsets = list(itertools.accumulate((len(p) for p in pieces), initial=offset))[:-1]
    return {
        "tokens": pieces,
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{tok: lp for tok, lp in t.top} for t in tokens],
        "text_offset": offsets,
    }


def _completion_chunks(
    gens: list[Generation], rid: str, created: int, model_id: str, logprobs: bool
) -> list[dict[str, Any]]:
    head = {"id": rid, "object": "text_completion", "created": created, "model": model_id}
    chunks: list[dict[str, Any]] = []
    for i, g in enumerate(gens):
        pieces = g.pieces(leading_space=True)
        offset = 0
        for token, text in zip(g.tokens, pieces, strict=True):
            lp = _legacy_logprobs((token,), [text], offset) if logprobs else None
            chunks.append({**head, "choices": [{"index": i, "text": text, "logprobs": lp, "finish_reason": None}]})
            offset += len(text)
        chunks.append(
            {**head, "choices": [{"index": i, "text": "", "logprobs": None, "finish_reason": g.finish_reason}]}
        )
    return chunks


# -- shared ------------------------------------------------------------------------------
def _sse(chunks: list[dict[str, Any]]) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield b"data: " + _ENCODER.encode(chunk) + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


def _usage(gen: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": len(gen.tokens),
        "total_tokens": gen.prompt_tokens + len(gen.tokens),
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m querywarden.llm.server [--host H] [--port P] [--seed S]``: train and serve.

    Put the gateway in front with ``querywarden serve --upstream http://H:P``.
    """
    import argparse

    import uvicorn

    from querywarden.llm.assistant import build_assistant

    parser = argparse.ArgumentParser(prog="python -m querywarden.llm.server", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--seed", type=int, default=0, help="corpus seed: the same seed gives the same assistant")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(build_assistant(args.seed)), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
