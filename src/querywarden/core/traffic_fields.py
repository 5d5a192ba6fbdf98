"""The fields of a traffic record: decoded JSON values in, typed values out, or a ``Reject``.

``traffic`` decodes a line and builds the interactions; this module holds what it checks
field by field: the timestamp, the features (flat, nested images, batches), text prompts
and chat messages, and outputs (one per instance). A check that fails raises ``Reject``
with a reason a person can act on; the parser locates it at ``source:line``.

The msgspec structs here (``WireInput``, ``WireOutput``) are the general shape of those
fields on the wire; the record around them and the fast path for the common record live
in ``traffic``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np

from querywarden.core.records import InputKind, Output, Vector

_F64 = np.float64


class Reject(Exception):
    """A record-level problem; ``TrafficParser.parse`` turns it into a located ``TrafficError``."""


@dataclass(frozen=True, slots=True)
class Expect:
    """What a model's profile says about its inputs, resolved once."""

    kind: InputKind
    dim: int | None
    shape: tuple[int, ...] | None


# -- the wire format of the fields -------------------------------------------------------------
class _Message(msgspec.Struct, gc=False):
    role: str = "user"
    content: Any = ""


class WireInput(msgspec.Struct, gc=False):
    features: list[Any] | None = None
    prompt: str | list[str] | None = None
    messages: list[_Message] | None = None
    instances: list[Any] | None = None


class WireOutput(msgspec.Struct, gc=False):
    probabilities: list[Any] | None = None
    label: Any = None
    scores: list[Any] | None = None
    text: str | list[str] | None = None
    logprobs: Any = None


_Item = tuple[Vector | None, str | None, tuple[dict[str, str], ...] | None]


@dataclass(frozen=True, slots=True)
class _Inputs:
    items: list[_Item]
    batched: bool


# -- timestamps ------------------------------------------------------------------------------
_BAD_TS = "unparseable ts {!r}: expected RFC 3339 (2026-11-28T12:00:00Z) or epoch seconds"


def parse_ts(value: str | float | None) -> float:
    """RFC 3339 text or epoch seconds -> epoch seconds. A text without offset is taken as UTC."""
    if value is None:
        raise Reject("missing ts (RFC 3339 text or epoch seconds)")
    if isinstance(value, str):
        text = value.strip().upper()
        if ":" not in text and "-" not in text[1:]:
            try:
                return _finite_ts(float(text), value)
            except ValueError:
                raise Reject(_BAD_TS.format(value)) from None
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise Reject(_BAD_TS.format(value)) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    return _finite_ts(float(value), value)


def _finite_ts(ts: float, raw: object) -> float:
    if not math.isfinite(ts) or ts < 0:
        raise Reject(f"unparseable ts {raw!r}: epoch seconds must be finite and not negative")
    return ts


# -- inputs ----------------------------------------------------------------------------------
def fast_vector(raw: list[float], what: str) -> Vector:
    if not raw:
        raise Reject(f"{what} is empty")
    return np.array(raw, dtype=_F64)


def _vector(raw: list[Any], what: str) -> Vector:
    """A JSON number list -> float64 array (1-D or 2-D). Non-numbers and NaN/inf are rejected."""
    try:
        arr = np.array(raw)
    except ValueError:
        raise Reject(f"{what} rows have different lengths") from None
    kind = arr.dtype.kind
    if kind == "f":
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
            raise Reject(f"{what} holds a NaN or infinite value at index {bad}")
    elif kind not in "iu":
        if arr.size == 0:
            raise Reject(f"{what} is empty")
        raise Reject(f"{what} must be numbers only (found {_first_non_number(raw)})")
    if arr.size == 0:
        raise Reject(f"{what} is empty")
    return arr.astype(np.float64, copy=False)


def _first_non_number(values: list[Any]) -> str:
    for v in values:
        if isinstance(v, list):
            return _first_non_number(v)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return "null" if v is None else repr(v)
    return "an empty list"


def _features(raw: list[Any], expect: Expect | None) -> tuple[list[Vector], bool]:
    """Features of one instance, or a batch of them. Images may come flattened or nested."""
    arr = _vector(raw, "features")
    shape = expect.shape if expect is not None else None
    if shape is not None and arr.ndim > 1:
        if arr.shape == shape:
            arr, rows = arr.reshape(-1), None
        elif arr.shape[1:] == shape:
            rows = [r.reshape(-1) for r in arr]
        else:
            raise Reject(f"features have shape {list(arr.shape)}; the model takes {list(shape)}")
    elif arr.ndim == 1:
        rows = None
    elif arr.ndim == 2:
        rows = list(arr)
    else:
        raise Reject(f"features have {arr.ndim} dimensions; expected a list or a list of lists")
    vectors = [arr] if rows is None else rows
    if expect is not None:
        if expect.kind is InputKind.TEXT:
            raise Reject("the model takes text (prompt or messages), not features")
        if expect.dim is not None and vectors[0].shape[0] != expect.dim:
            raise Reject(f"wrong feature count: {vectors[0].shape[0]}, the model takes {expect.dim}")
    return vectors, rows is not None


