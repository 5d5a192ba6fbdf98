"""Writes the llm_templated detector's annotated samples (run by hand; output is committed).

positive: 15 customers of a bank assistant and ``enumerator``, who asks one question
template about 40 different customers and dates. negative: 30 customers (FAQ asked in
varied words, their own dates, retries) plus the hard negatives of ``tests/llm_chat.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[4] / "tests"))

import llm_chat as chat  # noqa: E402

chat.write_jsonl(
    HERE / "positive.jsonl", chat.benign(11, customers=15, per_customer=20) + list(chat.enumeration("enumerator", 40))
)
chat.write_jsonl(HERE / "negative.jsonl", chat.benign(12, customers=30, per_customer=20) + chat.hard_negatives(12))
(HERE / "expect.toml").write_text(
    chat.EXPECT.format(name="llm_templated", principal="enumerator", min_severity="medium", within=30)
)
