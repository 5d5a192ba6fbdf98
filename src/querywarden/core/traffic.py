"""The traffic record: one JSON line in, one ``Interaction`` per instance out.

This is the interchange format of DESIGN.md. The gateway writes it, ``replay`` reads it,
the benchmark produces it. Parsing is pure (bytes in, records out, no file access) so the
same code serves a file, an HTTP body and a test.

Speed matters: ``replay`` must sustain tens of thousands of lines per second on one core.
The line is decoded by msgspec straight into small typed wire structs (no intermediate
dict of dicts), and model profiles are resolved once per parser, not once per line.

Writing traffic (``to_record``, ``encode``) lives in ``traffic_encode`` and is re-exported
here.

Every rejection is a ``TrafficError`` located at ``source:line`` so a person can open the
file at the bad record. A caller that streams a file counts and reports rejects and goes
on; the parser itself never skips anything silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np

from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, InputKind, Interaction, Output, Vector
from querywarden.core.traffic_encode import encode, to_record  # the writer, re-exported for older imports
from querywarden.errors import TrafficError

DEFAULT_MODEL = "default"
"""The model id given to records without ``model`` when no profiles are configured."""


# -- the wire format: what msgspec decodes a line into ------------------------------------
class _Message(msgspec.Struct, gc=False):
    role: str = "user"
    content: Any = ""


class _Input(msgspec.Struct, gc=False):
    features: list[Any] | None = None
    prompt: str | list[str] | None = None
    messages: list[_Message] | None = None
    instances: list[Any] | None = None


class _Output(msgspec.Struct, gc=False):
    probabilities: list[Any] | None = None
    label: Any = None
    scores: list[Any] | None = None
    text: str | list[str] | None = None
    logprobs: Any = None


class _Record(msgspec.Struct, gc=False):
    principal: str | None = None
    input: _Input | list[Any] | None = None
    ts: str | float | None = None
    id: str | None = None
    model: str | None = None
    client: Client | None = None
    output: _Output | list[_Output] | None = None
    params: dict[str, Any] | None = None


_DECODER = msgspec.json.Decoder(_Record)


# The fast path: the common record (one flat feature vector, a plain output) decoded into
# strictly typed structs, so msgspec does the type checks in C and floats arrive finite
# (JSON has no NaN, and msgspec rejects out-of-range numbers). Anything else falls back to
# the general path above, which also words the error.
class _FastInput(msgspec.Struct, gc=False):
    features: list[float]


class _FastOutput(msgspec.Struct, gc=False):
    probabilities: list[float] | None = None
    label: int | str | None = None
    scores: list[float] | None = None
    text: str | None = None
    logprobs: Any = None


class _FastRecord(msgspec.Struct, gc=False):
    principal: str
    input: _FastInput | list[float]
    ts: str | float
    id: str | None = None
    model: str | None = None
    client: Client | None = None
    output: _FastOutput | None = None
    params: dict[str, Any] | None = None


_FAST_DECODER = msgspec.json.Decoder(_FastRecord)
_F64 = np.float64


@dataclass(frozen=True, slots=True)
class _Expect:
    """What a model's profile says about its inputs, resolved once."""

    kind: InputKind
    dim: int | None
    shape: tuple[int, ...] | None


