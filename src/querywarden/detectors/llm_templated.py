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

Split over API keys, each key names only a few customers, so the keys are linked by what
the split cannot hide: every key *walks* the same question (it has named ``link_min`` or
more different people through it, by name, id or email, that no other principal named
within the horizon, and the question holds at least ``walk_share`` of all the key's
prompts), and the keys do it together: they share out one list. Once ``link_keys``
principals walk one question within ``link_horizon`` seconds, each walker that names
someone new (eight times at most) names the others still walking it in ``related`` with
``link_weight``. Unlike a pairwise coincidence, a group that large is the whole evidence:
by default the weight is the actor graph's threshold, so one signal merges. The signal is
``medium`` (``high``) once the walkers together have named ``min_distinct``
(``high_distinct``) distinct entity tuples through the question, so the actor is judged on
the very prompt that links it; and at the merge the keys' template counts move into the
actor (``merge``), so it goes on counting from everything its keys sent.

The benign twins stay apart. Customers asking the same FAQ name nobody; customers behind
one NAT asking about their own payout name one person each, themselves; a support desk
naming many customers spreads them over many requests, so no question holds its share
for more than its first few prompts; a customer asking about two of their charges asks
other things too, and the merchants they name are named by other customers as well.
``link_keys`` is calibrated on benign traffic: it sits above the most
principals that walked one question together within the horizon there, so a busier
assistant gets a higher bar.

Technique: AML.T0057 LLM Data Leakage, an assistant trained on customer data made to
disclose it. (Asking a model for attributes of named people is also inversion-like,
AML.T0024.001; on an LLM endpoint both end in the same disclosure, so one is reported.)

Blind spots: rephrasing every prompt so no two share a template, or rotating three or
more phrasings of the question (each then holds under ``min_share``, like a desk); both
cost the attacker, and the answers still carry the data (``llm_leakage`` reads them);
enumeration slower than the template's eviction from a busy miner; a split so wide that
each key names one person (a customer asking about themselves looks the same), or so slow
that fewer than ``link_keys`` keys walk the question within the horizon; keys that ask
about the same people (each name from two keys). On an assistant where many customers at
once ask one question about several names of their own that nobody else names, the
calibrated ``link_keys`` rises with them, and a split over fewer keys is judged per key.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from querywarden.core.atlas import LLM_LEAKAGE
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal
from querywarden.detectors.llm_common import is_actor, joined, level, merge_into_actor, subject_evidence, subjects
from querywarden.text.templates import TemplateMiner
from querywarden.text.tokens import EMAIL, ENTITY_TYPES, ID, NAME, TERM, user_text

_MAX_TEMPLATES = 32
_MAX_WALKERS = 64
"""Walkers remembered per question (the most recent)."""
_MAX_RELATED = 16
_MAX_LINK_EMITS = 8
_MAX_NAMED = 65_536
"""People named recently, for telling whose names a principal alone asks about (least recently named evicted)."""
_IDENTITIES = frozenset({NAME, ID, EMAIL})
"""Slots that name someone: only these make a walk (dates and amounts are usually a customer's own)."""


class _PerTemplate:
    __slots__ = ("entities", "identities", "prompts", "terms")

    def __init__(self) -> None:
        self.prompts = 0
        self.entities: set[int] = set()
        self.identities: set[int] = set()
        self.terms: set[int] = set()


