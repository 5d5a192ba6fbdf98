"""Templated enumeration: many entities through one template, per principal, per actor and across keys."""

from __future__ import annotations

import collections
import random

import msgspec
import pytest

import llm_chat as chat
from querywarden.core.engine import DetectorSpec, Engine
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Severity
from querywarden.detectors.llm_templated import TemplatedEnumerationDetector
from querywarden.plugins import load_detectors

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


# -- split over keys: walkers linked, pooled at the merge --------------------------------------
NAMES = [f"{f} {last}" for last in chat.LAST for f in chat.FIRST]


def _readback(name: str) -> str:
    return f"Customer: Hi, it's {name} here, please confirm my payout details. Agent: For the record, {name}, your new"


def _largest(name: str) -> str:
    return f"What was the largest transaction of customer {name} last month?"


def _split(keys: int, n: int, *, template=_readback, shuffled: bool = False, seed: int = 0) -> list:
    rng = random.Random(seed)
    names = NAMES[:]
    rng.shuffle(names)
    out = []
    for i, name in enumerate(names[:n]):
        key = f"key{rng.randrange(keys) if shuffled else i % keys:02d}"
        out.append(chat.interaction(f"s{i}", chat.T0 + 100 + 2.0 * i, key, template(name), "saved."))
    return out


def _engine(**params: object) -> Engine:
    load_detectors()
    return Engine({"assistant": PROFILE}, detectors=[DetectorSpec("llm_templated", {"min_distinct": 8, **params})])


def _run(engine: Engine, stream: list) -> tuple[int | None, list]:
    """The 1-based position of the first medium finding, and every step's signals."""
    first, signals = None, []
    for i, it in enumerate(stream, 1):
        step = engine.process(it)
        signals.extend(step.signals)
        if first is None and any(f.severity >= Severity.MEDIUM for f in step.findings):
            first = i
    return first, signals


@pytest.mark.parametrize(
    ("keys", "template", "shuffled"),
    [(5, _readback, False), (10, _readback, False), (30, _readback, True), (10, _largest, True)],
)
def test_an_enumeration_split_over_keys_ends_in_one_actor_judged_on_every_name(keys, template, shuffled) -> None:
    engine = _engine()
    stream = _split(keys, 120, template=template, shuffled=shuffled)
    first, signals = _run(engine, stream)
    sent = collections.Counter(it.principal for it in stream)
    actors = {engine.actors.actor_of(p) for p, n in sent.items() if n >= 2}
    assert len(actors) == 1 and None not in actors  # every key that named two people joined
    # no key names eight people on its own before the 40th prompt; linked, the group crosses about a round
    # of keys after its eighth name (one key alone, at 20 distinct, would take 20 rounds)
    assert first is not None and first <= keys + 10
    links = [s for s in signals if s.related]
    assert links and all(s.link_weight == 3.0 for s in links)
    position = {it.id: i for i, it in enumerate(stream)}
    for s in links:  # nobody links on a key's first name: a customer names one person too
        assert sum(1 for it in stream[: position[s.interaction_id] + 1] if it.principal == s.principal) >= 2


def test_a_key_links_only_once_link_keys_walk_the_question_together() -> None:
    det = TemplatedEnumerationDetector(profile=PROFILE, min_distinct=8, link_keys=4)
    stream = _split(4, 16)
    linked_at = [i for i, it in enumerate(stream, 1) for s in det.update(it) if s.related]
    assert linked_at[0] == 8  # the fourth key's second name: four walkers
    assert det.calibration()["link_keys"].values == (4.0, 4.0, 4.0, 4.0)


def test_the_linking_signal_is_medium_once_the_walkers_together_named_min_distinct() -> None:
    det = TemplatedEnumerationDetector(profile=PROFILE, min_distinct=8)
    signals = [s for it in _split(10, 20) for s in det.update(it)]
    medium = [s for s in signals if s.severity >= Severity.MEDIUM]
    assert medium and medium[0].evidence["counted_on"] == "walkers"
    assert medium[0].evidence["distinct_entities_of_walkers"] >= 8 and medium[0].related