def _messages(raw: list[_Message]) -> tuple[dict[str, str], ...]:
    out = []
    for m in raw:
        content = m.content
        if not isinstance(content, str):
            content = _content_text(content)
        out.append({"role": m.role, "content": content})
    return tuple(out)


def _content_text(content: Any) -> str:
    """Chat content given as parts (``[{"type": "text", "text": ...}]``) -> its text."""
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    raise Reject(f"message content must be text or a list of parts, not {type(content).__name__}")


def _text_only(expect: Expect | None) -> None:
    if expect is not None and expect.kind is not InputKind.TEXT:
        raise Reject(f"the model takes {expect.kind.value} features, not text")


def parse_inputs(inp: WireInput | list[Any], expect: Expect | None) -> _Inputs:
    if isinstance(inp, list):
        vectors, batched = _features(inp, expect)
        return _Inputs([(v, None, None) for v in vectors], batched)
    if inp.features is not None:
        vectors, batched = _features(inp.features, expect)
        return _Inputs([(v, None, None) for v in vectors], batched)
    if inp.prompt is not None:
        _text_only(expect)
        if isinstance(inp.prompt, str):
            return _Inputs([(None, inp.prompt, None)], False)
        if not inp.prompt:
            raise Reject("prompt is an empty list")
        return _Inputs([(None, p, None) for p in inp.prompt], True)
    if inp.messages is not None:
        _text_only(expect)
        if not inp.messages:
            raise Reject("messages is empty")
        return _Inputs([(None, None, _messages(inp.messages))], False)
    if inp.instances is not None:
        if not inp.instances:
            raise Reject("instances is empty")
        items: list[_Item] = []
        for k, inst in enumerate(inp.instances):
            try:
                one = inst if isinstance(inst, list) else msgspec.convert(inst, WireInput)
            except msgspec.ValidationError as exc:
                raise Reject(f"instance {k}: {exc}") from None
            if not isinstance(one, list) and one.instances is not None:
                raise Reject(f"instance {k}: instances cannot nest")
            sub = parse_inputs(one, expect)
            if sub.batched:
                raise Reject(f"instance {k} is itself a batch")
            items.append(sub.items[0])
        return _Inputs(items, True)
    raise Reject("input has none of features, prompt, messages or instances")


# -- outputs ---------------------------------------------------------------------------------
def parse_outputs(out: WireOutput | list[WireOutput] | None, n: int, batched: bool) -> list[Output | None]:
    """One ``Output`` per instance. Batched outputs carry one entry per instance in each field."""
    if out is None:
        return [None] * n
    if isinstance(out, list):
        if len(out) != n:
            raise Reject(f"output has {len(out)} entries for {n} instances")
        return [_one_output(o) for o in out]
    if not batched:
        return [_one_output(out)]
    probs = _rows(out.probabilities, n, "output.probabilities")
    scores = _rows(out.scores, n, "output.scores")
    labels = _split(out.label, n, "output.label")
    texts = _split(out.text, n, "output.text")
    logprobs = _split(out.logprobs, n, "output.logprobs")
    return [
        Output(probabilities=probs[i], scores=scores[i], label=labels[i], text=texts[i], logprobs=logprobs[i])
        for i in range(n)
    ]


def _one_output(out: WireOutput) -> Output:
    probs = _row(out.probabilities, "output.probabilities")
    scores = _row(out.scores, "output.scores")
    label = out.label
    if isinstance(label, list) and len(label) == 1:
        label = label[0]
    _check_label(label)
    text = out.text
    if isinstance(text, list):
        text = "".join(text)
    return Output(probabilities=probs, scores=scores, label=label, text=text, logprobs=out.logprobs)


def _check_label(label: Any) -> None:
    if label is not None and (isinstance(label, bool) or not isinstance(label, int | str)):
        raise Reject(f"output.label must be an integer or text, not {label!r}")


def _row(raw: list[Any] | None, what: str) -> Vector | None:
    if raw is None:
        return None
    arr = _vector(raw, what)
    if arr.ndim == 2 and arr.shape[0] == 1:
        row: Vector = arr[0]
        return row
    if arr.ndim != 1:
        raise Reject(f"{what} must be one list of numbers for a single instance")
    return arr


def _rows(raw: list[Any] | None, n: int, what: str) -> list[Vector | None]:
    if raw is None:
        return [None] * n
    arr = _vector(raw, what)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise Reject(f"{what} must hold one row per instance ({n}); got shape {list(arr.shape)}")
    return list(arr)


def _split(raw: Any, n: int, what: str) -> list[Any]:
    if raw is None:
        return [None] * n
    if not isinstance(raw, list) or len(raw) != n:
        raise Reject(f"{what} must be a list with one entry per instance ({n})")
    if what == "output.label":
        for v in raw:
            _check_label(v)
    return raw


__all__ = ["Expect", "Reject", "WireInput", "WireOutput", "fast_vector", "parse_inputs", "parse_outputs", "parse_ts"]
