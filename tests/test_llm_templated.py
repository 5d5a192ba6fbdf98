"""Templated enumeration: many entities through one template, per principal, per actor and across keys."""

from __future__ import annotations

import msgspec

import llm_chat as chat
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Severity
from querywarden.detectors.llm_templated import TemplatedEnumerationDetector

PROFILE = ModelProfile(id="assistant", input_kind=InputKind.TEXT, output_kind="text")


def _first(det: TemplatedEnumerationDetector, stream: list, principal: str, floor: Severity) -> int | None:
    for i, it in enumerate(stream, 1):
        if any(s.principal == principal and s.severity >= floor for s in det.update(it)):
            return i
    return None


def test_enumeration_crosses_at_min_distinct_and_high_later() -> None:
    det = TemplatedEnumerationDetector(profile=PROFILE, min_distinct=20, high_distinct=50)
    stream = list(chat.enumeration("enum", 80))
    signals = [(i, s) for i, it in enumerate(stream, 1) for s in det.update(it)]
    levels = [(i, s.severity) for i, s in signals]
    assert levels[0] == (20, Severity.MEDIUM)
    assert (50, Severity.HIGH) in levels
    ev = signals[0][1].evidence
    assert ev["distinct_entities"] == 20 and "<NAME>" in ev["template"] and "<DATE>" in ev["template"]


def test_faq_from_many_customers_and_own_dates_stay_quiet() -> None:
    det = TemplatedEnumerationDetector(profile=PROFILE)
    stream = chat.benign(3, customers=200, per_customer=30) + chat.hard_negatives(3)
    signals = [s for it in stream for s in det.update(it)]
    assert not [s for s in signals if s.severity >= Severity.MEDIUM]
    # the same customer asking the same question with the same entity is one value, not many
    repeat = [
        chat.interaction(f"r{i}", float(i), "retry", "what did Alice Moreau spend on 2026-01-02?", "x")
        for i in range(50)
    ]
    assert not [s for it in repeat for s in det.update(it)]


def test_split_over_keys_adds_up_on_the_actor_and_keys_are_linked() -> None:
    det = TemplatedEnumerationDetector(profile=PROFILE, min_distinct=20, link_min=4)
    keys = [f"key{i}" for i in range(4)]
    stream = list(chat.enumeration("x", 40))
    signals = []
    for i, it in enumerate(stream):
        it = msgspec.structs.replace(it, principal=keys[i % 4], actor="ring" if i >= 16 else None)
        signals.extend(det.update(it))
    per_key_medium = [s for s in signals if s.severity >= Severity.MEDIUM and s.evidence["counted_on"] == "principal"]
    actor_medium = [s for s in signals if s.severity >= Severity.MEDIUM and s.evidence["counted_on"] == "actor"]
    assert not per_key_medium  # each key sent only 10 distinct customers
    assert actor_medium and actor_medium[0].evidence["actor"] == "ring"
    linked = {p for s in signals for p in s.related}
    assert linked >= {"key0", "key1", "key2"}
    assert all(s.link_weight > 0 for s in signals if s.related)


def test_calibration_reports_each_principals_peak() -> None:
    det = TemplatedEnumerationDetector(profile=PROFILE)
    for it in list(chat.enumeration("enum", 12)) + chat.benign(4, customers=5, per_customer=10):
        det.update(it)
    cal = det.calibration()["min_distinct"]
    assert max(cal.values) == 12.0 and cal.alarm_above and len(cal.values) == 6


def test_a_support_desk_naming_many_customers_with_different_requests_is_not_enumeration() -> None:
    det = TemplatedEnumerationDetector(profile=PROFILE, min_distinct=20)
    asks = [
        "I lost my card",
        "my debit card is missing",
        "what is my daily transfer limit",
        "are there fees abroad",
        "I was charged twice",
        "how do I reset my password",
        "I need 3 months of statements",
        "savings rate",
    ]
    names = [f"{f} {last}" for f in chat.FIRST for last in chat.LAST[:3]]
    desk = [
        chat.interaction(
            f"d{i}", float(i), "desk", f"Customer: Hello, this is {n}. {asks[i % 8].capitalize()}. Agent:", ""
        )
        for i, n in enumerate(names)
    ]
    assert not [s for it in desk for s in det.update(it) if s.severity >= Severity.MEDIUM]
    same = [
        chat.interaction(f"e{i}", 100.0 + i, "enum", f"Customer: Hello, this is {n}. {asks[0]}. Agent:", "")
        for i, n in enumerate(names)
    ]
    loud = [(i, s.severity) for i, it in enumerate(same, 1) for s in det.update(it) if s.severity >= Severity.MEDIUM]
    assert loud[:1] == [(20, Severity.MEDIUM)]


def test_a_question_that_is_a_minor_share_of_the_principals_requests_does_not_count() -> None:
    """Eight names through one question, but among three times as many other requests: a desk, not a walk."""
    det = TemplatedEnumerationDetector(profile=PROFILE, min_distinct=8, min_share=0.34)
    names = [f"{f} {last}" for f in chat.FIRST for last in chat.LAST[:2]]
    stream = []
    for i, n in enumerate(names[:32]):
        others = [
            "my debit card is missing",
            "what is my daily transfer limit",
            "are there fees abroad",
            "I was charged twice",
            "how do I reset my password",
            "I need 3 months of statements",
        ]
        ask = "I lost my card" if i % 4 == 0 else others[i % len(others)]
        stream.append(chat.interaction(f"d{i}", float(i), "desk", f"Customer: Hello, this is {n}. {ask}. Agent:", ""))
    assert not [s for it in stream for s in det.update(it) if s.severity >= Severity.MEDIUM]
    assert max(det.calibration()["min_distinct"].values) < 4  # only the first prompts, while any share is large
