"""The digits victim several detector tests share: an MLP trained on the first 1,000 digits,
a profile with the next 400 as its reference, and the rest held out."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

from querywarden.core.detector import Detector
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Interaction, Output, Signal

TRAIN = slice(0, 1000)
REFERENCE = slice(1000, 1400)
HELD_OUT = slice(1400, None)


@cache
def digits_data() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x, y


@cache
def digits_mlp() -> MLPClassifier:
    x, y = digits_data()
    return MLPClassifier((32,), max_iter=1000, random_state=0).fit(x[TRAIN], y[TRAIN])


def digits_profile(**extra: Any) -> ModelProfile:
    """The 8x8 image profile with ranges 0-16 and the reference rows; ``extra`` adds fields
    (``training_digests``, ``id``)."""
    x, _ = digits_data()
    fields: dict[str, Any] = {
        "id": "digits",
        "input_kind": InputKind.IMAGE,
        "n_features": 64,
        "shape": (8, 8),
        "ranges": tuple((0.0, 16.0) for _ in range(64)),
        "classes": tuple(str(c) for c in range(10)),
        "reference": x[REFERENCE],
    }
    fields.update(extra)
    return ModelProfile(**fields)


def feed(
    det: Detector, model: MLPClassifier, rows: np.ndarray, principal: str, t0: float = 1e9
) -> list[tuple[int, Signal]]:
    """Send ``rows`` one a second from ``t0`` with the model's probabilities as outputs;
    each signal comes with the 1-based number of the query that raised it."""
    probs = model.predict_proba(rows)
    out: list[tuple[int, Signal]] = []
    for i, (row, p) in enumerate(zip(rows, probs, strict=True)):
        it = Interaction(
            id=f"{principal}-{i}",
            ts=t0 + i,
            principal=principal,
            model="digits",
            features=row,
            output=Output(probabilities=p),
        )
        out.extend((i + 1, s) for s in det.update(it))
    return out
