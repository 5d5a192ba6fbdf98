"""Templated enumeration: one prompt template filled with many different entities.

The seed case: a fintech assistant trained on customer transactions, probed with
"structured, repetitive, intentional" questions ("What did Alice Moreau spend at Tesco on
2026-03-02?", then the next customer, the next date...) until it gives customers away.
Each prompt goes through a global template miner (``text.templates``); its typed slots
(names, account ids, dates, amounts, emails) give the *entity tuple* the prompt asked
about. Per principal, and per actor once the engine has clustered principals, the
detector counts the distinct entity tuples sent through each template.

Customers do not do this. Many of them ask the same FAQ ("how do I reset my password") in
varied words, which makes shared templates with no entity slots; one customer asks about
their own account or a few dates. The attack cannot avoid it: learning about many
customers means naming many customers. ``min_distinct`` distinct entity tuples through one
template (calibrated on benign chat) raises ``medium``; ``high_distinct`` raises ``high``.
Prompts whose template only varies in ordinary words (``<*>`` slots) count separately,
against ``min_distinct_terms``, since lower-cased names hide from the entity typing.

A support desk drafting replies also names many customers, but each with a different
request. So entities are counted per *question*: the template plus the words its ``<*>``
wildcards took in the prompt; and a question counts only while it holds at least
``min_share`` of the principal's (or actor's) prompts that name entities: a desk's busiest
request is about a tenth of its traffic, an enumeration's question nearly all of it.

Templates are global, so the template id is a fingerprint shared across API keys: once a
principal has sent ``link_min`` distinct tuples through a template (and at each new tuple
after that, eight times at most), the signal names the other principals enumerating the
same template within ``link_horizon`` seconds in ``related`` with ``link_weight``. Only
prompts that name someone (a name, an id or an email) link: dates and amounts are usually
a customer's own. So the keys of one campaign merge into one actor and are counted
together: a principal seen in an actor for the first time brings its counts with it.

Technique: AML.T0057 LLM Data Leakage, an assistant trained on customer data made to
disclose it. (Asking a model for attributes of named people is also inversion-like,
AML.T0024.001; on an LLM endpoint both end in the same disclosure, so one is reported.)

Blind spots: rephrasing every prompt so no two share a template, or rotating three or
more phrasings of the question (each then holds under ``min_share``, like a desk); both
cost the attacker, and the answers still carry the data (``llm_leakage`` reads them);
enumeration slower than the template's eviction from a busy miner.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from querywarden.core.atlas import LLM_LEAKAGE
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal
from querywarden.detectors.llm_common import ACTOR_PREFIX, is_actor, level, subject_evidence, subjects
from querywarden.text.templates import TemplateMiner
from querywarden.text.tokens import EMAIL, ENTITY_TYPES, ID, NAME, TERM, user_text

_MAX_TEMPLATES = 32
_MAX_LINKED = 16
_MAX_RELATED = 8
_MAX_LINK_EMITS = 8
_IDENTITIES = frozenset({NAME, ID, EMAIL})
"""Slots that name someone: only prompts holding one link principals (dates and amounts are a customer's own)."""


def _link_schedule(n: int, link_min: int) -> int:
    """Which link emission a count of ``n`` is (1 at ``link_min``, one more per new tuple after it)."""
    return n - link_min + 1


class _PerTemplate:
    __slots__ = ("entities", "prompts", "terms")

    def __init__(self) -> None:
        self.prompts = 0
        self.entities: set[int] = set()
        self.terms: set[int] = set()


class _State:
    __slots__ = ("actor", "entity_prompts", "level", "peak", "peak_terms", "templates")

    def __init__(self) -> None:
        self.entity_prompts = 0
        self.templates: OrderedDict[int, _PerTemplate] = OrderedDict()
        self.actor: str | None = None
        self.level = 0
        self.peak = 0
        self.peak_terms = 0


def _digest(values: tuple[str, ...]) -> int:
    return int.from_bytes(hashlib.blake2b("\x1f".join(values).encode(), digest_size=8).digest(), "little")


class TemplatedEnumerationDetector(Detector):
    name = "llm_templated"
    technique = LLM_LEAKAGE
    description = "one prompt template filled with many distinct entities (customers, accounts, dates)"
    needs = frozenset({"text"})

    def __init__(
        self,
        *,
        profile: ModelProfile,
        min_distinct: int = 20,
        high_distinct: int = 80,
        min_distinct_terms: int = 60,
        min_share: float = 0.34,
        link_min: int = 5,
        link_weight: float = 1.5,
        link_horizon: float = 3600.0,
        similarity: float = 0.5,
        max_templates: int = 4096,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if (
            min(min_distinct, high_distinct, min_distinct_terms, link_min) < 1
            or link_weight < 0
            or link_horizon < 0
            or not 0 <= min_share <= 1
        ):
            raise ValueError(
                "llm_templated: min_distinct, high_distinct, min_distinct_terms, link_min >= 1, link_weight and "
                "link_horizon >= 0"
            )
        self.min_distinct = min_distinct
        self.high_distinct = high_distinct
        self.min_distinct_terms = min_distinct_terms
        self.link_min = link_min
        self.min_share = min_share
        self.link_weight = link_weight
        self.link_horizon = link_horizon
        self.similarity = similarity
        self.max_templates = max_templates
        self.max_principals = max_principals
        self._miner = TemplateMiner(similarity=similarity, max_groups=max_templates)
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)
        self._enumerators: OrderedDict[int, OrderedDict[str, float]] = OrderedDict()
        self._cap = max(high_distinct, min_distinct) + 1

    def update(self, interaction: Interaction) -> list[Signal]:
        text = user_text(interaction)
        if not text:
            return []
        match = self._miner.add(text)
        if match is None or not match.slots:
            for key in subjects(interaction):
                self._joined(key, interaction)  # every principal counts in calibration, quiet ones too
            return []
        entity = tuple(f"{k}={v}" for k, v in match.slots if k in ENTITY_TYPES)
        terms = tuple(v for k, v in match.slots if k == TERM)
        # entities are counted per question: the template plus the words its wildcards took.
        # A support desk drafting replies names many customers, each with a different request;
        # enumeration asks one question about customer after customer.
        slot_key = _digest((str(match.template_id), *terms)) >> 1 if entity and terms else match.template_id
        signals: list[Signal] = []
        for key in subjects(interaction):
            st = self._joined(key, interaction)
            per = st.templates.get(slot_key)
            if per is None:
                per = _PerTemplate()
                st.templates[slot_key] = per
                if len(st.templates) > _MAX_TEMPLATES:
                    st.templates.popitem(last=False)
            else:
                st.templates.move_to_end(slot_key)
            per.prompts += 1
            before = len(per.entities)
            if entity:
                st.entity_prompts += 1
                if before < self._cap:
                    per.entities.add(_digest(entity))
            if terms and not entity and len(per.terms) < self.min_distinct_terms * 2:
                per.terms.add(_digest(terms))
            # a question that holds a minor share of the principal's entity prompts is one of many
            # requests it makes about customers (a support desk), not a walk through them
            n = len(per.entities) if per.prompts >= self.min_share * st.entity_prompts else 0
            n_terms = len(per.terms)
            st.peak = max(st.peak, n)
            st.peak_terms = max(st.peak_terms, n_terms)
            grew = len(per.entities) > before
            names = grew and any(k in _IDENTITIES for k, _ in match.slots)
            related = self._link(match.template_id, key, n, interaction.ts) if n and names and not is_actor(key) else ()
            sev = level(n, self.min_distinct, max(self.high_distinct, self.min_distinct + 1))
            if sev is None and n_terms >= self.min_distinct_terms:
                sev = Severity.MEDIUM
            if sev is not None and sev > st.level:
                st.level = int(sev)
                signals.append(self._crossing(interaction, key, sev, match.template, match.template_id, per, related))
            elif related:
                signals.append(self._link_signal(interaction, match.template_id, n, related))
        return signals

    def _joined(self, key: str, interaction: Interaction) -> _State:
        """The state for ``key``; a principal seen in an actor for the first time brings its counts to the actor."""
        st = self._states.get(key)
        actor = interaction.actor
        if actor and st.actor != actor and not is_actor(key):
            st.actor = actor
            pooled = self._states.get(ACTOR_PREFIX + actor)
            for tid, per in st.templates.items():
                into = pooled.templates.get(tid)
                if into is None:
                    into = pooled.templates[tid] = _PerTemplate()
                into.prompts += per.prompts
                pooled.entity_prompts += per.prompts if per.entities else 0
                into.entities.update(list(per.entities)[: max(0, self._cap - len(into.entities))])
                into.terms.update(list(per.terms)[: max(0, 2 * self.min_distinct_terms - len(into.terms))])
            while len(pooled.templates) > _MAX_TEMPLATES:
                pooled.templates.popitem(last=False)
        return st

    def _link(self, template_id: int, principal: str, n: int, ts: float) -> tuple[str, ...]:
        """Record ``principal`` as enumerating the template; return the peers that did within ``link_horizon``."""
        if n < self.link_min:
            return ()
        peers = self._enumerators.get(template_id)
        if peers is None:
            peers = OrderedDict()
            self._enumerators[template_id] = peers
            if len(self._enumerators) > self.max_templates:
                self._enumerators.popitem(last=False)
        peers[principal] = ts
        peers.move_to_end(principal)
        if len(peers) > _MAX_LINKED:
            peers.popitem(last=False)
        if _link_schedule(n, self.link_min) > _MAX_LINK_EMITS:
            return ()
        since = ts - self.link_horizon
        return tuple(p for p, seen in reversed(peers.items()) if p != principal and seen >= since)[:_MAX_RELATED]

    def _crossing(
        self,
        interaction: Interaction,
        key: str,
        sev: Severity,
        template: str,
        template_id: int,
        per: _PerTemplate,
        related: tuple[str, ...],
    ) -> Signal:
        n = len(per.entities)
        score = 0.5 + 0.5 * min(1.0, n / (2 * self.high_distinct)) if sev >= Severity.MEDIUM else 0.3
        return self.signal(
            interaction,
            score=score,
            severity=sev,
            evidence={
                "template": template[:200],
                "template_fingerprint": f"{template_id:016x}",
                "distinct_entities": n,
                "distinct_terms": len(per.terms),
                "prompts_with_template": per.prompts,
                "threshold": self.min_distinct,
                **subject_evidence(key),
            },
            related=related,
            link_weight=self.link_weight if related else 0.0,
        )

    def _link_signal(self, interaction: Interaction, template_id: int, n: int, related: tuple[str, ...]) -> Signal:
        return self.signal(
            interaction,
            score=0.2,
            severity=Severity.LOW,
            evidence={
                "template_fingerprint": f"{template_id:016x}",
                "distinct_entities": n,
                "shared_with": len(related),
            },
            related=related,
            link_weight=self.link_weight,
        )

    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        """Each benign principal's largest count of distinct entities (and of words) through one template."""
        peaks = [(st.peak, st.peak_terms) for key, st in self._states.items() if not is_actor(key)]
        return {
            "min_distinct": Calibration(values=tuple(float(p) for p, _ in peaks), alarm_above=True, floor=8.0),
            "min_distinct_terms": Calibration(values=tuple(float(t) for _, t in peaks), alarm_above=True, floor=20.0),
        }
