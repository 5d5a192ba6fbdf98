"""Protocol adapters on real payload shapes: what each reads from requests and answers,
and what hardening changes in place."""

from __future__ import annotations

import numpy as np
import pytest

from querywarden.errors import TrafficError
from querywarden.gateway.adapters.kserve import KServeV2Adapter
from querywarden.gateway.adapters.openai import ChatCompletionsAdapter, CompletionsAdapter
from querywarden.gateway.adapters.predict import JsonPredictAdapter
from querywarden.gateway.enforcement.harden import HardenSpec

RNG = np.random.default_rng(0)
TOP1 = HardenSpec.parse({"top_k": 1})


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [[1, 2, 3], [4, 5, 6]]},
        {"inputs": [[1, 2, 3], [4, 5, 6]]},
        {"inputs": {"x": [[1, 2, 3], [4, 5, 6]]}},  # TF columnar, one input
        [[1, 2, 3], [4, 5, 6]],
    ],
)
def test_predict_reads_every_request_form(body: object) -> None:
    parsed = JsonPredictAdapter().parse_request(body)
    assert [i.features.tolist() for i in parsed.instances] == [[1, 2, 3], [4, 5, 6]]


def test_predict_single_flat_instance() -> None:
    (inst,) = JsonPredictAdapter().parse_request({"features": [0.5, 1.5]}).instances
    assert inst.features.tolist() == [0.5, 1.5]


def test_predict_refuses_non_finite_values() -> None:
    with pytest.raises(TrafficError, match="NaN or infinite"):
        JsonPredictAdapter().parse_request({"instances": [[1e400, 1]]})


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"predictions": [[0.2, 0.8], [0.6, 0.4]]}, [("p", 1), ("p", 0)]),
        ({"probabilities": [[0.2, 0.8], [0.6, 0.4]]}, [("p", 1), ("p", 0)]),
        ({"predictions": [1, 0]}, [("label", 1), ("label", 0)]),
        ({"predictions": [{"probabilities": [0.3, 0.7], "label": "b"}, {"label": "a"}]}, [("p", 1), ("label", "a")]),
        ({"predictions": [[2.5, -1.0], [0.1, 3.0]]}, [("scores", 0), ("scores", 1)]),
    ],
)
def test_predict_reads_every_answer_form(answer: object, expected: list[tuple[str, object]]) -> None:
    outs = JsonPredictAdapter().outputs(answer, 2)
    for out, (kind, value) in zip(outs, expected, strict=True):
        assert out is not None
        if kind == "p":
            assert out.probabilities is not None and int(np.argmax(out.probabilities)) == value
        elif kind == "scores":
            assert out.scores is not None and int(np.argmax(out.scores)) == value
        else:
            assert out.label == value


def test_predict_harden_keeps_labels_and_hardens_nested_probabilities() -> None:
    body = {"predictions": [{"probabilities": [0.3, 0.7], "label": "b"}, [0.6, 0.4]], "model_version": "3"}
    assert JsonPredictAdapter().harden_response(body, TOP1, RNG)
    assert body == {"predictions": [{"probabilities": [0.0, 0.7], "label": "b"}, [0.6, 0.0]], "model_version": "3"}


def test_kserve_nested_data_and_shape_checks() -> None:
    adapter = KServeV2Adapter()
    nested = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]}
    assert [i.features.tolist() for i in adapter.parse_request(nested).instances] == [[1, 2], [3, 4]]
    with pytest.raises(TrafficError, match="shape"):
        adapter.parse_request({"inputs": [{"shape": "2x2", "data": []}]})


def test_kserve_harden_blanks_other_float_outputs() -> None:
    body = {
        "outputs": [
            {"name": "logits", "shape": [1, 2], "datatype": "FP32", "data": [0.1, 2.0]},
            {"name": "probabilities", "shape": [1, 2], "datatype": "FP32", "data": [0.13, 0.87]},
        ]
    }
    assert KServeV2Adapter().harden_response(body, TOP1, RNG)
    assert body["outputs"][1]["data"] == [0.0, 0.87]
    assert body["outputs"][0]["data"] == [] and body["outputs"][0]["shape"] == [0], "logits would leak the scores"


def test_chat_reads_multipart_content_and_params() -> None:
    body = {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}],
        "logprobs": True,
        "top_logprobs": 3,
        "stream": True,
        "user": "ignored",
    }
    parsed = ChatCompletionsAdapter().parse_request(body)
    assert parsed.model == "gpt-x" and parsed.stream
    assert parsed.instances[0].messages == ({"role": "user", "content": "hi"},)
    assert parsed.params == {"logprobs": True, "top_logprobs": 3}


def test_sse_stream_is_reassembled_across_chunk_boundaries() -> None:
    events = b"".join(
        b'data: {"choices": [{"index": 0, "delta": {"content": "%s"}}]}\n\n' % w for w in (b"Hel", b"lo", b"!")
    )
    chunks = [events[:17], events[17:60], events[60:], b"data: [DONE]\n\n"]
    out = ChatCompletionsAdapter().stream_output(chunks)
    assert out is not None and out.text == "Hello!"


def test_completions_batch_with_n_choices_per_prompt() -> None:
    body = {"choices": [{"index": i, "text": t} for i, t in enumerate(["a1", "a2", "b1", "b2"])]}
    outs = CompletionsAdapter().outputs(body, 2)
    assert [o.text for o in outs if o is not None] == ["a1", "b1"]