class TrafficParser:
    """Parses traffic lines for one source (a file name, ``http``, ...).

    ``profiles`` maps model id to profile. With ``None`` every model id is accepted and no
    feature count is checked (profile inference mode); a record without ``model`` then
    belongs to ``DEFAULT_MODEL``. With profiles, ``model`` may be omitted only when exactly
    one model is configured.
    """

    def __init__(self, profiles: Mapping[str, ModelProfile] | None, source: str) -> None:
        self.source = source
        self._expect: dict[str, _Expect] | None = None
        self._only_model: str | None = DEFAULT_MODEL
        if profiles is not None:
            self._expect = {
                mid: _Expect(p.input_kind, p.expected_dim(), p.shape if p.shape and len(p.shape) > 1 else None)
                for mid, p in profiles.items()
            }
            self._only_model = next(iter(profiles)) if len(profiles) == 1 else None
            self._known = ", ".join(sorted(profiles))

    def parse(self, line: bytes, lineno: int) -> list[Interaction]:
        """One JSON line -> one interaction per instance. Raises ``TrafficError`` located at ``lineno``."""
        try:
            fast = _FAST_DECODER.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass  # not the common shape (or not valid): the general path decides and words the error
        else:
            try:
                return [self._build_fast(fast, lineno)]
            except _Reject as exc:
                raise self._error(str(exc), lineno) from None
        try:
            rec = _DECODER.decode(line)
        except msgspec.ValidationError as exc:
            raise self._error(f"invalid record: {exc}", lineno) from None
        except msgspec.DecodeError as exc:
            reason = "truncated JSON" if "truncated" in str(exc) else f"invalid JSON: {exc}"
            raise self._error(reason, lineno) from None
        except UnicodeDecodeError as exc:
            raise self._error(f"not UTF-8 (byte {exc.object[exc.start]:#04x})", lineno) from None
        try:
            return self._build(rec, lineno)
        except _Reject as exc:
            raise self._error(str(exc), lineno) from None

    # -- building interactions ----------------------------------------------------------
    def _build(self, rec: _Record, lineno: int) -> list[Interaction]:
        if not rec.principal:
            raise _Reject("missing principal")
        if rec.input is None:
            raise _Reject("missing input")
        ts = _timestamp(rec.ts)
        model, expect = self._model(rec.model)
        where = f"{self.source}:{lineno}"
        rid = rec.id if rec.id is not None else where
        client = rec.client if rec.client is not None else _NO_CLIENT
        params = rec.params if rec.params is not None else {}

        inputs = _instances(rec.input, expect)
        outputs = _outputs(rec.output, len(inputs.items), inputs.batched)
        if not inputs.batched:
            features, prompt, messages = inputs.items[0]
            return [
                Interaction(
                    id=rid,
                    ts=ts,
                    principal=rec.principal,
                    model=model,
                    client=client,
                    features=features,
                    prompt=prompt,
                    messages=messages,
                    output=outputs[0],
                    params=params,
                    source=where,
                )
            ]
        return [
            Interaction(
                id=f"{rid}#{i}",
                ts=ts,
                principal=rec.principal,
                model=model,
                client=client,
                features=features,
                prompt=prompt,
                messages=messages,
                output=outputs[i],
                params=params,
                source=where,
            )
            for i, (features, prompt, messages) in enumerate(inputs.items)
        ]

    def _build_fast(self, rec: _FastRecord, lineno: int) -> Interaction:
        """The common record: the same checks as ``_build``, without its generality."""
        if not rec.principal:
            raise _Reject("missing principal")
        ts = rec.ts
        if isinstance(ts, float) and 0.0 <= ts < math.inf:
            pass
        else:
            ts = _timestamp(ts)
        model, expect = self._model(rec.model)
        raw = rec.input if isinstance(rec.input, list) else rec.input.features
        n = len(raw)
        if expect is not None:
            if expect.kind is InputKind.TEXT:
                raise _Reject("the model takes text (prompt or messages), not features")
            if expect.dim is not None and n != expect.dim:
                raise _Reject(f"wrong feature count: {n}, the model takes {expect.dim}")
        if n == 0:
            raise _Reject("features is empty")
        out = rec.output
        output = None
        if out is not None:
            probs = out.probabilities
            scores = out.scores
            output = Output(
                probabilities=None if probs is None else _fast_vector(probs, "output.probabilities"),
                label=out.label,
                scores=None if scores is None else _fast_vector(scores, "output.scores"),
                text=out.text,
                logprobs=out.logprobs,
            )
        where = f"{self.source}:{lineno}"
        return Interaction(
            id=rec.id if rec.id is not None else where,
            ts=ts,
            principal=rec.principal,
            model=model,
            client=rec.client if rec.client is not None else _NO_CLIENT,
            features=np.array(raw, dtype=_F64),
            output=output,
            params=rec.params if rec.params is not None else {},
            source=where,
        )

    def _model(self, model: str | None) -> tuple[str, _Expect | None]:
        """The record's model id (filled in where it may be omitted) and what its profile expects."""
        if self._expect is None:
            return (DEFAULT_MODEL if model is None else model), None
        if model is None:
            if self._only_model is None:
                raise _Reject(f"missing model; several are configured: {self._known}")
            model = self._only_model
        expect = self._expect.get(model)
        if expect is None:
            raise _Reject(f"unknown model {model!r}; configured: {self._known}")
        return model, expect

    def _error(self, reason: str, lineno: int) -> TrafficError:
        return TrafficError(reason, source=self.source, line=lineno)


_NO_CLIENT = Client()

_Item = tuple[Vector | None, str | None, tuple[dict[str, str], ...] | None]


class _Reject(Exception):
    """A record-level problem; ``parse`` turns it into a located ``TrafficError``."""


@dataclass(frozen=True, slots=True)
class _Inputs:
    items: list[_Item]
    batched: bool


# -- timestamps ------------------------------------------------------------------------------
_BAD_TS = "unparseable ts {!r}: expected RFC 3339 (2026-11-28T12:00:00Z) or epoch seconds"


def _timestamp(value: str | float | None) -> float:
    """RFC 3339 text or epoch seconds -> epoch seconds. A text without offset is taken as UTC."""
    if value is None:
        raise _Reject("missing ts (RFC 3339 text or epoch seconds)")
    if isinstance(value, str):
        text = value.strip().upper()
        if ":" not in text and "-" not in text[1:]:
            try:
                return _finite_ts(float(text), value)
            except ValueError:
                raise _Reject(_BAD_TS.format(value)) from None
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise _Reject(_BAD_TS.format(value)) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    return _finite_ts(float(value), value)


def _finite_ts(ts: float, raw: object) -> float:
    if not math.isfinite(ts) or ts < 0:
        raise _Reject(f"unparseable ts {raw!r}: epoch seconds must be finite and not negative")
    return ts


# -- inputs ----------------------------------------------------------------------------------
def _fast_vector(raw: list[float], what: str) -> Vector:
    if not raw:
        raise _Reject(f"{what} is empty")
    return np.array(raw, dtype=_F64)


