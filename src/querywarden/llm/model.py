"""A word-level n-gram language model with Witten-Bell interpolated backoff.

This is the demo assistant's "LLM". It is trained in about a second on CPU from the
synthetic corpus (:mod:`querywarden.llm.corpus`), so the test suite and the benchmark can
build a fresh one every run and never download weights. It behaves like a small
fine-tuned model in the ways that matter for attacks on LLM endpoints:

- it **memorises rare sequences**: with an order-10 model (nine words of context), a record seen once in training
  comes back word for word when a prompt repeats the words before it, which is exactly
  what verbatim-prefix and "complete this record" extraction attacks exploit;
- it has a real next-token distribution, so ``logprobs``/``top_logprobs`` expose the
  model's ranking of alternatives and ``logit_bias`` shifts it, as an API would;
- it generalises a little: when a long context was never seen, it backs off to shorter
  ones, so everyday questions get answers stitched from many transcripts.

Witten-Bell interpolation: ``p_k(w) = (c_k(w) + T_k * p_{k-1}(w)) / (N_k + T_k)``, where
``c_k`` counts ``w`` after the last ``k`` words, ``N_k`` is the context's total count and
``T_k`` the number of distinct words seen after it. A context seen once gives its next
word at least half the mass, hence the memorisation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from querywarden.errors import QueryWardenError

_PUNCT = ".,!?;:"
_TRAILING = re.compile(r"^(.*?)([.,!?;:]+)$")
_SPACE_BEFORE_PUNCT = re.compile(r" ([.,!?;:])")

FloatArray = npt.NDArray[np.float64]


class ModelError(QueryWardenError):
    """The model was asked to do something it cannot (bad option values, unfitted model)."""


def tokenize(text: str) -> list[str]:
    """Whitespace words, with trailing punctuation split off so "card." and "card" share a token."""
    tokens: list[str] = []
    for word in text.split():
        m = _TRAILING.match(word)
        if m and m.group(1):
            tokens.append(m.group(1))
            tokens.extend(m.group(2))
        else:
            tokens.append(word)
    return tokens


def detokenize(tokens: Iterable[str]) -> str:
    return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(tokens))


@dataclass(frozen=True, slots=True)
class TokenChoice:
    """One generated token with its log-probability and the most likely alternatives."""

    token: str
    token_id: int
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Generation:
    tokens: tuple[TokenChoice, ...]
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces())

    def pieces(self, *, leading_space: bool = False) -> list[str]:
        """Each token as the text it adds, spaces included: what a stream sends chunk by chunk.

        ``leading_space`` is for continuations of a prompt, where the first word is
        separated from the prompt's last one.
        """
        return [piece(t.token, first=i == 0 and not leading_space) for i, t in enumerate(self.tokens)]


def piece(token: str, *, first: bool = False) -> str:
    """A token's text as it joins what came before: punctuation attaches, words take a space."""
    return token if first or (token and all(ch in _PUNCT for ch in token)) else f" {token}"


