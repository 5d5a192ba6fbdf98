"""Writes the llm_extraction detector's annotated samples (run by hand; output is committed).

positive: 15 customers and ``diverger``, who sends repeat-forever prompts, repeated words,
special-character runs and "complete this record" prompts.
negative: 30 customers of a bank assistant (FAQ asked in varied words, their own dates,
retries, a few apps asking for logprobs) plus the hard negatives of tests/llm_chat.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[4] / "tests"))

import llm_chat as chat  # noqa: E402

attack = list(chat.divergence("diverger", 16))
chat.write_jsonl(HERE / "positive.jsonl", chat.benign(21, customers=15, per_customer=20) + attack)
chat.write_jsonl(HERE / "negative.jsonl", chat.benign(22, customers=30, per_customer=20) + chat.hard_negatives(22))
(HERE / "expect.toml").write_text(
    chat.EXPECT.format(name="llm_extraction", principal="diverger", min_severity="medium", within=8)
)