def test_a_merge_pools_the_keys_so_the_actor_crosses_on_its_next_prompt() -> None:
    det = TemplatedEnumerationDetector(profile=PROFILE, min_distinct=8, link_keys=100)
    quiet = [s for it in _split(4, 8) for s in det.update(it)]
    assert not [s for s in quiet if s.severity >= Severity.MEDIUM or s.related]  # two names a key
    det.merge("ring", ("key00", "key01", "key02", "key03"))
    [next_prompt] = _split(4, 9)[8:]
    signals = det.update(msgspec.structs.replace(next_prompt, actor="ring"))
    [crossing] = [s for s in signals if s.severity >= Severity.MEDIUM]
    assert crossing.evidence["counted_on"] == "actor" and crossing.evidence["distinct_entities"] == 9
    # a later merge of that actor into another moves its counts whole, and its keys are not added twice
    det.merge("syndicate", ("ring",))
    again = det.update(msgspec.structs.replace(_split(4, 10)[9], actor="syndicate"))
    assert [s.evidence["prompts_with_template"] for s in again if s.evidence.get("counted_on") == "actor"] == [10]


# -- the benign twins stay apart ---------------------------------------------------------------
def test_customers_behind_one_nat_asking_about_their_own_payout_are_never_linked() -> None:
    engine = _engine()
    rng = random.Random(1)
    stream = []
    for c, name in enumerate(NAMES[:300]):
        ts = chat.T0 + rng.uniform(0, 600)  # three hundred customers in ten minutes, one office
        for k in range(rng.randint(1, 3)):
            prompt = f"Customer: Hello, this is {name}. I need to update my payout details. Agent:"
            stream.append(chat.interaction(f"c{c}-{k}", ts + 20 * k, f"cust{c}", prompt, "Of course."))
    stream.sort(key=lambda it: it.ts)
    first, signals = _run(engine, stream)
    assert first is None and not [s for s in signals if s.related] and not engine.actors.actors()


def test_support_desks_drafting_replies_together_are_never_linked() -> None:
    engine = _engine()
    rng = random.Random(2)
    asks = [ask for group in chat.FAQ for ask in group]
    stream = []
    for d in range(40):  # forty desk integrations at once, each drafting for many customers
        for k in range(30):
            name, ask = rng.choice(NAMES), rng.choice(asks)
            prompt = f"Customer: Hello, this is {name}. {ask.capitalize()}. Agent:"
            stream.append(chat.interaction(f"d{d}-{k}", chat.T0 + rng.uniform(0, 1800), f"desk{d}", prompt, "."))
    stream.sort(key=lambda it: it.ts)
    first, _ = _run(engine, stream)
    assert first is None and not engine.actors.actors()


def test_customers_asking_about_several_of_their_own_charges_are_never_linked() -> None:
    """Three hundred customers in half an hour, 40% of their prompts about a payment they do not recognise:
    many walk that question for a prompt or two, but the merchants they name are named by others too."""
    engine = _engine()
    rng = random.Random(3)
    merchants = [f"{last} {kind}" for last in chat.LAST for kind in ("Ltd", "PLC")]  # one template, shared names
    stream = []
    for c in range(300):
        ts = chat.T0 + rng.uniform(0, 1800)
        for k in range(rng.randint(3, 8)):
            roll = rng.random()
            if roll < 0.4:
                prompt = f"I don't recognise a payment to {rng.choice(merchants)} on 2026-0{rng.randint(1, 9)}-1{k}"
            else:
                prompt = rng.choice(rng.choice(chat.FAQ))
            stream.append(chat.interaction(f"m{c}-{k}", ts + 30 * k, f"cust{c}", prompt, "."))
    stream.sort(key=lambda it: it.ts)
    first, _ = _run(engine, stream)
    assert first is None and not engine.actors.actors()
