"""Template mining and slot typing: the same question about different entities is one template."""

from __future__ import annotations

import pickle

import pytest

from llm_chat import SYSTEM, interaction
from querywarden.text.templates import TemplateMiner, mask
from querywarden.text.tokens import AMOUNT, DATE, EMAIL, ID, NAME, NUMBER, slot_type, user_text


@pytest.mark.parametrize(
    ("token", "start", "kind"),
    [
        ("2026-03-02", False, DATE),
        ("03/02/2026", False, DATE),
        ("$120.50", False, AMOUNT),
        ("4521887", False, ID),
        ("acct_00123", False, ID),
        ("42", False, NUMBER),
        ("jo@example.com", False, EMAIL),
        ("Moreau", False, NAME),
        ("Moreau", True, None),
        ("O'Brien", False, NAME),
        ("March", False, DATE),
        ("Julie", False, NAME),
        ("Mayer", False, NAME),
        ("Of", False, None),
        ("Please", False, None),
        ("password", False, None),
    ],
)
def test_slot_types(token: str, start: bool, kind: str | None) -> None:
    assert slot_type(token, sentence_start=start) == kind


def test_one_template_for_many_entities_and_distinct_slot_values() -> None:
    miner = TemplateMiner()
    names = ["Alice Moreau", "Bruno Okafor", "Chloe Tanaka", "Dmitri Silva"]
    matches = [miner.add(f"What did {n} spend on 2026-0{i + 1}-1{i}?") for i, n in enumerate(names)]
    assert all(m is not None for m in matches)
    ids = {m.template_id for m in matches if m}
    assert len(ids) == 1
    assert matches[0] and matches[0].created and matches[1] and not matches[1].created
    last = matches[-1]
    assert last and ("NAME", "dmitri") in last.slots and ("DATE", "2026-04-13") in last.slots


def test_words_that_vary_become_wildcards_and_different_questions_stay_apart() -> None:
    miner = TemplateMiner()
    a = miner.add("show the balance of customer alice please")
    b = miner.add("show the balance of customer bruno please")
    c = miner.add("how do I reset my password")
    assert a and b and c
    assert a.template_id == b.template_id != c.template_id
    assert b.template == "show the balance of customer <*> please"
    assert ("TERM", "bruno") in b.slots


def test_miner_memory_is_capped_and_pickles() -> None:
    miner = TemplateMiner(max_groups=8, max_per_group=2)
    for i in range(500):
        miner.add(" ".join(f"w{i}x{j}" for j in range(1 + i % 20)))
    assert len(miner) <= 8 * 2
    clone = pickle.loads(pickle.dumps(miner))
    m1, m2 = miner.add("what is my balance"), clone.add("what is my balance")
    assert m1 == m2


def test_mask_and_user_text_read_the_user_turn_not_the_system_prompt() -> None:
    masked, raw = mask("Send $20 to Bob on 2026-01-02.", 48)
    assert masked == ["send", "<AMOUNT>", "to", "<NAME>", "on", "<DATE>"]  # a trailing full stop stays on its word
    assert raw[1] == "$20"
    it = interaction("r", 1.0, "p", "hello there", "hi", system=SYSTEM)
    assert user_text(it) == "hello there"
