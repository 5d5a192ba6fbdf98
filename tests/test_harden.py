"""Output hardening on real classifier outputs: each mode degrades what an attacker learns
while the top-1 answer a benign caller needs stays right."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from querywarden.errors import PolicyError
from querywarden.gateway.enforcement.harden import (
    HardenSpec,
    harden_llm_request,
    harden_probabilities,
    reverse_sigmoid,
    strip_llm_logprobs,
)


@pytest.fixture(scope="module")
def outputs() -> np.ndarray:
    x, y = make_classification(n_samples=800, n_features=10, n_informative=6, n_classes=4, random_state=3)
    model = LogisticRegression(max_iter=500).fit(x[:400], y[:400])
    return np.asarray(model.predict_proba(x[400:]))


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_default_is_top1_rounded_to_one_decimal(outputs: np.ndarray) -> None:
    hard = harden_probabilities(outputs, HardenSpec.parse({}), rng())
    assert ((hard > 0).sum(axis=1) == 1).all()
    assert (hard.argmax(1) == outputs.argmax(1)).all()
    assert np.allclose(hard.max(1), np.round(outputs.max(1), 1))


def test_round_keeps_k_decimals(outputs: np.ndarray) -> None:
    hard = harden_probabilities(outputs, HardenSpec.parse({"round": 2}), rng())
    assert np.allclose(hard * 100, np.round(hard * 100)) and not np.allclose(hard, outputs)
    assert np.abs(hard - np.round(outputs, 2)).max() <= 0.01 + 1e-12
    assert (hard.argmax(1) == outputs.argmax(1)).all()


def test_rounding_never_ties_the_top_class() -> None:
    hard = harden_probabilities(np.array([0.47, 0.53]), HardenSpec.parse({"round": 1}), rng())
    assert hard.tolist() == [0.5, 0.6]


def test_top_k_zeroes_all_but_the_k_most_likely(outputs: np.ndarray) -> None:
    hard = harden_probabilities(outputs, HardenSpec.parse({"top_k": 2}), rng())
    assert ((hard > 0).sum(axis=1) == 2).all()
    top2 = np.sort(outputs, axis=1)[:, -2:]
    assert np.allclose(np.sort(hard, axis=1)[:, -2:], top2)


def test_label_only_is_one_hot_on_the_top_class(outputs: np.ndarray) -> None:
    hard = harden_probabilities(outputs, HardenSpec.parse({"label_only": True}), rng())
    assert np.array_equal(hard, np.eye(outputs.shape[1])[outputs.argmax(1)])


def test_calibrated_noise_keeps_the_answer_and_hides_the_confidences(outputs: np.ndarray) -> None:
    hard = harden_probabilities(outputs, HardenSpec.parse({"noise": 0.5}), rng())
    assert (hard.argmax(1) == outputs.argmax(1)).all()
    assert np.allclose(hard.sum(1), 1.0)
    assert np.abs(hard - outputs).mean() > 0.05
    again = harden_probabilities(outputs, HardenSpec.parse({"noise": 0.5}), rng())
    assert np.array_equal(hard, again), "a seeded generator reproduces the noise"


def test_reverse_sigmoid_perturbs_confident_outputs_most(outputs: np.ndarray) -> None:
    hard = harden_probabilities(outputs, HardenSpec.parse({"reverse_sigmoid": 0.6, "gamma": 2.0}), rng())
    assert (hard.argmax(1) == outputs.argmax(1)).all() and np.allclose(hard.sum(1), 1.0)
    shift = np.abs(hard - outputs).sum(1)
    confident = outputs.max(1) > np.quantile(outputs.max(1), 0.75)
    unsure = outputs.max(1) < np.quantile(outputs.max(1), 0.25)
    assert shift[confident].mean() > shift[unsure].mean()


def test_reverse_sigmoid_is_the_paper_formula() -> None:
    p = np.array([0.7, 0.2, 0.1])
    y = p - 0.5 * (1 / (1 + np.exp(-np.log(p / (1 - p)))) - 0.5)
    assert np.allclose(reverse_sigmoid(p, 0.5, 1.0), y / y.sum())


def test_a_single_sigmoid_output_is_hardened_as_two_classes() -> None:
    hard = harden_probabilities(np.array([0.83]), HardenSpec.parse({"round": 1}), rng())
    assert hard.tolist() == [0.8]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.001, 1.0), min_size=2, max_size=12),
    st.sampled_from([{"noise": 0.3}, {"reverse_sigmoid": 0.7}, {"top_k": 1}, {"round": 1, "top_k": 3}]),
)
def test_hardening_never_changes_the_top_class(raw: list[float], params: dict[str, object]) -> None:
    p = np.asarray(raw) / sum(raw)
    hard = harden_probabilities(p, HardenSpec.parse(params), rng())
    assert hard.shape == p.shape and np.isfinite(hard).all() and (hard >= 0).all()
    # classes tied to within float rounding (0.4 vs 0.39999999999999997) are the same answer
    assert p[int(hard.argmax())] >= p.max() - 1e-12


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rounding": 2}, "allowed: round, top_k"),
        ({"top_k": 0}, "top_k must be an integer >= 1"),
        ({"noise": -1}, "noise must be a positive number"),
        ({"label_only": "yes"}, "label_only must be true or false"),
    ],
)
def test_bad_parameters_are_policy_errors_naming_the_allowed_ones(params: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        HardenSpec.parse(params, source="policy.toml")


def test_llm_chat_request_loses_logprobs_bias_and_echo() -> None:
    body = {"messages": [], "logprobs": True, "top_logprobs": 20, "logit_bias": {"1": 5}, "echo": True, "n": 2}
    assert harden_llm_request(body, HardenSpec.parse({}))
    assert body == {"messages": [], "n": 2}
    assert not harden_llm_request(body, HardenSpec.parse({}))


def test_llm_top_logprobs_is_capped_when_allowed() -> None:
    chat = {"logprobs": True, "top_logprobs": 20}
    legacy = {"logprobs": 5}
    spec = HardenSpec.parse({"top_logprobs": 2})
    assert harden_llm_request(chat, spec) and chat == {"logprobs": True, "top_logprobs": 2}
    assert harden_llm_request(legacy, spec) and legacy == {"logprobs": 2}


def test_llm_response_logprobs_are_stripped() -> None:
    body = {"choices": [{"index": 0, "text": "x", "logprobs": {"tokens": ["x"]}}, {"index": 1, "logprobs": None}]}
    assert strip_llm_logprobs(body) and body["choices"][0]["logprobs"] is None
    assert not strip_llm_logprobs(body)
