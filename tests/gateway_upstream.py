"""Real servers for the gateway tests: a scikit-learn model server speaking the generic,
TF-Serving and KServe v2 protocols, an OpenAI-compatible fake that streams SSE, and a
runner that serves any ASGI app with uvicorn on a free loopback port in a thread.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import uvicorn
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

N_FEATURES = 8
N_CLASSES = 3


def train_model(seed: int = 0) -> LogisticRegression:
    x, y = make_classification(
        n_samples=600, n_features=N_FEATURES, n_informative=5, n_classes=N_CLASSES, random_state=seed
    )
    return LogisticRegression(max_iter=500).fit(x, y)


class Upstream:
    """The model server. ``seen`` keeps every JSON body it received, for assertions."""

    def __init__(self) -> None:
        self.model = train_model()
        self.seen: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.stream_delay = 0.0
        self.app = Starlette(
            routes=[
                Route("/predict", self.predict, methods=["POST"]),
                Route("/v1/models/{name}:predict", self.tf_predict, methods=["POST"]),
                Route("/v2/models/{name}/infer", self.v2_infer, methods=["POST"]),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/echo", self.echo, methods=["PUT"]),
                Route("/login", self.login, methods=["GET"]),
                Route("/whoami", self.whoami, methods=["GET"]),
            ]
        )

    def probs(self, rows: Any) -> np.ndarray:
        return np.asarray(self.model.predict_proba(np.asarray(rows, dtype=np.float64)))

    async def _body(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        self.seen.append(body)
        delay = float(request.headers.get("x-delay", "0"))
        if delay:
            await asyncio.sleep(delay)
        return body  # type: ignore[no-any-return]

    async def predict(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        return JSONResponse({"predictions": self.probs(body["instances"]).tolist()})

    async def tf_predict(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        return JSONResponse({"predictions": self.probs(body["instances"]).tolist()})

    async def v2_infer(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        tensor = body["inputs"][0]
        rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        p = self.probs(rows)
        return JSONResponse(
            {
                "model_name": request.path_params["name"],
                "outputs": [
                    {"name": "probabilities", "shape": list(p.shape), "datatype": "FP64", "data": p.ravel().tolist()},
                    {"name": "label", "shape": [len(p)], "datatype": "INT64", "data": p.argmax(1).tolist()},
                ],
            }
        )

    async def chat(self, request: Request) -> Response:
        body = await self._body(request)
        words = ["The", " answer", " is", " forty", " two."]
        if body.get("stream"):
            return StreamingResponse(self._sse(words), media_type="text/event-stream")
        logprobs = None
        if body.get("logprobs") or request.headers.get("x-force-logprobs"):
            logprobs = {"content": [{"token": w, "logprob": -0.1} for w in words]}
        message = {"role": "assistant", "content": "".join(words)}
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "logprobs": logprobs}],
            }
        )

    async def _sse(self, words: list[str]) -> AsyncIterator[bytes]:
        for i, w in enumerate(words):
            event = {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": w}}]}
            yield f"data: {json.dumps(event)}\n\n".encode()
            if i == 0:
                while not self.release.is_set():  # the test releases the rest once chunk 1 arrived
                    await asyncio.sleep(0.005)
            elif self.stream_delay:
                await asyncio.sleep(self.stream_delay)
        yield b"data: [DONE]\n\n"

    async def completions(self, request: Request) -> JSONResponse:
        body = await self._body(request)
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = []
        for i, p in enumerate(prompts):
            lp = {"tokens": ["ok"], "token_logprobs": [-0.2]} if body.get("logprobs") else None
            choices.append({"index": i, "text": f"echo:{p}", "logprobs": lp})
        return JSONResponse({"id": "cmpl-1", "object": "text_completion", "choices": choices})

    async def embeddings(self, request: Request) -> JSONResponse:
        """A route no adapter reads: the gateway passes it through."""
        body = await self._body(request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse({"data": [{"index": i, "embedding": [0.5, float(len(t))]} for i, t in enumerate(inputs)]})

    async def health(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("upstream ok", headers={"x-upstream": "yes"})

    async def login(self, request: Request) -> Response:
        response = PlainTextResponse("welcome")
        response.set_cookie("session", request.query_params.get("user", "alice"))
        return response

    async def whoami(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.headers.get("cookie", "nobody"))

    async def echo(self, request: Request) -> Response:
        return Response(await request.body(), media_type="application/octet-stream")


class LoopbackServer:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, app: Any, **config: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **config))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
