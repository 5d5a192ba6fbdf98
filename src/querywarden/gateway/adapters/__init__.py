"""Protocol adapters and the router that picks one by method and path.

Routes (POST only; everything else passes through untouched):

- ``/v2/models/{name}/infer`` (and ``/versions/{v}/infer``): KServe / Open Inference v2;
- ``/v1/models/{name}:predict`` (and ``/versions/{v}:predict``): TF-Serving / KServe v1;
- ``/v1/chat/completions`` and ``/v1/completions``: OpenAI-compatible;
- the configured ``generic_paths`` (default ``/predict``, ``/invocations``): generic JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from querywarden.gateway.adapters.base import Adapter, Instance, ParsedRequest
from querywarden.gateway.adapters.kserve import KServeV2Adapter
from querywarden.gateway.adapters.openai import ChatCompletionsAdapter, CompletionsAdapter
from querywarden.gateway.adapters.predict import JsonPredictAdapter, TFServingAdapter

_V2 = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")
_V1 = re.compile(r"^/v1/models/([^/:]+)(?:/versions/[^/:]+)?:predict$")


@dataclass(frozen=True, slots=True)
class Route:
    adapter: Adapter
    model: str | None
    """The model named by the path, if the protocol puts it there."""


class Router:
    def __init__(self, generic_paths: Iterable[str] = ("/predict", "/invocations")) -> None:
        self.generic = JsonPredictAdapter()
        self.kserve = KServeV2Adapter()
        self.tf = TFServingAdapter()
        self.exact: dict[str, Adapter] = {
            "/v1/chat/completions": ChatCompletionsAdapter(),
            "/v1/completions": CompletionsAdapter(),
        }
        for path in generic_paths:
            self.exact.setdefault(path, self.generic)

    def match(self, method: str, path: str) -> Route | None:
        """The adapter for a request, or None: the request is passed through untouched."""
        if method != "POST":
            return None
        adapter = self.exact.get(path)
        if adapter is not None:
            return Route(adapter, None)
        if path.startswith("/v2/"):
            m = _V2.match(path)
            return Route(self.kserve, m.group(1)) if m else None
        if path.startswith("/v1/models/"):
            m = _V1.match(path)
            return Route(self.tf, m.group(1)) if m else None
        return None


__all__ = ["Adapter", "Instance", "ParsedRequest", "Route", "Router"]
