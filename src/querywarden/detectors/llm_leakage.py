"""Leakage in outputs: personal data and secrets in answers, and records repeated across callers.

The other LLM detectors read prompts; this one reads answers, which is where a successful
extraction shows no matter how the prompt was phrased. Every answer is scanned
(``text.pii``) for emails, phone numbers, IBANs (mod-97 checked), card numbers (Luhn
checked) and credential shapes (provider API keys, PEM private keys). Values the caller
wrote in the prompt are not counted: echoing a customer's own email back is not a leak.

Per principal, and per actor, within ``window`` seconds the detector counts *distinct* PII
values received. A support assistant may read a customer their own email or phone once or
twice; an assistant giving out the data of many customers to one caller is leaking.
``min_distinct_pii`` distinct values (calibrated on benign chat) raise ``medium``,
``high_distinct_pii`` raise ``high``; ``min_secrets`` credentials raise ``medium`` and
three times as many ``high``. The first PII value a principal receives is ``low``. When the
engine merges keys into an actor, the values each received in the window move into the
actor's count (``merge``), so loot split over keys adds up from the merge on.

Long verbatim spans repeated across principals: a global, bounded index of the 12-word
shingles of answers that hold a PII value (the records an assistant can leak) remembers
which principals received each. An answer that repeats a shingle another principal
received is the same record extracted twice, and the signal names those principals in
``related`` with ``link_weight`` (at most eight such signals per principal and window), so
keys sharing loot form one actor. Canned answers hold no
PII of their own and are never indexed, and a shingle already received by more than
``boilerplate_principals`` principals (a published support address, say) stops linking.

Streamed answers: the gateway reassembles the text before the engine sees it; for
per-chunk scanning (and redaction in harden mode) see ``text.stream``.

Blind spots: PII in formats the patterns do not cover (national ids, postal addresses,
names on their own), style-transferred or encoded output (Ippolito et al., 2023: verbatim
filters are bypassed by asking for the data in another form).
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict

from querywarden.core.atlas import LLM_LEAKAGE
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal
from querywarden.detectors.llm_common import is_actor, joined, level, merge_into_actor, subject_evidence, subjects
from querywarden.text.pii import SECRET_KINDS, scan
from querywarden.text.tokens import output_text, user_text

_SPAN = 12
_MAX_SPAN_PEERS = 8
_MAX_RELATED = 8
_MAX_LINK_EMITS = 8


class _State:
    __slots__ = ("actor", "kinds", "level", "links", "peak", "peak_secrets", "secrets", "values", "window")

    def __init__(self) -> None:
        self.actor: str | None = None
        self.window = -1
        self.values: set[int] = set()
        self.secrets: set[int] = set()
        self.kinds: dict[str, int] = {}
        self.level = 0
        self.peak = 0
        self.peak_secrets = 0
        self.links = 0


def _spans(answer: str, values: list[str]) -> list[int]:
    """Hashes of the 12-word shingles of ``answer`` that hold one of the PII ``values``: its records."""
    ws = answer[:8000].split()
    out: list[int] = []
    for i in range(max(1, len(ws) - _SPAN + 1)):
        chunk = " ".join(ws[i : i + _SPAN])
        if any(v in chunk for v in values):
            out.append(zlib.crc32(chunk.encode()))
    return out


class OutputLeakageDetector(Detector):
    name = "llm_leakage"
    technique = LLM_LEAKAGE
    description = "PII and secrets in answers, and rare answer spans repeated across principals"
    needs = frozenset({"text"})

    def __init__(
        self,
        *,
        profile: ModelProfile,
        min_distinct_pii: int = 5,
        high_distinct_pii: int = 25,
        min_secrets: int = 1,
        window: float = 86_400.0,
        boilerplate_principals: int = 20,
        link_weight: float = 1.5,
        max_spans: int = 200_000,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if min(min_distinct_pii, high_distinct_pii, min_secrets, boilerplate_principals, max_spans) < 1 or window <= 0:
            raise ValueError("llm_leakage: thresholds and caps must be >= 1 and window > 0")
        if link_weight < 0:
            raise ValueError("llm_leakage: link_weight must be >= 0")
        self.link_weight = link_weight
        self.min_distinct_pii = min_distinct_pii
        self.high_distinct_pii = high_distinct_pii
        self.min_secrets = min_secrets
        self.window = window
        self.boilerplate_principals = boilerplate_principals
        self.max_spans = max_spans
        self.max_principals = max_principals
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)
        self._spans: OrderedDict[int, list[str | int]] = OrderedDict()
        """shingle -> [count of principals, principal, principal, ...] (at most _MAX_SPAN_PEERS named)."""

    def update(self, interaction: Interaction) -> list[Signal]:
        answer = output_text(interaction)
        if not answer:
            return []
        found = scan(answer[:20_000])
        prompt = (user_text(interaction) or "") if found else ""
        fresh = [m for m in found if m.value not in prompt]
        if not fresh:
            for key in subjects(interaction):
                joined(self._states, key, interaction, self._pool)  # every principal counts in calibration
            return []
        peers = self._index(interaction.principal, _spans(answer, [m.value for m in fresh]))
        w = math.floor(interaction.ts / self.window)
        high = max(self.high_distinct_pii, self.min_distinct_pii + 1)
        signals: list[Signal] = []
        for key in subjects(interaction):
            st = joined(self._states, key, interaction, self._pool)
            if w > st.window:
                st.window, st.level, st.links = w, 0, 0
                st.values.clear()
                st.secrets.clear()
                st.kinds.clear()
            for m in fresh:
                h = zlib.crc32(f"{m.kind}:{m.value}".encode())
                if m.kind in SECRET_KINDS:
                    st.secrets.add(h)
                elif len(st.values) <= high:
                    st.values.add(h)
                st.kinds[m.kind] = st.kinds.get(m.kind, 0) + 1
            st.peak = max(st.peak, len(st.values))
            st.peak_secrets = max(st.peak_secrets, len(st.secrets))
            sev = level(len(st.values), self.min_distinct_pii, high)
            secret_sev = level(len(st.secrets), self.min_secrets, 3 * self.min_secrets)
            if secret_sev is not None and (sev is None or secret_sev > sev):
                sev = secret_sev
            if sev is None:
                sev = Severity.LOW
            related = peers if peers and st.links < _MAX_LINK_EMITS and not is_actor(key) else ()
            if sev > st.level or related:
                st.level = max(st.level, int(sev))
                st.links += 1 if related else 0
                score = {Severity.LOW: 0.2, Severity.MEDIUM: 0.65, Severity.HIGH: 0.9}.get(sev, 0.2)
                signals.append(
                    self.signal(
                        interaction,
                        score=score,
                        severity=sev,
                        evidence={
                            "distinct_pii_values": len(st.values),
                            "secrets": len(st.secrets),
                            "kinds": dict(sorted(st.kinds.items())),
                            "in_this_answer": sorted({m.kind for m in fresh}),
                            "shared_spans_with": len(related),
                            "window_seconds": self.window,
                            "threshold": self.min_distinct_pii,
                            **subject_evidence(key),
                        },
                        related=related,
                        link_weight=self.link_weight if related else 0.0,
                    )
                )
        return signals

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        """Pool the parts' values received in the window into the actor, so it crosses on its next answer."""
        merge_into_actor(self._states, actor, parts, self._pool)

    def _pool(self, into: _State, st: _State, counters: bool) -> None:
        """Add ``st``'s window (its values; its kind counts once) to the actor's; an older window adds nothing."""
        if st.window < 0 or st.window < into.window:
            return
        if st.window > into.window:
            into.window, into.level, into.links = st.window, 0, 0
            into.values.clear()
            into.secrets.clear()
            into.kinds.clear()
        high = max(self.high_distinct_pii, self.min_distinct_pii + 1)
        into.values.update(list(st.values)[: max(0, high + 1 - len(into.values))])
        into.secrets.update(st.secrets)
        if counters:
            for kind, n in st.kinds.items():
                into.kinds[kind] = into.kinds.get(kind, 0) + n

    def _index(self, principal: str, shingles: list[int]) -> tuple[str, ...]:
        """Record which principal received each record shingle; return the others that got a rare one."""
        spans = self._spans
        peers: list[str] = []
        for h in shingles:
            entry = spans.get(h)
            if entry is None:
                spans[h] = [1, principal]
                if len(spans) > self.max_spans:
                    spans.popitem(last=False)
                continue
            spans.move_to_end(h)
            named = entry[1:]
            if principal in named:
                continue
            count = int(entry[0])
            if count <= self.boilerplate_principals:
                peers.extend(str(p) for p in named if p not in peers)
            entry[0] = count + 1
            if len(named) < _MAX_SPAN_PEERS:
                entry.append(principal)
        return tuple(peers[:_MAX_RELATED])

    def state_size(self) -> int:
        return len(self._states)

    def stored_spans(self) -> int:
        return len(self._spans)

    def calibration(self) -> dict[str, Calibration]:
        """Each benign principal's most distinct PII values, and secrets, received in one window."""
        states = [st for key, st in self._states.items() if not is_actor(key)]
        return {
            "min_distinct_pii": Calibration(values=tuple(float(s.peak) for s in states), alarm_above=True, floor=3.0),
            "min_secrets": Calibration(
                values=tuple(float(s.peak_secrets) for s in states), alarm_above=True, floor=1.0
            ),
        }
