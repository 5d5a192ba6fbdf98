"""KServe / Open Inference Protocol v2: ``/v2/models/{name}/infer``.

Tensors travel as ``{"name", "shape", "datatype", "data"}`` with ``data`` flat (row-major)
or nested. The first input tensor is the features, one instance per leading-dimension row.
On the way back, the probability tensor is the output whose name mentions "prob", else the
first two-dimensional floating-point output; an integer or string output of one value per
row is the label.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from querywarden.core.records import Output
from querywarden.errors import TrafficError
from querywarden.gateway.adapters.base import Adapter, ParsedRequest, features_matrix, looks_like_probabilities
from querywarden.gateway.enforcement.harden import HardenSpec, harden_probabilities

_FLOAT_TYPES = ("FP16", "FP32", "FP64", "BF16")


class KServeV2Adapter(Adapter):
    name: ClassVar[str] = "kserve_v2"

    def parse_request(self, body: Any) -> ParsedRequest:
        if not isinstance(body, dict):
            raise TrafficError("body must be a JSON object")
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs or not isinstance(inputs[0], dict):
            raise TrafficError("'inputs' must be a non-empty list of tensors")
        tensor = inputs[0]
        shape, data = tensor.get("shape"), tensor.get("data")
        if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise TrafficError("inputs[0].shape must be a list of non-negative integers")
        if not isinstance(data, list):
            raise TrafficError("inputs[0].data must be a list")
        flat = np.asarray(data, dtype=object).ravel().tolist() if data and isinstance(data[0], list) else data
        if len(flat) != math.prod(shape):
            raise TrafficError(f"inputs[0].data has {len(flat)} values but shape {shape} needs {math.prod(shape)}")
        rows = shape[0] if len(shape) > 1 else 1
        width = len(flat) // rows if rows else 0
        if rows == 0 or width == 0:
            raise TrafficError("inputs[0] is empty")
        matrix = [flat[i * width : (i + 1) * width] for i in range(rows)]
        return ParsedRequest(features_matrix(matrix, "inputs[0].data"))

    def outputs(self, body: Any, n: int) -> list[Output | None]:
        probs = _probability_tensor(body)
        labels = _label_tensor(body)
        result: list[Output | None] = []
        for i in range(n):
            p = probs[1][i] if probs is not None and i < len(probs[1]) else None
            label = labels[i] if labels is not None and i < len(labels) else None
            if p is None and label is None:
                result.append(None)
            elif p is not None and looks_like_probabilities(p):
                result.append(Output(probabilities=p, label=label))
            else:
                result.append(Output(scores=p, label=label))
        return result

    def harden_response(self, body: Any, spec: HardenSpec, rng: np.random.Generator) -> bool:
        found = _probability_tensor(body)
        if found is None:
            return False
        tensor, matrix = found
        if not all(looks_like_probabilities(row) for row in matrix):
            return False
        hardened = harden_probabilities(matrix, spec, rng)
        nested = bool(tensor["data"]) and isinstance(tensor["data"][0], list)
        tensor["data"] = hardened.tolist() if nested else hardened.ravel().tolist()
        for other in body.get("outputs", []):  # a label output stays; anything else would leak
            if other is not tensor and isinstance(other, dict) and other.get("datatype") in _FLOAT_TYPES:
                other["data"] = []
                other["shape"] = [0]
        return True


def _probability_tensor(body: Any) -> tuple[dict[str, Any], np.ndarray] | None:
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list):
        return None
    candidates = [t for t in body["outputs"] if isinstance(t, dict) and t.get("datatype") in _FLOAT_TYPES]
    candidates.sort(key=lambda t: "prob" not in str(t.get("name", "")).lower())
    for t in candidates:
        shape, data = t.get("shape"), t.get("data")
        if not isinstance(shape, list) or len(shape) != 2 or not isinstance(data, list):
            continue
        try:
            matrix = np.asarray(data, dtype=np.float64).reshape(shape[0], shape[1])
        except (ValueError, TypeError):
            continue
        return t, matrix
    return None


def _label_tensor(body: Any) -> list[int | str] | None:
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list):
        return None
    for t in body["outputs"]:
        if not isinstance(t, dict) or t.get("datatype") in _FLOAT_TYPES:
            continue
        data = t.get("data")
        if isinstance(data, list) and all(isinstance(v, int | str) for v in data):
            return list(data)
    return None
