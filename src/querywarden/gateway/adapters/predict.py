"""JSON predict adapters: the generic ``{"instances"|"inputs"|"features"}`` →
``{"predictions"|"probabilities"}`` shape, and TF-Serving / KServe v1
(``/v1/models/{name}:predict``), which is the same shape with the model in the path.

A body the adapter cannot read is refused (400), not forwarded unread: traffic the
engine cannot see would be a way around detection.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from querywarden.core.records import Output
from querywarden.errors import TrafficError
from querywarden.gateway.adapters.base import (
    Adapter,
    ParsedRequest,
    features_matrix,
    harden_rows,
    harden_rows_key,
    output_of,
)
from querywarden.gateway.enforcement.harden import HardenSpec

_INPUT_KEYS = ("instances", "inputs", "features")
_OUTPUT_KEYS = ("predictions", "probabilities", "outputs")


class JsonPredictAdapter(Adapter):
    name: ClassVar[str] = "predict"

    def parse_request(self, body: Any) -> ParsedRequest:
        if isinstance(body, list):
            return ParsedRequest(features_matrix(body, "body"))
        if not isinstance(body, dict):
            raise TrafficError("body must be a JSON object or array")
        for key in _INPUT_KEYS:
            if key in body:
                rows = body[key]
                if isinstance(rows, dict) and len(rows) == 1:  # TF columnar form with one input
                    rows = next(iter(rows.values()))
                model = body.get("model") if isinstance(body.get("model"), str) else None
                return ParsedRequest(features_matrix(rows, key), model=model)
        raise TrafficError(f"body has none of the keys {', '.join(_INPUT_KEYS)}")

    def outputs(self, body: Any, n: int) -> list[Output | None]:
        preds = _predictions(body)
        if preds is None:
            return [None] * n
        if n == 1 and preds and not isinstance(preds[0], list | dict):
            vec = output_of(preds)  # one flat probability vector for one instance
            if vec is not None and vec.probabilities is not None:
                return [vec]
        outs = [output_of(p) for p in preds[:n]]
        return outs + [None] * (n - len(outs))

    def harden_response(self, body: Any, spec: HardenSpec, rng: np.random.Generator) -> bool:
        if isinstance(body, list):
            return harden_rows(body, spec, rng) if body and isinstance(body[0], list) else False
        if not isinstance(body, dict):
            return False
        changed = False
        for key in _OUTPUT_KEYS:
            if isinstance(body.get(key), list) and body[key]:
                changed |= harden_rows_key(body, key, spec, rng)
        return changed


class TFServingAdapter(JsonPredictAdapter):
    """TF-Serving REST and KServe v1: ``/v1/models/{name}:predict``."""

    name: ClassVar[str] = "tf_v1"


def _predictions(body: Any) -> list[Any] | None:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in _OUTPUT_KEYS:
            value = body.get(key)
            if isinstance(value, list):
                return value
    return None
