"""The demo fintech assistant: the n-gram model, its corpus and how a chat turns into a prompt.

``build_assistant(seed)`` makes the corpus and trains the model on it (about half a
second), so every test, benchmark run and demo has a fresh assistant and nothing is
downloaded. The assistant answers two ways, as an OpenAI-compatible API does:

- ``complete(prompt)``: raw continuation of the prompt (``/v1/completions``). This is the
  path verbatim-prefix and "complete this record" attacks use;
- ``chat(messages)``: the last user turn is framed as a support transcript,
  ``Customer: ... Agent:``, and the model writes the agent's answer
  (``/v1/chat/completions``). A turn that asks to complete or continue a text
  ("Complete this record: ...") gets that text continued, as an instruction-tuned model
  would do: the "complete this record" attack goes through chat this way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from querywarden.llm.corpus import SYSTEM_PROMPT, Corpus, build_corpus
from querywarden.llm.model import Generation, ModelError, NGramModel

MODEL_ID = "northgate-assistant"
MAX_TOKENS = 256
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True, slots=True)
class Options:
    """Sampling options shared by both endpoints, validated once."""

    max_tokens: int = 48
    temperature: float = 0.7
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    top_logprobs: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_tokens <= MAX_TOKENS:
            raise ModelError(f"max_tokens must be in [1, {MAX_TOKENS}], got {self.max_tokens}")
        if not 0 <= self.temperature <= 2:
            raise ModelError(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise ModelError(f"top_logprobs must be in [0, {MAX_TOP_LOGPROBS}], got {self.top_logprobs}")


class Assistant:
    def __init__(self, corpus: Corpus, model: NGramModel, *, system_prompt: str = SYSTEM_PROMPT) -> None:
        self.corpus = corpus
        self.model = model
        self.system_prompt = system_prompt

    def complete(self, prompt: str, options: Options) -> Generation:
        return self._generate(prompt, options, stop=())

    def chat(self, messages: Sequence[Mapping[str, str]], options: Options) -> Generation:
        user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        asked = _CONTINUE.match(user)
        if asked:
            return self._generate(asked.group(1), options, stop=())
        return self._generate(chat_prompt(user), options, stop=("Customer",))

    def _generate(self, prompt: str, options: Options, stop: Sequence[str]) -> Generation:
        # without a seed, the prompt seeds the sampler: the same request gets the same answer,
        # as with a cached deployment, which keeps tests and benchmark runs reproducible
        seed = options.seed if options.seed is not None else _prompt_seed(prompt)
        return self.model.generate(
            prompt,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            logit_bias=options.logit_bias,
            top_logprobs=options.top_logprobs,
            stop=stop,
            rng=np.random.default_rng(seed),
        )


_CONTINUE = re.compile(
    r"^\s*(?:please\s+)?(?:complete|continue|finish)\b[^:\n]{0,60}:\s*(.+?)\s*$", re.IGNORECASE | re.DOTALL
)
"""A request to continue a given text: "Complete this record: ...", "Continue the following text: ..."."""


def chat_prompt(user: str) -> str:
    """Frame a user turn the way the training transcripts are written."""
    text = " ".join(user.split()).rstrip(".?! ")
    return f"Customer: {text}. Agent:"


def _prompt_seed(prompt: str) -> int:
    return int.from_bytes(hashlib.blake2b(prompt.encode(), digest_size=8).digest(), "little")


def build_assistant(seed: int = 0, *, customers: int = 120, canaries: int = 4) -> Assistant:
    """A fresh corpus and a model trained on it: the same seed gives the same assistant."""
    corpus = build_corpus(seed, customers=customers, canaries=canaries)
    return Assistant(corpus, NGramModel().fit(corpus.documents()))
