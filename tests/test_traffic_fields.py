"""Field checks of the traffic record, called directly (the parser's tests cover them in context)."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from querywarden.core.records import InputKind
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


def test_timestamps_without_offset_are_utc_and_epoch_text_is_accepted() -> None:
    assert parse_ts("2026-11-28T12:00:00") == parse_ts("2026-11-28T12:00:00Z") == 1_795_867_200.0
    assert parse_ts("1795867200.5") == 1_795_867_200.5
    assert parse_ts(12.0) == 12.0


@pytest.mark.parametrize("value", ["yesterday", "-5", -1.0, float("inf"), None])
def test_bad_timestamps_are_rejected_with_the_value(value: object) -> None:
    with pytest.raises(Reject, match="ts"):
        parse_ts(value)  # type: ignore[arg-type]


def test_nested_image_features_are_flattened_for_an_image_model() -> None:
    image = Expect(kind=InputKind.IMAGE, dim=4, shape=(2, 2))
    one = parse_inputs(WireInput(features=[[1, 2], [3, 4]]), image)
    assert not one.batched
    assert one.items[0][0] is not None
    np.testing.assert_array_equal(one.items[0][0], [1.0, 2.0, 3.0, 4.0])
    batch = parse_inputs(WireInput(features=[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]), image)
    assert batch.batched
    assert len(batch.items) == 2


def test_a_text_model_refuses_features_and_a_feature_model_refuses_text() -> None:
    with pytest.raises(Reject, match="takes text"):
        parse_inputs([1.0, 2.0], Expect(kind=InputKind.TEXT, dim=None, shape=None))
    with pytest.raises(Reject, match="not text"):
        parse_inputs(WireInput(prompt="hi"), Expect(kind=InputKind.TABULAR, dim=2, shape=None))


def test_chat_content_parts_become_text() -> None:
    wire = msgspec.convert({"messages": [{"content": [{"type": "text", "text": "a"}, "b"]}]}, WireInput)
    items = parse_inputs(wire, None).items
    assert items[0][2] == ({"role": "user", "content": "a\nb"},)


def test_batched_outputs_need_one_entry_per_instance() -> None:
    out = parse_outputs(WireOutput(probabilities=[[0.1, 0.9], [0.8, 0.2]], label=[1, 0]), 2, True)
    assert [o.label for o in out if o is not None] == [1, 0]
    with pytest.raises(Reject, match="one row per instance"):
        parse_outputs(WireOutput(probabilities=[[0.1, 0.9]]), 2, True)
    with pytest.raises(Reject, match="label must be an integer or text"):
        parse_outputs(WireOutput(label=True), 1, False)


def test_fast_vector_refuses_an_empty_list() -> None:
    with pytest.raises(Reject, match=r"output\.scores is empty"):
        fast_vector([], "output.scores")
