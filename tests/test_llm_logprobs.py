"""Logprob/logit_bias harvesting: distinct bias sets count, a fixed bias does not."""

from __future__ import annotations

import msgspec

import llm_chat as chat
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Severity
from querywarden.detectors.llm_logprobs import LogprobHarvestDetector, bias_key, wants_logprobs

PROFILE = ModelProfile(id="assistant", input_kind=InputKind.TEXT, output_kind="text")


def test_request_parsing() -> None:
    assert wants_logprobs({"logprobs": True, "top_logprobs": 5}) == 5
    assert wants_logprobs({"logprobs": 3}) == 3
    assert wants_logprobs({"logprobs": False}) == 0
    assert bias_key({"1": 100, "2": -5}) == bias_key({"2": -5.0, "1": 100})
    assert bias_key({"1": 100}) != bias_key({"1": 99})
    assert bias_key({}) is None and bias_key("x") is None


def test_sweep_crosses_at_min_bias_sets_then_high() -> None:
    det = LogprobHarvestDetector(profile=PROFILE, min_bias_sets=16, high_bias_sets=64)
    levels = [(i, s.severity) for i, it in enumerate(chat.logit_sweep("h", 100), 1) for s in det.update(it)]
    assert levels == [(16, Severity.MEDIUM), (64, Severity.HIGH)]


def test_fixed_bias_and_logprob_apps_stay_quiet_until_volume_is_exposure() -> None:
    det = LogprobHarvestDetector(profile=PROFILE, logprob_queries=100)
    params = {"logprobs": True, "top_logprobs": 5, "logit_bias": {"50256": -100}}
    stream = [chat.interaction(f"a{i}", float(i), "app", "classify", "x", params=params) for i in range(150)]
    levels = [(i, s.severity) for i, it in enumerate(stream, 1) for s in det.update(it)]
    assert levels == [(100, Severity.LOW)]


def test_split_sweep_adds_up_on_the_actor_and_windows_reset() -> None:
    det = LogprobHarvestDetector(profile=PROFILE, min_bias_sets=16, window=3600.0)
    stream = [
        msgspec.structs.replace(it, principal=f"k{i % 4}", actor="ring")
        for i, it in enumerate(chat.logit_sweep("h", 20))
    ]
    signals = [s for it in stream for s in det.update(it)]
    assert [(s.principal, s.evidence["counted_on"]) for s in signals] == [("k3", "actor")]
    later = [msgspec.structs.replace(it, ts=it.ts + 7200) for it in chat.logit_sweep("h", 15, seed=9)]
    assert not [s for it in later for s in det.update(it)]  # a new window starts from zero


def test_keys_joining_an_actor_bring_their_counts() -> None:
    det = LogprobHarvestDetector(profile=PROFILE, min_bias_sets=16)
    sweep = list(chat.logit_sweep("h", 44))
    before = [msgspec.structs.replace(it, principal=f"k{i % 4}") for i, it in enumerate(sweep[:40])]
    assert not [s for it in before for s in det.update(it)]  # 10 sets a key
    joined = [msgspec.structs.replace(it, principal=f"k{i}", actor="ring") for i, it in enumerate(sweep[40:])]
    signals = [s for it in joined for s in det.update(it)]
    assert [(s.principal, s.evidence["counted_on"], s.evidence["distinct_bias_sets"]) for s in signals] == [
        ("k1", "actor", 22)
    ]


def test_a_merge_pools_the_keys_window_so_the_actor_crosses_on_its_next_request() -> None:
    det = LogprobHarvestDetector(profile=PROFILE, min_bias_sets=16, high_bias_sets=64)
    sweep = list(chat.logit_sweep("x", 20))
    quiet = [
        s for i, it in enumerate(sweep[:15]) for s in det.update(msgspec.structs.replace(it, principal=f"k{i % 3}"))
    ]
    assert not quiet  # five sets a key
    det.merge("ring", ("k0", "k1", "k2"))
    [signal] = det.update(msgspec.structs.replace(sweep[15], principal="k0", actor="ring"))
    assert signal.evidence["counted_on"] == "actor" and signal.evidence["distinct_bias_sets"] == 16
    assert signal.evidence["requests_with_bias"] == 16  # each key's requests counted once
