"""Online template mining: prompts become templates with typed slots.

Enumeration attacks on an assistant ("What did Alice Moreau spend on 2026-03-02?", then
Bob, then Carol...) keep the words of a question and change its entities. Mining the
template of every prompt turns that into something countable: one template, many distinct
slot values. The miner follows the idea of Drain (He et al., 2017), adapted to prompts:

1. tokens that look like entities (``tokens.slot_type``) become typed slots up front;
2. prompts are grouped by token count and first token;
3. inside a group a prompt joins the most similar template (share of positions that agree,
   at least ``similarity``); positions where it differs from a template's constant word
   become a ``<*>`` wildcard slot, so lower-cased names or free words still end up as slots.

Drain itself (the ``drain3`` package) is built for log lines and keeps a persistence layer
and masking config per instance; this miner is a small pure class whose state pickles into
a detector snapshot and whose memory is capped (``max_groups`` groups of ``max_per_group``
templates, least recently used evicted).

A template's ``id`` is a 64-bit hash of the masked prompt that created it. It stays the same
when later prompts widen the template, so it can serve as a global fingerprint that ties
together the principals who fill the same template.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from querywarden.text.tokens import STOPWORDS, TERM, slot_type, tokenize

WILDCARD = "<*>"
_SENTENCE_END = frozenset(".!?\n")


def _slot(kind: str) -> str:
    return f"<{kind}>"


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """Where one prompt landed: its template and the values it put in the slots."""

    template_id: int
    template: str
    slots: tuple[tuple[str, str], ...]
    """(type, value) per slot with a value worth counting; ``TERM`` marks a wildcard word."""
    created: bool


class _Template:
    __slots__ = ("id", "size", "tokens")

    def __init__(self, tokens: list[str], template_id: int) -> None:
        self.tokens = tokens
        self.id = template_id
        self.size = 1


def template_hash(masked: list[str]) -> int:
    digest = hashlib.blake2b(" ".join(masked).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # fits a signed 64-bit integer


def mask(text: str, max_tokens: int) -> tuple[list[str], list[str]]:
    """The masked tokens (slots typed, words lower-cased) and the original tokens."""
    raw = tokenize(text)[:max_tokens]
    masked: list[str] = []
    start = True
    for tok in raw:
        kind = slot_type(tok, sentence_start=start)
        masked.append(_slot(kind) if kind else tok.lower())
        start = tok in _SENTENCE_END or tok.endswith((".", "!", "?", ":"))  # "Agent: Of course" starts anew
    return masked, raw


class TemplateMiner:
    """Group prompts into templates; bounded, deterministic and picklable."""

    def __init__(
        self, *, similarity: float = 0.5, max_groups: int = 4096, max_per_group: int = 16, max_tokens: int = 48
    ) -> None:
        if not 0.0 < similarity <= 1.0 or max_groups < 1 or max_per_group < 1 or max_tokens < 1:
            raise ValueError("template miner: 0 < similarity <= 1 and positive caps are required")
        self.similarity = similarity
        self.max_groups = max_groups
        self.max_per_group = max_per_group
        self.max_tokens = max_tokens
        self._groups: OrderedDict[tuple[int, str], list[_Template]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(g) for g in self._groups.values())

    def add(self, text: str) -> TemplateMatch | None:
        """Mine one prompt. None for an empty prompt."""
        masked, raw = mask(text, self.max_tokens)
        if not masked:
            return None
        key = (len(masked), masked[0])
        groups = self._groups
        group = groups.get(key)
        if group is None:
            group = []
            groups[key] = group
            if len(groups) > self.max_groups:
                groups.popitem(last=False)
        else:
            groups.move_to_end(key)
        best, best_sim = self._best(group, masked)
        created = best is None
        if best is None:
            best = _Template(list(masked), template_hash(masked))
            group.append(best)
            if len(group) > self.max_per_group:
                group.pop(0)
        else:
            best.size += 1
            tokens = best.tokens
            for i, (have, got) in enumerate(zip(tokens, masked, strict=True)):
                if have != got and have[0] != "<":
                    tokens[i] = WILDCARD
            group.remove(best)
            group.append(best)  # most recently used last: eviction takes the front
        del best_sim
        slots: list[tuple[str, str]] = []
        for have, got, word in zip(best.tokens, masked, raw, strict=True):
            if have[0] != "<" or len(have) < 3:
                continue
            if got[0] == "<" and len(got) > 2:
                slots.append((got[1:-1], word.lower().strip(".,:;!?'\"")))
            elif word[0].isalnum() and got not in STOPWORDS:
                slots.append((TERM, got))
        return TemplateMatch(best.id, " ".join(best.tokens), tuple(slots), created)

    def _best(self, group: list[_Template], masked: list[str]) -> tuple[_Template | None, float]:
        best: _Template | None = None
        best_sim = self.similarity
        n = len(masked)
        for tpl in group:
            agree = sum(1 for a, b in zip(tpl.tokens, masked, strict=True) if a in (b, WILDCARD))
            sim = agree / n
            if sim >= best_sim and (best is None or sim > best_sim):
                best, best_sim = tpl, sim
        return best, best_sim
