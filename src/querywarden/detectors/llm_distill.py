"""Distillation campaigns: harvesting an assistant's answers and reasoning to train a copy.

A distillation campaign sends a broad sweep of questions, usually wrapped in a fixed
instruction that elicits chain-of-thought ("think step by step and show your reasoning"),
and spreads it over many accounts. Two things give it away, and neither can be dropped
without spoiling the copy: the *coverage* keeps growing (every prompt is a new topic, by
design) and the prompts ask for reasoning, not just answers.

Per principal, and per actor, within ``window`` seconds the detector counts distinct
topics (a topic is the first band of a MinHash signature of the prompt's content words,
with the reasoning cue removed, so near-duplicate repeats of one question fall together) among
prompts that elicit chain-of-thought. ``min_cot_topics`` of them (calibrated on benign
chat) raises ``medium``, ``high_cot_topics`` raises ``high``. Coverage without reasoning
cues is exposure: ``min_topics`` distinct topics in a window raise ``low``.

Campaigns rotate keys, so each key stays small. The reasoning wrapper is a fingerprint:
a global index maps each wrapper (the normalised sentence holding the cue) to the
principals that used it at least ``link_min`` times, and the signal names the others in
``related`` with ``link_weight`` (at ``link_min`` uses and every second use after, eight
times at most) so the engine merges the keys into one actor, whose counts then add up: at
the merge the keys' window counts move into the actor (``merge``), and a key seen in an
actor later brings its own.

The response has to fit the threat: hardening strips logprobs, which a text distiller does
not need. So coverage that crosses ``min_cot_topics`` on an actor whose reasoning prompts
came from ``campaign_keys`` or more keys is ``high`` (the default policy blocks the actor's
keys): one customer asking many questions step by step is a heavy user, the same sweep
split over rotated keys is a campaign.

Blind spots: a campaign that varies its wrapper on every prompt (paraphrased cues still
count per principal, but do not link keys); distillation of answers alone, with no
reasoning cue, shows only as coverage (``low``) and volume.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import OrderedDict

from querywarden.core.atlas import EXTRACTION
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal
from querywarden.detectors.llm_common import (
    is_actor,
    joined,
    level,
    merge_into_actor,
    subject_evidence,
    subjects,
)
from querywarden.text.fingerprint import band_keys, minhash
from querywarden.text.tokens import STOPWORDS, user_text, words

_COT = re.compile(
    r"step[- ]by[- ]step|chain[- ]of[- ]thought|\bshow (your|all( of)?( your)?|the) (work|reasoning|steps|thinking)"
    r"|\bexplain your (reasoning|thinking|thought process)|\breason (through|carefully|it out|step)"
    r"|\bthink (carefully|aloud|out loud|it through|through)|\bthought process\b|<think>|\brationale\b"
    r"|\bbefore (giving|you give|the|your) (final )?answer",
    re.IGNORECASE,
)
_COT_WORDS = ("step", "chain", "show", "explain", "reason", "think", "thought", "rationale", "before")
"""Every cue holds one of these; most prompts hold none, and a substring test is cheap."""
_PUNCTUATION = ".,;:!?'\"()[]"
_SENTENCE = re.compile(r"[^.!?\n]*")
_MAX_WRAPPERS = 4096
_MAX_LINKED = 16
_MAX_RELATED = 8
_MAX_LINK_EMITS = 8
_MAX_KEYS = 64


def cot_cue(text: str) -> str | None:
    """The normalised sentence holding a chain-of-thought cue, or None."""
    low = text[:4000].lower()
    if not any(k in low for k in _COT_WORDS):
        return None
    m = _COT.search(text[:4000])
    if m is None:
        return None
    start = max(text.rfind(c, 0, m.start()) for c in ".!?\n:(") + 1
    end_m = _SENTENCE.match(text, m.end())
    end = end_m.end() if end_m else m.end()
    return " ".join(words(text[start:end]))


def topic_key(text: str, cue: str | None) -> int:
    """A topic fingerprint of the content words, reasoning cue removed.

    Prompts with a reasoning cue (the ones that can raise ``medium``) get the first band of
    a MinHash signature, so reworded repeats of one question count once. Others get the
    CRC32 of their sorted content words, about five times cheaper, which only feeds the
    ``low`` coverage count.
    """
    if cue is None:
        bag = {w.strip(_PUNCTUATION) for w in text[:2000].lower().split()} - STOPWORDS
        return zlib.crc32(" ".join(sorted(bag)).encode())
    drop = set(cue.split())
    content = [w for w in words(text[:2000]) if w not in STOPWORDS and w not in drop]
    return band_keys(minhash(" ".join(content), 16), 2)[0]


class _State:
    __slots__ = (
        "actor",
        "cot",
        "cot_topics",
        "keys",
        "level",
        "n",
        "peak_cot",
        "peak_topics",
        "peak_uses",
        "topics",
        "window",
        "wrappers",
    )

    def __init__(self) -> None:
        self.actor: str | None = None
        self.keys: set[str] = set()
        """The keys that sent reasoning prompts in this window (at most 64 kept; on a principal, itself)."""
        self.window = -1
        self.n = 0
        self.cot = 0
        self.topics: set[int] = set()
        self.cot_topics: set[int] = set()
        self.wrappers: dict[int, int] = {}
        self.level = 0
        self.peak_cot = 0
        self.peak_topics = 0
        self.peak_uses = 0


class DistillationDetector(Detector):
    name = "llm_distill"
    technique = EXTRACTION
    description = "topic coverage growth with chain-of-thought elicitation, per principal and across keys"
    needs = frozenset({"text"})

    def __init__(
        self,
        *,
        profile: ModelProfile,
        min_cot_topics: int = 40,
        high_cot_topics: int = 160,
        min_topics: int = 400,
        campaign_keys: int = 2,
        link_min: int = 4,
        link_weight: float = 1.5,
        window: float = 86_400.0,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if (
            min(min_cot_topics, high_cot_topics, min_topics, link_min, campaign_keys) < 1
            or window <= 0
            or link_weight < 0
        ):
            raise ValueError("llm_distill: thresholds must be >= 1, window > 0 and link_weight >= 0")
        self.campaign_keys = campaign_keys
        self.min_cot_topics = min_cot_topics
        self.high_cot_topics = high_cot_topics
        self.min_topics = min_topics
        self.link_min = link_min
        self.link_weight = link_weight
        self.window = window
        self.max_principals = max_principals
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)
        self._wrappers: OrderedDict[int, OrderedDict[str, int]] = OrderedDict()

    def update(self, interaction: Interaction) -> list[Signal]:
        text = user_text(interaction)
        if not text or len(text) < 12:
            return []
        cue = cot_cue(text)
        topic = topic_key(text, cue)
        wrapper = zlib.crc32(cue.encode()) if cue else None
        w = math.floor(interaction.ts / self.window)
        high = max(self.high_cot_topics, self.min_cot_topics + 1)
        signals: list[Signal] = []
        for key in subjects(interaction):
            st = joined(self._states, key, interaction, self._pool)
            if w > st.window:
                st.window, st.n, st.cot, st.level = w, 0, 0, 0
                st.topics.clear()
                st.cot_topics.clear()
                st.wrappers.clear()
                st.keys.clear()
            st.n += 1
            if len(st.topics) <= self.min_topics:
                st.topics.add(topic)
            related: tuple[str, ...] = ()
            if cue is not None and wrapper is not None:
                st.cot += 1
                if len(st.keys) < _MAX_KEYS:
                    st.keys.add(interaction.principal)
                if len(st.cot_topics) <= high:
                    st.cot_topics.add(topic)
                if len(st.wrappers) < 64 or wrapper in st.wrappers:
                    uses = st.wrappers.get(wrapper, 0) + 1
                    st.wrappers[wrapper] = uses
                    st.peak_uses = max(st.peak_uses, uses)
                    if not is_actor(key):
                        related = self._link(wrapper, key, uses)
            st.peak_cot = max(st.peak_cot, len(st.cot_topics))
            st.peak_topics = max(st.peak_topics, len(st.topics))
            sev = level(len(st.cot_topics), self.min_cot_topics, high)
            if sev is Severity.MEDIUM and is_actor(key) and len(st.keys) >= self.campaign_keys:
                sev = Severity.HIGH  # the sweep is split over rotated keys: a campaign, not a heavy user
            if sev is None and len(st.topics) >= self.min_topics:
                sev = Severity.LOW
            if (sev is not None and sev > st.level) or related:
                if sev is not None:
                    st.level = max(st.level, int(sev))
                shown = sev if sev is not None else Severity.LOW
                score = {Severity.LOW: 0.2, Severity.MEDIUM: 0.6, Severity.HIGH: 0.9}[shown]
                signals.append(
                    self.signal(
                        interaction,
                        score=score,
                        severity=shown,
                        evidence={
                            "cot_topics": len(st.cot_topics),
                            "topics": len(st.topics),
                            "cot_prompts": st.cot,
                            "prompts": st.n,
                            "wrapper": (cue or "")[:120],
                            "window_seconds": self.window,
                            "threshold": self.min_cot_topics,
                            **({"keys": len(st.keys)} if is_actor(key) else {}),
                            **subject_evidence(key),
                        },
                        related=related,
                        link_weight=self.link_weight if related else 0.0,
                    )
                )
        return signals

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        """Pool the parts' window counts into the actor now, so it crosses on its next prompt."""
        merge_into_actor(self._states, actor, parts, self._pool)

    def _pool(self, pooled: _State, st: _State, counters: bool) -> None:
        """Add ``st``'s window (its topic sets; its counters once) to ``pooled``; an older window adds nothing."""
        if st.window < 0 or st.window < pooled.window:
            return
        if st.window > pooled.window:
            pooled.window, pooled.n, pooled.cot, pooled.level = st.window, 0, 0, 0
            pooled.topics.clear()
            pooled.cot_topics.clear()
            pooled.wrappers.clear()
            pooled.keys.clear()
        if counters:
            pooled.n += st.n
            pooled.cot += st.cot
        high = max(self.high_cot_topics, self.min_cot_topics + 1)
        pooled.topics.update(list(st.topics)[: max(0, self.min_topics + 1 - len(pooled.topics))])
        pooled.cot_topics.update(list(st.cot_topics)[: max(0, high + 1 - len(pooled.cot_topics))])
        if st.cot:
            pooled.keys.update(list(st.keys)[: max(0, _MAX_KEYS - len(pooled.keys))])

    def _link(self, wrapper: int, principal: str, uses: int) -> tuple[str, ...]:
        if uses < self.link_min:
            return ()
        peers = self._wrappers.get(wrapper)
        if peers is None:
            peers = OrderedDict()
            self._wrappers[wrapper] = peers
            if len(self._wrappers) > _MAX_WRAPPERS:
                self._wrappers.popitem(last=False)
        peers[principal] = uses
        peers.move_to_end(principal)
        if len(peers) > _MAX_LINKED:
            peers.popitem(last=False)
        past = uses - self.link_min
        if past % 2 or past // 2 >= _MAX_LINK_EMITS:  # every other use from link_min on, eight times at most
            return ()
        return tuple(p for p in reversed(peers) if p != principal)[:_MAX_RELATED]

    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        """Each benign principal's most distinct topics asked with reasoning cues (and without) in one
        window, and its most uses of one reasoning sentence."""
        states = [st for key, st in self._states.items() if not is_actor(key)]
        return {
            "min_cot_topics": Calibration(
                values=tuple(float(s.peak_cot) for s in states), alarm_above=True, floor=10.0
            ),
            "min_topics": Calibration(values=tuple(float(s.peak_topics) for s in states), alarm_above=True, floor=50.0),
            # a wrapper links keys only past every benign principal's reuse of one reasoning sentence
            "link_min": Calibration(values=tuple(float(s.peak_uses) for s in states), alarm_above=True, floor=2.0),
        }
