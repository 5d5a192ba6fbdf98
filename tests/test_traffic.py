"""The traffic record: parsing, batches, timestamps, every reject kind, and the encoder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from querywarden.core.profile import ModelProfile
from querywarden.core.records import Client, InputKind, Interaction, Output
from querywarden.core.traffic import DEFAULT_MODEL, TrafficParser, encode, to_record
from querywarden.errors import TrafficError

CREDIT = ModelProfile(id="credit", n_features=3)
DIGITS = ModelProfile(id="digits", input_kind=InputKind.IMAGE, shape=(2, 2))
CHAT = ModelProfile(id="chat", input_kind=InputKind.TEXT, output_kind="text")


def line(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def one(parser: TrafficParser, raw: bytes) -> Interaction:
    out = parser.parse(raw, 1)
    assert len(out) == 1
    return out[0]


def rejected(parser: TrafficParser, raw: bytes, lineno: int = 7) -> str:
    with pytest.raises(TrafficError) as info:
        parser.parse(raw, lineno)
    err = info.value
    assert err.source == parser.source
    assert err.line == lineno
    assert str(err).startswith(f"{parser.source}:{lineno}: ")
    return err.reason


def test_the_design_example_parses() -> None:
    raw = (
        b'{"id": "req-000123", "ts": "2026-11-28T12:00:00.123Z", "principal": "key_8f2c",'
        b' "model": "credit", "client": {"ip": "203.0.113.7", "user_agent": "python-httpx/0.28"},'
        b' "input": {"features": [0.12, 3.0, 1]}, "output": {"probabilities": [0.91, 0.09]}, "params": {}}'
    )
    it = one(TrafficParser({"credit": CREDIT}, "t.jsonl"), raw)
    assert it.id == "req-000123"
    assert it.principal == "key_8f2c"
    assert it.model == "credit"
    assert it.ts == pytest.approx(1795867200.123)
    assert it.client == Client(ip="203.0.113.7", user_agent="python-httpx/0.28")
    assert it.features is not None and it.features.dtype == np.float64
    assert it.features.tolist() == [0.12, 3.0, 1.0]
    assert it.output is not None and it.output.probabilities is not None
    assert it.output.probabilities.tolist() == [0.91, 0.09]
    assert it.source == "t.jsonl:1"


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-28T12:00:00Z", 1795867200.0),
        ("2026-11-28T13:00:00+01:00", 1795867200.0),
        ("2026-11-28t12:00:00.5z", 1795867200.5),
        ("2026-11-28T12:00:00", 1795867200.0),
        (1795867200, 1795867200.0),
        (1795867200.25, 1795867200.25),
        ("1795867200.25", 1795867200.25),
    ],
)
def test_timestamps_rfc3339_or_epoch(ts: object, expected: float) -> None:
    it = one(TrafficParser(None, "t"), line(ts=ts, principal="p", input=[1.0]))
    assert it.ts == pytest.approx(expected)


def test_absent_id_is_deterministic_from_source_and_line() -> None:
    parser = TrafficParser(None, "logs/a.jsonl")
    first = parser.parse(line(ts=1, principal="p", input=[1]), 42)[0]
    again = parser.parse(line(ts=1, principal="p", input=[1]), 42)[0]
    assert first.id == again.id == "logs/a.jsonl:42"
    assert first.model == DEFAULT_MODEL


def test_model_defaults_to_the_only_configured_one() -> None:
    it = one(TrafficParser({"credit": CREDIT}, "t"), line(ts=1, principal="p", input=[1, 2, 3]))
    assert it.model == "credit"


def test_model_required_when_several_are_configured() -> None:
    parser = TrafficParser({"credit": CREDIT, "chat": CHAT}, "t")
    reason = rejected(parser, line(ts=1, principal="p", input=[1, 2, 3]))
    assert "missing model" in reason and "chat, credit" in reason


def test_feature_batch_becomes_one_interaction_per_instance() -> None:
    parser = TrafficParser({"credit": CREDIT}, "t")
    raw = line(
        id="req-7",
        ts=5,
        principal="p",
        input={"features": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]},
        output={"probabilities": [[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]], "label": [1, 0, 0]},
    )
    out = parser.parse(raw, 3)
    assert [i.id for i in out] == ["req-7#0", "req-7#1", "req-7#2"]
    assert [i.features.tolist() for i in out if i.features is not None] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [i.output.probabilities.tolist() for i in out if i.output and i.output.probabilities is not None] == [
        [0.1, 0.9],
        [0.8, 0.2],
        [0.5, 0.5],
    ]
    assert [i.output.label for i in out if i.output] == [1, 0, 0]
    assert all(i.ts == 5.0 and i.source == "t:3" for i in out)


def test_instances_batch_and_output_list() -> None:
    parser = TrafficParser(None, "t")
    raw = line(
        id="b",
        ts=5,
        principal="p",
        input={"instances": [[1, 2], {"features": [3, 4]}]},
        output=[{"label": "cat"}, {"label": "dog"}],
    )
    out = parser.parse(raw, 1)
    assert [i.id for i in out] == ["b#0", "b#1"]
    assert [i.output.label for i in out if i.output] == ["cat", "dog"]


def test_batched_output_must_match_instances() -> None:
    parser = TrafficParser(None, "t")
    raw = line(ts=5, principal="p", input=[[1, 2], [3, 4]], output={"probabilities": [0.5, 0.5]})
    assert "one row per instance" in rejected(parser, raw)


def test_prompt_list_is_a_batch_and_text_outputs_split() -> None:
    parser = TrafficParser({"chat": CHAT}, "t")
    out = parser.parse(line(id="c", ts=1, principal="p", input={"prompt": ["a", "b"]}, output={"text": ["x", "y"]}), 1)
    got = [(i.id, i.prompt, i.output.text if i.output else None) for i in out]
    assert got == [("c#0", "a", "x"), ("c#1", "b", "y")]


def test_chat_messages_with_content_parts() -> None:
    parser = TrafficParser({"chat": CHAT}, "t")
    msgs = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {}}]},
    ]
    it = one(parser, line(ts=1, principal="p", input={"messages": msgs}, params={"logprobs": True, "top_logprobs": 5}))
    assert it.messages == ({"role": "system", "content": "be nice"}, {"role": "user", "content": "hello"})
    assert it.text() == "be nice\nhello"
    assert it.params == {"logprobs": True, "top_logprobs": 5}


def test_image_nested_or_flat() -> None:
    parser = TrafficParser({"digits": DIGITS}, "t")
    flat = one(parser, line(ts=1, principal="p", input=[0, 1, 2, 3]))
    nested = one(parser, line(ts=1, principal="p", input=[[0, 1], [2, 3]]))
    assert flat.features is not None and nested.features is not None
    assert flat.features.tolist() == nested.features.tolist() == [0, 1, 2, 3]
    batch = parser.parse(line(ts=1, principal="p", input=[[[0, 1], [2, 3]], [[4, 5], [6, 7]]]), 1)
    assert [i.features.tolist() for i in batch if i.features is not None] == [[0, 1, 2, 3], [4, 5, 6, 7]]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"ts": 1, "principal": "p", "input": [1, 2', "truncated JSON"),
        (b'{"ts": 1, "principal": "p", "input": [1, 2, 3]} trailing', "invalid JSON"),
        (b'{"ts": 1, "principal": "\xff\xfe", "input": [1, 2, 3]}', "not UTF-8"),
        (b'{"ts": 1, "input": [1, 2, 3]}', "missing principal"),
        (b'{"ts": 1, "principal": "", "input": [1, 2, 3]}', "missing principal"),
        (b'{"ts": 1, "principal": "p"}', "missing input"),
        (b'{"ts": 1, "principal": "p", "input": [1, null, 3]}', "numbers only (found null)"),
        (b'{"ts": 1, "principal": "p", "input": [1, 1e999, 3]}', "Number out of range"),
        (b'{"ts": 1, "principal": "p", "input": [1, "x", 3]}', "numbers only (found 'x')"),
        (b'{"ts": "yesterday", "principal": "p", "input": [1, 2, 3]}', "unparseable ts 'yesterday'"),
        (b'{"ts": "2026-13-45T00:00:00Z", "principal": "p", "input": [1, 2, 3]}', "unparseable ts"),
        (b'{"ts": -5, "principal": "p", "input": [1, 2, 3]}', "unparseable ts"),
        (b'{"principal": "p", "input": [1, 2, 3]}', "missing ts"),
        (b'{"ts": 1, "principal": "p", "input": [1, 2]}', "wrong feature count: 2, the model takes 3"),
        (b'{"ts": 1, "principal": "p", "model": "other", "input": [1, 2, 3]}', "unknown model 'other'"),
        (b'{"ts": 1, "principal": "p", "input": {"prompt": "hi"}}', "takes tabular features, not text"),
        (b'{"ts": 1, "principal": "p", "input": {"foo": 1}}', "none of features, prompt"),
        (b'{"ts": 1, "principal": "p", "input": [[1, 2, 3], [1, 2]]}', "different lengths"),
        (b'{"ts": 1, "principal": 7, "input": [1, 2, 3]}', "Expected `str | null`, got `int`"),
        (b"[1, 2, 3]", "invalid record"),
    ],
)
def test_rejects_are_located(raw: bytes, reason: str) -> None:
    assert reason in rejected(TrafficParser({"credit": CREDIT}, "bad.jsonl"), raw)


def test_nan_from_a_writer_is_rejected() -> None:
    # msgspec (and most JSON writers) encode NaN as null, the form a NaN feature takes on disk
    nan_line = encode(Interaction(id="x", ts=1.0, principal="p", model="credit", features=np.array([1.0, np.nan, 3])))
    assert "numbers only (found null)" in rejected(TrafficParser({"credit": CREDIT}, "t"), nan_line)


def test_nan_probability_is_rejected() -> None:
    raw = line(ts=1, principal="p", input=[1, 2, 3], output={"probabilities": [0.5, None]})
    assert "output.probabilities" in rejected(TrafficParser(None, "t"), raw)


def test_text_model_refuses_features() -> None:
    assert "takes text" in rejected(TrafficParser({"chat": CHAT}, "t"), line(ts=1, principal="p", input=[1.0]))


def test_encoder_round_trips() -> None:
    originals = [
        Interaction(
            id="a",
            ts=1795867200.123,
            principal="k",
            model="credit",
            client=Client(ip="203.0.113.7"),
            features=np.array([0.1, 2.0, -3.5]),
            output=Output(probabilities=np.array([0.25, 0.75]), label=1),
            params={"top_k": 2},
        ),
        Interaction(
            id="b",
            ts=2.0,
            principal="k",
            model="chat",
            messages=({"role": "user", "content": "hi"},),
            output=Output(text="hello", logprobs=[{"token": "hello", "logprob": -0.1}]),
        ),
        Interaction(id="c", ts=3.0, principal="k", model="chat", prompt="tell me"),
    ]
    parser = TrafficParser(None, "rt")
    for orig in originals:
        back = one(parser, encode(orig))
        assert to_record(back) == to_record(orig)
        assert back.ts == orig.ts


def test_the_documented_examples_parse() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "traffic-format.md"
    blocks = re.findall(r"```json\n(.*?)```", docs.read_text(), flags=re.S)
    lines = [ln.encode() for block in blocks for ln in block.splitlines() if ln.strip()]
    assert len(lines) == 7
    assistant = ModelProfile(id="assistant", input_kind=InputKind.TEXT)
    profiles = {"credit": CREDIT, "digits": DIGITS, "assistant": assistant}
    parser = TrafficParser(profiles, "traffic-format.md")
    parsed = [i for n, ln in enumerate(lines, start=1) for i in parser.parse(ln, n)]
    assert [i.id for i in parsed] == [
        "req-000123", "req-000124", "req-7#0", "req-7#1", "img-1", "img-2", "chat-1", "chat-2",
    ]  # fmt: skip
    assert parsed[4].features is not None and parsed[5].features is not None
    assert parsed[4].features.tolist() == parsed[5].features.tolist()
    assert parsed[4].ts + 1 == parsed[5].ts + 3600