class _State:
    __slots__ = (
        "actor",
        "entity_prompts",
        "group_level",
        "level",
        "links",
        "peak",
        "peak_terms",
        "peak_walkers",
        "prompts",
        "templates",
    )

    def __init__(self) -> None:
        self.prompts = 0
        self.entity_prompts = 0
        self.templates: OrderedDict[int, _PerTemplate] = OrderedDict()
        self.actor: str | None = None
        self.level = 0
        self.group_level = 0
        """The level raised on the principal for the group of walkers it was linked with."""
        self.links = 0
        self.peak = 0
        self.peak_terms = 0
        self.peak_walkers = 0
        """The most principals (itself included) seen walking a question together with it."""


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
        link_min: int = 2,
        walk_share: float = 0.75,
        link_keys: int = 3,
        link_weight: float = 3.0,
        link_horizon: float = 3600.0,
        similarity: float = 0.5,
        max_templates: int = 4096,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if (
            min(min_distinct, high_distinct, min_distinct_terms, link_min) < 1
            or link_keys < 2
            or link_weight < 0
            or link_horizon < 0
            or not 0 <= min_share <= 1
            or not 0 <= walk_share <= 1
        ):
            raise ValueError(
                "llm_templated: min_distinct, high_distinct, min_distinct_terms, link_min >= 1, link_keys >= 2, "
                "link_weight and link_horizon >= 0, min_share and walk_share in [0, 1]"
            )
        self.min_distinct = min_distinct
        self.high_distinct = high_distinct
        self.min_distinct_terms = min_distinct_terms
        self.link_min = link_min
        self.link_keys = link_keys
        self.walk_share = walk_share
        self.min_share = min_share
        self.link_weight = link_weight
        self.link_horizon = link_horizon
        self.similarity = similarity
        self.max_templates = max_templates
        self.max_principals = max_principals
        self._miner = TemplateMiner(similarity=similarity, max_groups=max_templates)
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)
        self._walkers: OrderedDict[int, OrderedDict[str, float]] = OrderedDict()
        """question -> principals walking it -> when they last named someone new through it"""
        self._named: OrderedDict[int, tuple[str, float]] = OrderedDict()
        """person named (digest) -> the one principal that named them within the horizon ("" for several), when"""
        self._cap = max(high_distinct, min_distinct) + 1

    def update(self, interaction: Interaction) -> list[Signal]:
        text = user_text(interaction)
        if not text:
            return []
        match = self._miner.add(text)
        if match is None or not match.slots:
            for key in subjects(interaction):
                self._joined(key, interaction).prompts += 1  # every principal counts in calibration, quiet ones too
            return []
        entity = tuple(f"{k}={v}" for k, v in match.slots if k in ENTITY_TYPES)
        identity = tuple(f"{k}={v}" for k, v in match.slots if k in _IDENTITIES)
        terms = tuple(v for k, v in match.slots if k == TERM)
        # entities are counted per question: the template plus the words its wildcards took.
        # A support desk drafting replies names many customers, each with a different request;
        # enumeration asks one question about customer after customer.
        slot_key = _digest((str(match.template_id), *terms)) >> 1 if entity and terms else match.template_id
        person = _digest(identity) if entity and identity else None
        if person is not None:
            self._name(person, interaction.principal, interaction.ts)
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
            st.prompts += 1
            before = len(per.entities)
            named = len(per.identities)
            if entity:
                st.entity_prompts += 1
                if before < self._cap:
                    per.entities.add(_digest(entity))
                if person is not None and named < self._cap:
                    per.identities.add(person)
            if terms and not entity and len(per.terms) < self.min_distinct_terms * 2:
                per.terms.add(_digest(terms))
            # a question that holds a minor share of the principal's entity prompts is one of many
            # requests it makes about customers (a support desk), not a walk through them
            major = per.prompts >= self.min_share * st.entity_prompts
            n = len(per.entities) if major else 0
            n_terms = len(per.terms)
            st.peak = max(st.peak, n)
            st.peak_terms = max(st.peak_terms, n_terms)
            related: tuple[str, ...] = ()
            if len(per.identities) > named and not is_actor(key) and self._walking(key, st, per):
                related = self._walk(slot_key, key, st, interaction.ts)
            sev = level(n, self.min_distinct, max(self.high_distinct, self.min_distinct + 1))
            if sev is None and n_terms >= self.min_distinct_terms:
                sev = Severity.MEDIUM
            if sev is not None and sev > st.level:
                st.level = int(sev)
                signals.append(self._crossing(interaction, key, sev, match.template, match.template_id, per, related))
            elif related:
                signals.append(self._link_signal(interaction, st, slot_key, match.template_id, per, related))
        return signals

    def _joined(self, key: str, interaction: Interaction) -> _State:
        return joined(self._states, key, interaction, self._pool)

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        """Pool the parts' template counts into the actor now, so it crosses on its next prompt."""
        merge_into_actor(self._states, actor, parts, self._pool)

    def _pool(self, into: _State, st: _State, counters: bool) -> None:
        """Add ``st``'s questions to the actor's ``into``: their entity sets, and their prompt counts once."""
        if counters:
            into.prompts += st.prompts
            into.entity_prompts += st.entity_prompts
        for tid, per in st.templates.items():
            dst = into.templates.get(tid)
            if dst is None:
                dst = into.templates[tid] = _PerTemplate()
            if counters:
                dst.prompts += per.prompts
            dst.entities.update(list(per.entities)[: max(0, self._cap - len(dst.entities))])
            dst.identities.update(list(per.identities)[: max(0, self._cap - len(dst.identities))])
            dst.terms.update(list(per.terms)[: max(0, 2 * self.min_distinct_terms - len(dst.terms))])
        while len(into.templates) > _MAX_TEMPLATES:
            into.templates.popitem(last=False)

    def _walk(self, question: int, principal: str, st: _State, ts: float) -> tuple[str, ...]:
        """Record ``principal`` as walking ``question``; once ``link_keys`` walk it within the horizon, the others."""
        walkers = self._walkers.get(question)
        if walkers is None:
            walkers = self._walkers[question] = OrderedDict()
            if len(self._walkers) > self.max_templates:
                self._walkers.popitem(last=False)
        else:
            self._walkers.move_to_end(question)
        walkers.pop(principal, None)
        walkers[principal] = ts
        if len(walkers) > _MAX_WALKERS:
            walkers.popitem(last=False)
        since = ts - self.link_horizon
        peers = [
            p for p, seen in reversed(walkers.items()) if p != principal and seen >= since and self._walks(p, question)
        ]
        st.peak_walkers = max(st.peak_walkers, len(peers) + 1)
        if len(peers) + 1 < self.link_keys or st.links >= _MAX_LINK_EMITS:
            return ()
        st.links += 1
        return tuple(peers[:_MAX_RELATED])

    def _walks(self, principal: str, question: int) -> bool:
        """Whether ``principal`` still walks ``question``: a desk whose first prompts repeated a
        request stops walking it as soon as the request falls under ``walk_share`` of its prompts."""
        st = self._states.peek(principal)
        per = st.templates.get(question) if st is not None else None
        return st is not None and per is not None and self._walking(principal, st, per)

    def _walking(self, principal: str, st: _State, per: _PerTemplate) -> bool:
        """``link_min`` people that only this principal named (within the horizon) through the question, which
        holds ``walk_share`` of all its prompts (not only those naming entities: a customer asking about two of
        their charges, or a desk whose first requests repeat, asks other things too; a key of a split enumeration
        asks nothing else). A name others ask about too (a popular merchant, a public figure) is no one's walk:
        the keys of a split enumeration share out a list, each name asked once."""
        if per.prompts < self.walk_share * st.prompts or len(per.identities) < self.link_min:
            return False
        named = self._named
        own = 0
        for person in per.identities:
            entry = named.get(person)
            if entry is not None and entry[0] == principal:
                own += 1
                if own >= self.link_min:
                    return True
        return False

    def _name(self, person: int, principal: str, ts: float) -> None:
        """Record that ``principal`` named ``person``: theirs alone unless another principal did within the horizon."""
        seen = self._named.pop(person, None)
        owner = principal if seen is None or seen[0] == principal or seen[1] < ts - self.link_horizon else ""
        self._named[person] = (owner, ts)
        if len(self._named) > _MAX_NAMED:
            self._named.popitem(last=False)

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
                **({"walking_with": len(related)} if related else {}),
                **subject_evidence(key),
            },
            related=related,
            link_weight=self.link_weight if related else 0.0,
        )

    def _link_signal(
        self,
        interaction: Interaction,
        st: _State,
        question: int,
        template_id: int,
        per: _PerTemplate,
        related: tuple[str, ...],
    ) -> Signal:
        """The link to the other walkers; ``medium`` or above once the group, as linked here, has named
        ``min_distinct`` entities through the question (the engine merges it on this very signal, so
        the finding is the actor's at once rather than at its members' next prompts)."""
        group = self._group_entities(question, per, related)
        sev = level(group, self.min_distinct, max(self.high_distinct, self.min_distinct + 1))
        if sev is not None and sev > st.group_level:
            st.group_level = int(sev)
        else:
            sev = Severity.LOW
        score = 0.5 + 0.5 * min(1.0, group / (2 * self.high_distinct)) if sev >= Severity.MEDIUM else 0.2
        return self.signal(
            interaction,
            score=score,
            severity=sev,
            evidence={
                "template_fingerprint": f"{template_id:016x}",
                "distinct_people_named": len(per.identities),
                "prompts_with_template": per.prompts,
                "walking_with": len(related),
                "distinct_entities_of_walkers": group,
                "threshold": self.min_distinct,
                "link_keys": self.link_keys,
                "window_seconds": self.link_horizon,
                "counted_on": "walkers",
            },
            related=related,
            link_weight=self.link_weight,
        )

    def _group_entities(self, question: int, per: _PerTemplate, peers: tuple[str, ...]) -> int:
        """Distinct entity tuples the principal and ``peers`` sent through ``question`` (up to the cap)."""
        union = set(per.entities)
        for p in peers:
            st = self._states.peek(p)
            theirs = st.templates.get(question) if st is not None else None
            if theirs is not None:
                union.update(theirs.entities)
                if len(union) >= self._cap:
                    break
        return len(union)

    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        """Each benign principal's largest count of distinct entities (and of words) through one template,
        and the most principals it walked a question with (itself included)."""
        states = [st for key, st in self._states.items() if not is_actor(key)]
        return {
            "min_distinct": Calibration(values=tuple(float(s.peak) for s in states), alarm_above=True, floor=8.0),
            "min_distinct_terms": Calibration(
                values=tuple(float(s.peak_terms) for s in states), alarm_above=True, floor=20.0
            ),
            # keys link only in a larger group than benign principals ever walked a question in together
            "link_keys": Calibration(values=tuple(float(s.peak_walkers) for s in states), alarm_above=True, floor=3.0),
        }
