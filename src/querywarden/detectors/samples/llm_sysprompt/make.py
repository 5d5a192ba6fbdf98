"""Writes the llm_sysprompt detector's annotated samples (run by hand; output is committed).

positive: 15 customers and ``prompt-thief``, who tries five families of system-prompt
extraction prompts, and whose last answer leaks the system prompt.
negative: 30 customers of a bank assistant (FAQ asked in varied words, their own dates,
retries, a few apps asking for logprobs) plus the hard negatives of tests/llm_chat.py.
The profile declares the system prompt as a protected passage (``system-prompt.txt``):
every answer of both samples is checked against it.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[4] / "tests"))

import llm_chat as chat  # noqa: E402

attack = list(chat.system_probe("prompt-thief", 10, leak=True))
chat.write_jsonl(HERE / "positive.jsonl", chat.benign(21, customers=15, per_customer=20) + attack)
chat.write_jsonl(HERE / "negative.jsonl", chat.benign(22, customers=30, per_customer=20) + chat.hard_negatives(22))
(HERE / "system-prompt.txt").write_text(chat.SYSTEM + "\n")
(HERE / "expect.toml").write_text(
    chat.EXPECT.format(name="llm_sysprompt", principal="prompt-thief", min_severity="medium", within=5).replace(
        'output_kind = "text"\n', 'output_kind = "text"\nprotected_text = "system-prompt.txt"\n', 1
    )
)
