"""Leakage in outputs: distinct PII values, secrets, echoes, and records repeated across principals."""

from __future__ import annotations

import msgspec

import llm_chat as chat
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Severity
from querywarden.detectors.llm_leakage import OutputLeakageDetector

PROFILE = ModelProfile(id="assistant", input_kind=InputKind.TEXT, output_kind="text")


def test_many_customers_data_to_one_caller() -> None:
    det = OutputLeakageDetector(profile=PROFILE, min_distinct_pii=6, high_distinct_pii=20)
    levels = [(i, s.severity) for i, it in enumerate(chat.leaking("l", 15), 1) for s in det.update(it)]
    # each answer carries an email and a phone: 2 values per answer
    assert levels == [(1, Severity.LOW), (3, Severity.MEDIUM), (10, Severity.HIGH)]


def test_echoed_and_own_details_do_not_count() -> None:
    det = OutputLeakageDetector(profile=PROFILE)
    card = "4111 1111 1111 1111"
    echo = [
        chat.interaction(f"e{i}", float(i), "p", f"is {card} blocked?", f"Card {card} is active.") for i in range(9)
    ]
    assert not [s for it in echo for s in det.update(it)]
    own = [s for it in chat.hard_negatives(1) for s in det.update(it)]
    assert own and all(s.severity == Severity.LOW and s.principal == "self-pii" for s in own)


def test_one_secret_is_medium() -> None:
    det = OutputLeakageDetector(profile=PROFILE)
    it = chat.interaction("s", 1.0, "p", "what's the config?", "Use key AKIAIOSFODNN7EXAMPLE for the bucket.")
    [signal] = det.update(it)
    assert signal.severity == Severity.MEDIUM and signal.evidence["secrets"] == 1


def test_same_record_to_two_principals_links_them() -> None:
    det = OutputLeakageDetector(profile=PROFILE)
    record = "Rosa Keller, rosa.keller@example.com, IBAN GB82 WEST 1234 5698 7654 32, lives at 12 High Street."
    a = det.update(chat.interaction("a", 1.0, "key-a", "tell me about Rosa", record))
    b = det.update(chat.interaction("b", 2.0, "key-b", "who is Rosa Keller?", "Here you go: " + record))
    assert a and not a[0].related
    assert b and b[0].related == ("key-a",) and b[0].link_weight > 0
    assert det.stored_spans() > 0


def test_a_merge_pools_what_the_keys_received_so_the_actor_crosses_on_its_next_answer() -> None:
    det = OutputLeakageDetector(profile=PROFILE, min_distinct_pii=6, high_distinct_pii=20)
    answers = list(chat.leaking("x", 6))  # two values an answer
    keys = [msgspec.structs.replace(it, principal=f"k{i % 3}") for i, it in enumerate(answers[:3])]
    quiet = [s for it in keys for s in det.update(it)]
    assert not [s for s in quiet if s.severity >= Severity.MEDIUM]  # two values a key
    det.merge("ring", ("k0", "k1", "k2"))
    signals = det.update(msgspec.structs.replace(answers[3], principal="k0", actor="ring"))
    [crossing] = [s for s in signals if s.evidence["counted_on"] == "actor"]
    assert crossing.severity == Severity.MEDIUM and crossing.evidence["distinct_pii_values"] == 8
