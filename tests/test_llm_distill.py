"""Distillation campaigns: reasoning-cue topic sweeps, per key, per actor, and wrapper links."""

from __future__ import annotations

import llm_chat as chat
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Severity
from querywarden.detectors.llm_distill import DistillationDetector, cot_cue, topic_key

PROFILE = ModelProfile(id="assistant", input_kind=InputKind.TEXT, output_kind="text")


def test_cue_and_topic() -> None:
    text = "Explain the history of CRISPR. Think step by step and show your reasoning before the final answer."
    assert cot_cue(text) == "think step by step and show your reasoning before the final answer"
    assert cot_cue("what are the fees") is None
    assert topic_key(text, cot_cue(text)) == topic_key(text + " ", cot_cue(text))
    other = "Explain the history of volcanoes. Think step by step and show your reasoning before the final answer."
    assert topic_key(text, cot_cue(text)) != topic_key(other, cot_cue(other))


def test_sweep_crosses_and_a_student_does_not() -> None:
    det = DistillationDetector(profile=PROFILE, min_cot_topics=40)
    student = [s for it in chat.hard_negatives(2) for s in det.update(it)]
    assert not [s for s in student if s.severity >= Severity.MEDIUM]
    levels = [(i, s.severity) for i, it in enumerate(chat.distillation(["d"], 120), 1) for s in det.update(it)]
    assert levels and levels[0][1] == Severity.MEDIUM and 40 <= levels[0][0] <= 80


def test_keys_of_a_campaign_are_linked_then_counted_together() -> None:
    det = DistillationDetector(profile=PROFILE, min_cot_topics=40, link_min=8)
    keys = [f"k{i}" for i in range(6)]
    unlinked = [s for it in chat.distillation(keys, 180) for s in det.update(it)]
    assert not [s for s in unlinked if s.severity >= Severity.MEDIUM]  # 30 prompts a key
    assert {p for s in unlinked for p in s.related} >= set(keys[:5])
    linked = [s for it in chat.distillation(keys, 90, seed=4, actor="farm") for s in det.update(it)]
    actor = [s for s in linked if s.severity >= Severity.MEDIUM]
    assert actor and actor[0].evidence["counted_on"] == "actor"


def test_a_sweep_split_over_keys_is_high_and_one_heavy_user_is_medium() -> None:
    det = DistillationDetector(profile=PROFILE, min_cot_topics=20, campaign_keys=2)
    alone = [s for it in chat.distillation(["solo"], 60) for s in det.update(it)]
    assert max(s.severity for s in alone) is Severity.MEDIUM  # one key, many topics: a heavy user
    det = DistillationDetector(profile=PROFILE, min_cot_topics=20, campaign_keys=2)
    farm = [s for it in chat.distillation(["k1", "k2", "k3"], 60, actor="farm") for s in det.update(it)]
    crossed = [s for s in farm if s.severity >= Severity.MEDIUM]
    assert crossed[0].severity is Severity.HIGH and crossed[0].evidence["counted_on"] == "actor"
    assert crossed[0].evidence["keys"] == 3


def test_link_min_is_calibrated_on_how_often_one_customer_reuses_a_reasoning_sentence() -> None:
    det = DistillationDetector(profile=PROFILE)
    for i in range(3):
        det.update(
            chat.interaction(f"s{i}", float(i), "student", f"Why is the sky blue {i}? Explain step by step.", ".")
        )
    assert det.calibration()["link_min"].values == (3.0,)


def test_a_merge_pools_the_keys_at_once_so_the_actor_crosses_on_its_next_prompt() -> None:
    det = DistillationDetector(profile=PROFILE, min_cot_topics=10, campaign_keys=2)
    before = [s for it in chat.distillation(["k1", "k2"], 16) for s in det.update(it)]
    assert not [s for s in before if s.severity >= Severity.MEDIUM]  # eight topics a key
    det.merge("farm", ("k1", "k2"))
    [signal] = [
        s for it in chat.distillation(["k1"], 1, seed=9, actor="farm") for s in det.update(it) if s.evidence.get("keys")
    ]
    assert signal.severity is Severity.HIGH and signal.evidence["keys"] == 2
    assert signal.evidence["cot_topics"] >= 10
