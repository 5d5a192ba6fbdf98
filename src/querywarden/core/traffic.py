"""The traffic record: one JSON line in, one ``Interaction`` per instance out.

This is the interchange format of DESIGN.md. The gateway writes it, ``replay`` reads it,
the benchmark produces it. Parsing is pure (bytes in, records out, no file access) so the
same code serves a file, an HTTP body and a test.

Speed matters: ``replay`` must sustain tens of thousands of lines per second on one core.
The line is decoded by msgspec straight into small typed wire structs (no intermediate
dict of dicts), and model profiles are resolved once per parser, not once per line.

The checks of each field (timestamp, features, prompt and messages, outputs) live in
``traffic_fields``; writing traffic (``to_record``, ``encode``) lives in ``traffic_encode``
and is re-exported here.

Every rejection is a ``TrafficError`` located at ``source:line`` so a person can open the
file at the bad record. A caller that streams a file counts and reports rejects and goes
on; the parser itself never skips anything silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np

from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, InputKind, Interaction, Output
from querywarden.core.traffic_encode import encode, to_record  # the writer, re-exported for older imports
from querywarden.core.traffic_fields import (
    Expect,
    Reject,
    WireInput,
    WireOutput,
    fast_vector,
    parse_inputs,
    parse_outputs,
    parse_ts,
)
from querywarden.errors import TrafficError

DEFAULT_MODEL = "default"
"""The model id given to records without ``model`` when no profiles are configured."""


# -- the wire format: what msgspec decodes a line into ------------------------------------
class _Record(msgspec.Struct, gc=False):
    principal: str | None = None
    input: WireInput | list[Any] | None = None
    ts: str | float | None = None
    id: str | None = None
    model: str | None = None
    client: Client | None = None
    output: WireOutput | list[WireOutput] | None = None
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


class TrafficParser:
    """Parses traffic lines for one source (a file name, ``http``, ...).

    ``profiles`` maps model id to profile. With ``None`` every model id is accepted and no
    feature count is checked (profile inference mode); a record without ``model`` then
    belongs to ``DEFAULT_MODEL``. With profiles, ``model`` may be omitted only when exactly
    one model is configured.
    """

    def __init__(self, profiles: Mapping[str, ModelProfile] | None, source: str) -> None:
        self.source = source
        self._expect: dict[str, Expect] | None = None
        self._only_model: str | None = DEFAULT_MODEL
        if profiles is not None:
            self._expect = {
                mid: Expect(p.input_kind, p.expected_dim(), p.shape if p.shape and len(p.shape) > 1 else None)
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
            except Reject as exc:
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
        except Reject as exc:
            raise self._error(str(exc), lineno) from None

    # -- building interactions ----------------------------------------------------------
    def _build(self, rec: _Record, lineno: int) -> list[Interaction]:
        if not rec.principal:
            raise Reject("missing principal")
        if rec.input is None:
            raise Reject("missing input")
        ts = parse_ts(rec.ts)
        model, expect = self._model(rec.model)
        where = f"{self.source}:{lineno}"
        rid = rec.id if rec.id is not None else where
        client = rec.client if rec.client is not None else _NO_CLIENT
        params = rec.params if rec.params is not None else {}

        inputs = parse_inputs(rec.input, expect)
        outputs = parse_outputs(rec.output, len(inputs.items), inputs.batched)
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
            raise Reject("missing principal")
        ts = rec.ts
        if isinstance(ts, float) and 0.0 <= ts < math.inf:
            pass
        else:
            ts = parse_ts(ts)
        model, expect = self._model(rec.model)
        raw = rec.input if isinstance(rec.input, list) else rec.input.features
        n = len(raw)
        if expect is not None:
            if expect.kind is InputKind.TEXT:
                raise Reject("the model takes text (prompt or messages), not features")
            if expect.dim is not None and n != expect.dim:
                raise Reject(f"wrong feature count: {n}, the model takes {expect.dim}")
        if n == 0:
            raise Reject("features is empty")
        out = rec.output
        output = None
        if out is not None:
            probs = out.probabilities
            scores = out.scores
            output = Output(
                probabilities=None if probs is None else fast_vector(probs, "output.probabilities"),
                label=out.label,
                scores=None if scores is None else fast_vector(scores, "output.scores"),
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

    def _model(self, model: str | None) -> tuple[str, Expect | None]:
        """The record's model id (filled in where it may be omitted) and what its profile expects."""
        if self._expect is None:
            return (DEFAULT_MODEL if model is None else model), None
        if model is None:
            if self._only_model is None:
                raise Reject(f"missing model; several are configured: {self._known}")
            model = self._only_model
        expect = self._expect.get(model)
        if expect is None:
            raise Reject(f"unknown model {model!r}; configured: {self._known}")
        return model, expect

    def _error(self, reason: str, lineno: int) -> TrafficError:
        return TrafficError(reason, source=self.source, line=lineno)


_NO_CLIENT = Client()


__all__ = ["DEFAULT_MODEL", "TrafficParser", "encode", "to_record"]