class NGramModel:
    """Order-``order`` word n-gram model. ``fit`` once, then ``generate`` as often as needed."""

    def __init__(self, order: int = 10, eos: str = "<eos>") -> None:
        if order < 1:
            raise ModelError(f"order must be at least 1, got {order}")
        self.order = order
        self.eos = eos
        self.vocab: list[str] = []
        self.ids: dict[str, int] = {}
        self._tables: list[dict[tuple[int, ...], dict[int, int]]] = []
        self._unigram: FloatArray = np.zeros(0)
        self._cache: dict[tuple[int, ...], tuple[npt.NDArray[np.int64], FloatArray, float]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _id(self, token: str) -> int:
        tid = self.ids.get(token)
        if tid is None:
            tid = self.ids[token] = len(self.vocab)
            self.vocab.append(token)
        return tid

    def fit(self, documents: Iterable[str]) -> NGramModel:
        """Count every context of length 1..order-1 and its next word, over all documents."""
        self._id(self.eos)
        tables: list[dict[tuple[int, ...], dict[int, int]]] = [{} for _ in range(self.order)]
        for doc in documents:
            seq = [self._id(t) for t in tokenize(doc)]
            for i, w in enumerate(seq):
                for k in range(min(i, self.order - 1) + 1):
                    ctx = tuple(seq[i - k : i])
                    nxt = tables[k].setdefault(ctx, {})
                    nxt[w] = nxt.get(w, 0) + 1
        self._tables = tables
        uni = np.zeros(len(self.vocab), dtype=np.float64)
        for w, c in tables[0].get((), {}).items():
            uni[w] = c
        # add-one under the unigram so every word (and logit_bias on any id) has some mass
        self._unigram = (uni + 1.0) / (uni.sum() + len(uni))
        self._cache.clear()
        return self

    def _level(self, ctx: tuple[int, ...]) -> tuple[npt.NDArray[np.int64], FloatArray, float] | None:
        hit = self._cache.get(ctx)
        if hit is None:
            counts = self._tables[len(ctx)].get(ctx)
            if counts is None:
                return None
            ids = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            cs = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            total, types = float(cs.sum()), float(len(cs))
            hit = (ids, cs / (total + types), types / (total + types))
            if len(self._cache) < 200_000:
                self._cache[ctx] = hit
        return hit

    def distribution(self, context: Sequence[int]) -> FloatArray:
        """The next-word probabilities after ``context`` (ids), over the whole vocabulary."""
        if not self._tables:
            raise ModelError("the model is not fitted")
        p = self._unigram.copy()
        tail = tuple(context[-(self.order - 1) :]) if self.order > 1 else ()
        for k in range(1, len(tail) + 1):
            level = self._level(tail[len(tail) - k :])
            if level is None:
                break  # a longer context containing an unseen one is unseen too
            ids, share, backoff = level
            p *= backoff
            p[ids] += share
        return p

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; words never seen in training get no id and are dropped."""
        return [tid for t in tokenize(text) if (tid := self.ids.get(t)) is not None]

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 40,
        temperature: float = 0.0,
        logit_bias: Mapping[int, float] | None = None,
        top_logprobs: int = 0,
        stop: Sequence[str] = (),
        rng: np.random.Generator | None = None,
    ) -> Generation:
        """Continue ``prompt``. ``temperature`` 0 is greedy; ``logit_bias`` adds to the log-odds
        of token ids, as OpenAI's API does (values in [-100, 100])."""
        if max_tokens < 1:
            raise ModelError(f"max_tokens must be at least 1, got {max_tokens}")
        if temperature < 0:
            raise ModelError(f"temperature must be >= 0, got {temperature}")
        bias = self._bias(logit_bias or {})
        rng = rng or np.random.default_rng(0)
        context = self.encode(prompt)
        prompt_tokens = len(tokenize(prompt))
        out: list[TokenChoice] = []
        stop_ids = {self.ids[s] for s in stop if s in self.ids}
        finish = "length"
        for _ in range(max_tokens):
            logp = np.log(self.distribution(context))
            if bias is not None:
                logp = logp + bias
                logp -= _logsumexp(logp)
            if temperature == 0:
                tid = int(np.argmax(logp))
            else:
                scaled = logp / temperature
                probs = np.exp(scaled - _logsumexp(scaled))
                tid = int(rng.choice(len(probs), p=probs))
            if tid == 0 or tid in stop_ids:  # id 0 is EOS
                finish = "stop"
                break
            top: tuple[tuple[str, float], ...] = ()
            if top_logprobs > 0:
                best = np.argpartition(-logp, min(top_logprobs, len(logp) - 1))[:top_logprobs]
                best = best[np.argsort(-logp[best])]
                top = tuple((self.vocab[int(i)], float(logp[i])) for i in best)
            out.append(TokenChoice(self.vocab[tid], tid, float(logp[tid]), top))
            context.append(tid)
        return Generation(tuple(out), finish, prompt_tokens)

    def _bias(self, logit_bias: Mapping[int, float]) -> FloatArray | None:
        if not logit_bias:
            return None
        vec = np.zeros(self.vocab_size, dtype=np.float64)
        for tid, value in logit_bias.items():
            if not 0 <= tid < self.vocab_size:
                raise ModelError(f"logit_bias names token id {tid}; the vocabulary has {self.vocab_size} tokens")
            if not -100 <= value <= 100 or math.isnan(value):
                raise ModelError(f"logit_bias for token {tid} must be in [-100, 100], got {value}")
            vec[tid] = value
        return vec


def _logsumexp(x: FloatArray) -> float:
    m = float(np.max(x))
    return m + math.log(float(np.exp(x - m).sum()))