def _vector(raw: list[Any], what: str) -> Vector:
    """A JSON number list -> float64 array (1-D or 2-D). Non-numbers and NaN/inf are rejected."""
    try:
        arr = np.array(raw)
    except ValueError:
        raise _Reject(f"{what} rows have different lengths") from None
    kind = arr.dtype.kind
    if kind == "f":
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
            raise _Reject(f"{what} holds a NaN or infinite value at index {bad}")
    elif kind not in "iu":
        if arr.size == 0:
            raise _Reject(f"{what} is empty")
        raise _Reject(f"{what} must be numbers only (found {_first_non_number(raw)})")
    if arr.size == 0:
        raise _Reject(f"{what} is empty")
    return arr.astype(np.float64, copy=False)


def _first_non_number(values: list[Any]) -> str:
    for v in values:
        if isinstance(v, list):
            return _first_non_number(v)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return "null" if v is None else repr(v)
    return "an empty list"


def _features(raw: list[Any], expect: _Expect | None) -> tuple[list[Vector], bool]:
    """Features of one instance, or a batch of them. Images may come flattened or nested."""
    arr = _vector(raw, "features")
    shape = expect.shape if expect is not None else None
    if shape is not None and arr.ndim > 1:
        if arr.shape == shape:
            arr, rows = arr.reshape(-1), None
        elif arr.shape[1:] == shape:
            rows = [r.reshape(-1) for r in arr]
        else:
            raise _Reject(f"features have shape {list(arr.shape)}; the model takes {list(shape)}")
    elif arr.ndim == 1:
        rows = None
    elif arr.ndim == 2:
        rows = list(arr)
    else:
        raise _Reject(f"features have {arr.ndim} dimensions; expected a list or a list of lists")
    vectors = [arr] if rows is None else rows
    if expect is not None:
        if expect.kind is InputKind.TEXT:
            raise _Reject("the model takes text (prompt or messages), not features")
        if expect.dim is not None and vectors[0].shape[0] != expect.dim:
            raise _Reject(f"wrong feature count: {vectors[0].shape[0]}, the model takes {expect.dim}")
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
    raise _Reject(f"message content must be text or a list of parts, not {type(content).__name__}")


def _text_only(expect: _Expect | None) -> None:
    if expect is not None and expect.kind is not InputKind.TEXT:
        raise _Reject(f"the model takes {expect.kind.value} features, not text")


def _instances(inp: _Input | list[Any], expect: _Expect | None) -> _Inputs:
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
            raise _Reject("prompt is an empty list")
        return _Inputs([(None, p, None) for p in inp.prompt], True)
    if inp.messages is not None:
        _text_only(expect)
        if not inp.messages:
            raise _Reject("messages is empty")
        return _Inputs([(None, None, _messages(inp.messages))], False)
    if inp.instances is not None:
        if not inp.instances:
            raise _Reject("instances is empty")
        items: list[_Item] = []
        for k, inst in enumerate(inp.instances):
            try:
                one = inst if isinstance(inst, list) else msgspec.convert(inst, _Input)
            except msgspec.ValidationError as exc:
                raise _Reject(f"instance {k}: {exc}") from None
            if not isinstance(one, list) and one.instances is not None:
                raise _Reject(f"instance {k}: instances cannot nest")
            sub = _instances(one, expect)
            if sub.batched:
                raise _Reject(f"instance {k} is itself a batch")
            items.append(sub.items[0])
        return _Inputs(items, True)
    raise _Reject("input has none of features, prompt, messages or instances")


# -- outputs ---------------------------------------------------------------------------------
def _outputs(out: _Output | list[_Output] | None, n: int, batched: bool) -> list[Output | None]:
    """One ``Output`` per instance. Batched outputs carry one entry per instance in each field."""
    if out is None:
        return [None] * n
    if isinstance(out, list):
        if len(out) != n:
            raise _Reject(f"output has {len(out)} entries for {n} instances")
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


def _one_output(out: _Output) -> Output:
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
        raise _Reject(f"output.label must be an integer or text, not {label!r}")


def _row(raw: list[Any] | None, what: str) -> Vector | None:
    if raw is None:
        return None
    arr = _vector(raw, what)
    if arr.ndim == 2 and arr.shape[0] == 1:
        row: Vector = arr[0]
        return row
    if arr.ndim != 1:
        raise _Reject(f"{what} must be one list of numbers for a single instance")
    return arr


def _rows(raw: list[Any] | None, n: int, what: str) -> list[Vector | None]:
    if raw is None:
        return [None] * n
    arr = _vector(raw, what)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise _Reject(f"{what} must hold one row per instance ({n}); got shape {list(arr.shape)}")
    return list(arr)


def _split(raw: Any, n: int, what: str) -> list[Any]:
    if raw is None:
        return [None] * n
    if not isinstance(raw, list) or len(raw) != n:
        raise _Reject(f"{what} must be a list with one entry per instance ({n})")
    if what == "output.label":
        for v in raw:
            _check_label(v)
    return raw


__all__ = ["DEFAULT_MODEL", "TrafficParser", "encode", "to_record"]
