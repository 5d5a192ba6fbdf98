"""Inversion: a principal reconstructing what the model learned about a class or a record.

Model inversion (AML.T0024.001) has two query shapes that the attack cannot avoid, because
they are how it reads the model:

**Confidence ascent** (MI-Face, Fredrikson et al. 2015). The attacker optimises an input
so the model grows ever more confident in one target class. Black-box, every step is a
query a tiny distance from the last (a small fraction of the natural spacing between real
inputs), and the target class's confidence keeps setting new highs along the chain. Noise
around a fixed photo sets a new high only about ln(n) times in n queries; an optimiser sets
one nearly every step. The detector counts, per chain of small steps, the *records* of the
most-improved class, and alarms when they pass ``chain_records`` with a total climb of at
least ``min_climb``. A binary search towards the decision boundary (HopSkipJump, the
Boundary attack, label-only membership inference) climbs the runner-up class's confidence
too, but on steps that halve the previous one: a chain whose target class set most of its
records on such steps is reported as decision-boundary probing (AML.T0043), inversion named
runner-up; with training digests it is named as every walk is (``walk_naming``): label-only
membership inference once the principal has queried ``MEMBER_RECORDS`` distinct training rows. Four
chains are followed at once per principal, so decoy queries interleaved with the
optimiser's steps do not break its chain.

A drifting feed (a machine's readings, wandering for hours) sets chance highs too, about the
square root of its length; its chain diffuses like a random walk (``drift``), which an
optimiser's never does, and is reported at ``low``. An optimiser sets a record nearly every
step and crosses ``chain_records`` before ``drift`` can judge its shape.

**Single-record variants.** Estimating a gradient by finite differences sends batches
of inputs that each differ from a centre in one coordinate by ±h. Fredrikson-style
attribute inversion on tabular models sends the same record again and again while one
sensitive feature is swept over its values. Both are a *family*: one base record plus
many distinct variants that each change at most ``max_edited`` features of it. A what-if
user editing one or two fields a handful of times makes a family of a few variants;
a sweep over a feature's value range or a gradient estimate makes dozens. The detector
alarms when one family reaches ``sweep_variants`` distinct variants, or when one same
feature was edited, right after its base, in ``swept_records`` different records within 512
queries (the same short sweep repeated over many victims' records, e.g. a binary sensitive
attribute: two values per record). Natural records that happen to differ in one or two
features (common in one-hot tabular data) rarely arrive one right after the other, which
is why adjacency is required there; and since a sweep tries the same candidate values on
every record, a record counts only when its variant moved the feature by at least a
quarter of its natural standard deviation and set a value another record's variant also
set (chance twins in a batch differ by values that do not recur; rounded or re-converted
re-sends barely move). A record re-sent and edited again is one record. Record sweeps are
a tabular pattern: they are not counted on images.

Whose records: inversion rebuilds what the model learned about people in its training
data. With ``training_digests`` in the profile, a sweep of candidate values on tabular
inputs (a family whose variants move a feature by ``_SWEEP_STEP`` standard deviations or
more, record sweeps, and a confidence ascent climbing on steps that move one or two
features that far) raises ``medium`` only by counting families that hold an exact training
row; the same sweep over records the model never trained on is a sensitivity analysis,
reported at ``low``. Gradient estimates (families most of whose variants are a finite
difference away, or whose variants move more than ``_SWEPT_FEATURES`` features in turn) and
images are judged as before.

State is kept per principal, or per actor once the engine has clustered the principal
into one (``Interaction.actor``); at the merge each key's chains, families and sweeps move
to the actor's (``merge``), so a sweep split over many keys adds up.

Exact duplicates (retries) are ignored. ``medium`` is the calibrated crossing; ``high`` is
four times past it. One signal per rise of level, not per query.

Blind spots: an inversion that spaces its steps at the natural spacing (it then needs far
more queries and looks like extraction); a sweep over a feature with fewer values than
``sweep_variants`` for one single victim; sweeps over many records interleaved so that no
variant follows its base; MI-Face against hardened (rounded, top-1) outputs, which the
attack cannot climb anyway.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from typing import Any

import numpy as np

from querywarden.core.atlas import ADVERSARIAL, INVERSION
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Evidence, InputKind, Interaction, Severity, Signal, Vector
from querywarden.detectors.drift import Spread
from querywarden.detectors.reference import QuerySpace, reference_rows
from querywarden.detectors.reference import spacing as natural_spacing
from querywarden.detectors.small_arrays import row_sq_norms
from querywarden.detectors.walk_naming import (
    is_training_row,
    remember,
    row_digest_of,
    training_digests,
    walk_technique,
)

_TOLERANCE = 1e-6
"""Normalised difference below which a feature counts as unchanged."""
_SWEPT_WINDOW = 512
"""Queries over which families editing the same feature are counted."""
_HIGH_FACTOR = 4.0
_CHAINS = 4
"""Chains of small steps followed at once per principal."""
_NO_PROJECTION = 1 << 30
_SORTED_RUN = 32
"""Consecutive queries in one lexicographic direction that make a stream a sorted scan."""

_SWEPT_FEATURES = 2
"""A sweep moves the same one or two features again and again; an optimiser's coordinate
probes (finite differences, MI-Face on tabular inputs) move many, one or two at a time."""

_SWEEP_STEP = 0.25
"""A record sweep moves the feature by at least this many natural standard deviations: a
candidate value, not a rounding or unit-conversion difference."""

_CHAIN, _SWEEP, _SWEPT = "confidence_ascent", "feature_sweep", "record_sweeps"

_HALVING = (0.4, 0.6)
"""A step this share of the chain's previous step is a bisection step; an optimiser's steps
keep their length (a learning rate) or shrink slowly as the confidence saturates."""


class SortedScan:
    """Tells a principal walking through sorted data from one probing a record.

    A batch job that scores its records sorted (by customer attributes, say) sends long
    runs of neighbours that differ in one or two features, and on crowded tabular data
    (one-hot encoded, few continuous columns) those runs look exactly like sweeps and
    probe clusters. Sorted data has a tell: every query is lexicographically after the
    one before (or every one before it), reading the columns in order or in reverse. Once
    ``_SORTED_RUN`` queries in a row keep one direction, the stream counts as a sorted
    scan, and the record-probing statistics stop counting until the order breaks. An
    optimiser's or a sweep's queries go back and forth, so they never look sorted, unless
    an attacker sorts them on purpose (a documented evasion).
    """

    __slots__ = ("last", "runs")

    def __init__(self) -> None:
        self.last: Vector | None = None
        self.runs = [0, 0]  # signed run lengths, columns read first to last and last to first

    def scanning(self, x: Vector) -> bool:
        last, self.last = self.last, x
        if last is None or last.shape != x.shape:
            self.runs = [0, 0]
            return False
        diff = x - last
        changed = diff.nonzero()[0]
        runs = self.runs
        if changed.shape[0]:
            # the step's direction in either column order: ORDER BY the columns or reversed
            first, final = runs
            direction = 1 if diff[changed[0]] > 0 else -1
            runs[0] = first + direction if direction * first > 0 else direction
            direction = 1 if diff[changed[-1]] > 0 else -1
            runs[1] = final + direction if direction * final > 0 else direction
        return abs(runs[0]) >= _SORTED_RUN or abs(runs[1]) >= _SORTED_RUN


class _Chain:
    """One run of small steps: its first answer, each class's best confidence and new highs."""

    __slots__ = (
        "best",
        "features",
        "halved",
        "halvings",
        "last_step",
        "length",
        "member",
        "records",
        "spread",
        "start",
        "swept",
        "used",
    )

    def __init__(self, p: Vector | None, used: int, member: bool = False) -> None:
        self.start = p  # a reference until the chain continues, then a copy
        self.best: Vector | None = None
        self.records: np.ndarray | None = None
        self.length = 1
        self.used = used
        self.last_step = 0.0
        self.halvings = 0  # steps about half the previous one: a binary search
        self.halved: np.ndarray | None = None  # per class, records set on such steps
        self.swept: np.ndarray | None = None  # per class, records set on steps that moved one or two features far
        self.member = member  # an exact training row was queried on the chain
        self.features: set[int] | None = None  # the features its sweep steps moved
        self.spread: Spread | None = None  # the chain's shape: a random walk's, or not

    def bisecting(self, target: int) -> bool:
        """True when the target class set most of its records on steps that halved the previous one."""
        if self.records is None or self.halved is None or target < 0:
            return False
        return 2 * int(self.halved[target]) >= int(self.records[target]) > 0

    def sweeping(self, target: int) -> bool:
        """True when the target class set most of its records on steps that moved one or two
        features by a candidate value's distance: a sensitivity curve, or an attribute sweep."""
        swept = getattr(self, "swept", None)  # a snapshot from before the slot existed has none
        features = getattr(self, "features", None)
        if self.records is None or swept is None or target < 0 or features is None or len(features) > _SWEPT_FEATURES:
            return False  # steps along many coordinates in turn are an optimiser's, not a sweep's
        return 2 * int(swept[target]) >= int(self.records[target]) > 0


class _State:
    __slots__ = (
        "bases",
        "chain",
        "chains",
        "edits",
        "heads",
        "last_family",
        "levels",
        "members",
        "named",
        "queries",
        "rows",
        "scan",
        "serial",
        "serials",
        "swept",
        "used",
        "variants",
        "worst",
    )

    def __init__(self) -> None:
        self.queries = 0
        self.heads: np.ndarray | None = None  # (chains, dim): the last query of each chain
        self.chains: list[_Chain] = []
        self.chain = 0  # the chain the latest query joined
        self.scan = SortedScan()
        self.bases: np.ndarray | None = None  # (families, dim) float32
        self.used: list[int] = []
        self.variants: list[set[bytes]] = []
        self.serials: list[int] = []  # family serial numbers, so a replaced family is a new one
        self.serial = 0
        self.last_family = 0  # serial of the family the previous distinct query fell in
        # feature -> (base record, query, value, whether the record's family holds a training row)
        self.swept: dict[int, deque[tuple[bytes, int, float, bool]]] = {}
        self.members: set[int] = set()  # serials of families holding an exact training row
        self.rows: tuple[int, ...] = ()  # distinct exact training rows queried (digests)
        self.named = ""  # technique the confidence-ascent pattern was last signalled under
        # serial -> [the features its variants edited (a few), variants a finite difference away, variants]
        self.edits: dict[int, list[Any]] = {}
        self.levels = [0, 0, 0]  # chain, sweep, swept: 0 quiet, 1 low, 2 medium, 3 high
        self.worst = [0.0, 0.0, 0.0]

    def __setstate__(self, state: object) -> None:
        """Restore a snapshot, including one taken before a slot existed (it keeps its default)."""
        self.__init__()  # type: ignore[misc]
        slots = state[1] if isinstance(state, tuple) else state
        for name, value in (slots or {}).items() if isinstance(slots, dict) else ():
            if name in self.__slots__:  # a slot since dropped is ignored
                setattr(self, name, value)


class InversionDetector(Detector):
    name = "inversion"
    technique = INVERSION
    description = "confidence-ascent chains and single-record feature sweeps (model inversion)"
    needs = frozenset({"features"})

    def __init__(
        self,
        *,
        profile: ModelProfile,
        step_ratio: float = 0.25,
        chain_records: float = 12,
        min_climb: float = 0.1,
        max_edited: int = 2,
        sweep_variants: float = 12,
        swept_records: float = 6,
        families: int = 16,
        spacing: float | None = None,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if step_ratio <= 0 or chain_records < 2 or sweep_variants < 2 or swept_records < 1 or families < 1:
            raise ValueError(
                "inversion: step_ratio > 0, chain_records >= 2, sweep_variants >= 2, swept_records >= 1 "
                "and families >= 1 are required"
            )
        self.step_ratio = step_ratio
        self.chain_records = chain_records
        self.min_climb = min_climb
        self.max_edited = max_edited
        self.sweep_variants = sweep_variants
        self.swept_records = swept_records
        self.families = families
        self.spacing = spacing
        self.max_principals = max_principals
        # per-feature scaling only: a projection would hide which feature a variant edits
        self._space = QuerySpace.from_profile(profile, max_dims=_NO_PROJECTION)
        self._spacing = 1.0
        self._spread: Vector | None = None
        if self._space is not None:
            rows = reference_rows(profile, self._space)
            self._spacing = spacing if spacing else natural_spacing(rows, self._space.dim)
            if rows is not None:
                self._spread = (_SWEEP_STEP * rows.std(axis=0)).astype(np.float32)
        self._digests = training_digests(profile)
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)
        # one pixel of many photos is nobody's attribute: record sweeps are a tabular pattern
        self._records = profile.input_kind is not InputKind.IMAGE

    def _edit_limit(self) -> int:
        """How many features a variant may change: fewer on narrow inputs, where natural
        records easily share all but one or two values; none below three features."""
        dim = self._space.dim if self._space is not None else 0
        if dim < 3:
            return 0
        return min(self.max_edited, 1 if dim < 8 else self.max_edited)

    def update(self, interaction: Interaction) -> list[Signal]:
        z = self._space.transform_of(interaction) if self._space is not None else None
        if z is None:
            return []
        st = self._states.get(interaction.actor or interaction.principal)
        k, step = -1, math.inf
        if st.heads is not None:
            diff = st.heads - z
            d2 = row_sq_norms(diff)
            k = int(d2.argmin())
            step = math.sqrt(float(d2[k]))
            if step == 0.0:
                return []  # a retry or exact duplicate discloses nothing new
        st.queries += 1
        if st.scan.scanning(z):
            return []  # a walk through sorted records: neighbours are not probes
        member = False
        if self._digests is not None:
            key = row_digest_of(interaction)
            member = is_training_row(self._digests, key)
            if member:
                st.rows = remember(getattr(st, "rows", ()), key)
        changed = self._follow_chain(st, z, k, step, probabilities(interaction), member) or member
        edited = self._follow_family(st, interaction, member)
        if edited is not None:
            changed = True
        if not changed:
            return []
        return self._judge(interaction, st, edited)

    # -- confidence ascent --------------------------------------------------------------
    def _follow_chain(self, st: _State, z: Vector, k: int, step: float, p: Vector | None, member: bool) -> bool:
        """Extend the chain whose last query is within a small step, else start one.

        Several chains are followed at once, so decoy queries interleaved with the
        optimiser's steps do not break its chain.
        """
        chain = st.chains[k] if k >= 0 else None
        start = chain.start if chain is not None else None
        if (
            chain is None
            or step > self.step_ratio * self._spacing
            or p is None
            or start is None
            or start.shape != p.shape
        ):
            self._new_chain(st, z, p, member)
            return False
        assert st.heads is not None
        moved = self._sweep_step(z - st.heads[k])
        st.heads[k] = z
        spread = getattr(chain, "spread", None)  # a snapshot from before the slot existed has none
        if spread is None:
            spread = chain.spread = Spread()
        spread.add(z)
        if moved is not None:
            if getattr(chain, "features", None) is None:
                chain.features = set()
            assert chain.features is not None
            if len(chain.features) <= _SWEPT_FEATURES:
                chain.features.update(moved.tolist())
        if member:
            chain.member = True
        st.chain = k
        chain.length += 1
        chain.used = st.queries
        halving = chain.last_step > 0.0 and _HALVING[0] * chain.last_step <= step <= _HALVING[1] * chain.last_step
        chain.halvings += halving
        chain.last_step = step
        if chain.best is None or chain.records is None:
            chain.start = start = start.copy()
            chain.best = start.copy()
            chain.records = np.zeros(start.shape[0], dtype=np.int64)
        better = p > chain.best
        if not better.any():
            return False
        chain.records += better
        if halving:
            if chain.halved is None:
                chain.halved = np.zeros(chain.records.shape[0], dtype=np.int64)
            chain.halved += better
        if moved is not None:
            if getattr(chain, "swept", None) is None:
                chain.swept = np.zeros(chain.records.shape[0], dtype=np.int64)
            assert chain.swept is not None
            chain.swept += better
        np.maximum(chain.best, p, out=chain.best)
        return True

    def _sweep_step(self, diff: Vector) -> np.ndarray | None:
        """The features a step moved when it moved one or two (on tabular inputs) and one of
        them by at least ``_SWEEP_STEP`` of its natural spread (a candidate value, not a
        finite difference); None otherwise."""
        limit = self._edit_limit()
        if not self._records or limit == 0 or self._spread is None:
            return None
        moved = (np.abs(diff) > _TOLERANCE).nonzero()[0]
        if not 0 < moved.size <= limit:
            return None
        return moved if bool((np.abs(diff[moved]) >= self._spread[moved]).any()) else None

    def _new_chain(self, st: _State, z: Vector, p: Vector | None, member: bool = False) -> None:
        chain = _Chain(p, st.queries, member)  # most queries land here: no copy until the chain continues
        if st.heads is None:
            st.heads = z[None, :].copy()
            st.chains.append(chain)
            st.chain = 0
        elif len(st.chains) < _CHAINS:
            st.heads = np.concatenate((st.heads, z[None, :]))
            st.chains.append(chain)
            st.chain = len(st.chains) - 1
        else:
            used = [c.used for c in st.chains]
            k = used.index(min(used))  # the least recently extended chain (the first of equals)
            st.heads[k] = z
            st.chains[k] = chain
            st.chain = k

    def _chain_reading(self, st: _State) -> tuple[int, int, float, int]:
        """(target class, its records, its climb, length) for the chain the latest query joined."""
        chain = st.chains[st.chain] if st.chains else None
        if chain is None or chain.records is None or chain.best is None or chain.start is None:
            return -1, 0, 0.0, chain.length if chain else 0
        target = int(chain.records.argmax())
        climb = float(chain.best[target] - chain.start[target])
        return target, int(chain.records[target]), climb, chain.length

    # -- single-record variants ---------------------------------------------------------
    def _follow_family(self, st: _State, interaction: Interaction, member: bool) -> np.ndarray | None:
        """Place the query in a family; return the indices it edits when it is a new variant."""
        limit = self._edit_limit()
        if limit == 0 or self._space is None:
            return None
        zf = self._space.transform32_of(interaction)
        if zf is None:
            return None
        if st.bases is None:
            self._new_family(st, zf, member)
            return None
        gaps = st.bases - zf
        differs = np.abs(gaps, out=gaps) > _TOLERANCE
        counts = np.add.reduce(differs, axis=1, dtype=np.intp)
        k = int(counts.argmin())
        n_changed = int(counts[k])
        if n_changed == 0 or n_changed > limit:
            if n_changed:
                self._new_family(st, zf, member)
            return None
        serial = st.serials[k]
        adjacent = st.last_family == serial
        st.last_family = serial
        st.used[k] = st.queries
        seen = st.variants[k]
        key = hashlib.blake2b(zf.tobytes(), digest_size=8).digest()  # stable across processes and restores
        if key in seen or len(seen) > _HIGH_FACTOR * self.sweep_variants:
            return None
        seen.add(key)
        if member:
            st.members.add(serial)
        in_training = serial in st.members
        edited: np.ndarray = differs[k].nonzero()[0]
        spread = self._spread
        edits = getattr(st, "edits", None)  # a snapshot from before the slot existed has none
        if edits is None:
            edits = st.edits = {}
        entry = edits.setdefault(serial, [set(), 0, 0])
        entry[2] += 1
        if spread is not None and bool((np.abs(zf[edited] - st.bases[k][edited]) < spread[edited]).all()):
            entry[1] += 1  # a finite difference, not a candidate value
        if len(entry[0]) <= _SWEPT_FEATURES:
            entry[0].update(edited.tolist())
        base = hashlib.blake2b(st.bases[k].tobytes(), digest_size=8).digest() if adjacent and self._records else b""
        for j in edited.tolist() if adjacent and self._records else ():
            if self._spread is not None and abs(float(zf[j] - st.bases[k][j])) < self._spread[j]:
                continue  # a rounded or re-converted value: the same record, not another candidate
            trail = st.swept.get(j)
            if trail is None:
                trail = st.swept[j] = deque(maxlen=int(_HIGH_FACTOR * self.swept_records) * 2 + 1)
            if not any(e[0] == base for e in trail):
                trail.append((base, st.queries, float(zf[j]), in_training))
            elif in_training:  # the record's true value came after other candidates
                trail.append((base, st.queries, float(zf[j]), True))
        st.worst[1] = max(st.worst[1], float(len(seen)))
        st.worst[2] = max(st.worst[2], float(self._swept_count(st)[0]))
        return edited

    def _new_family(self, st: _State, zf: np.ndarray, member: bool = False) -> None:
        self._start_family(st, zf)
        if member:
            st.members.add(st.serial)
        if len(st.members) > 4 * self.families:  # forget the families that were replaced
            st.members.intersection_update(st.serials)
        edits = getattr(st, "edits", None)
        if edits is not None and len(edits) > 4 * self.families:
            for serial in set(edits) - set(st.serials):
                del edits[serial]

    def _start_family(self, st: _State, zf: np.ndarray) -> None:
        if st.bases is None:
            st.bases = zf[None, :].copy()
        elif len(st.bases) < self.families:
            st.bases = np.concatenate((st.bases, zf[None, :]))
        else:
            k = st.used.index(min(st.used))
            st.bases[k] = zf
            st.used[k] = st.queries
            st.variants[k] = set()
            st.serial += 1
            st.serials[k] = st.last_family = st.serial
            return
        st.used.append(st.queries)
        st.variants.append(set())
        st.serial += 1
        st.serials.append(st.serial)
        st.last_family = st.serial

    def _swept_count(self, st: _State) -> tuple[int, int]:
        """The most distinct records whose one same feature was set to a value another of them
        got, within the window; and the most such records whose family holds a training row.

        A sweep tries the same candidate values on every record (a binary attribute's two
        values, a report's grid); natural records that happen to differ in one feature, and
        re-sent records with jittered numbers, differ by values that rarely recur. A record
        re-sent and edited again is one record.
        """
        recent = st.queries - _SWEPT_WINDOW
        best = best_members = 0
        for trail in st.swept.values():
            bases_of: dict[float, set[bytes]] = {}
            members: set[bytes] = set()
            for entry in trail:
                b, q, v = entry[0], entry[1], entry[2]
                if q > recent:
                    bases_of.setdefault(v, set()).add(b)
                    if len(entry) > 3 and entry[3]:
                        members.add(b)
            shared: set[bytes] = set()
            for bases in bases_of.values():
                if len(bases) > 1:
                    shared |= bases
            best = max(best, len(shared))
            best_members = max(best_members, len(shared & members))
        return best, best_members

    # -- actors -------------------------------------------------------------------------
    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        self._states.fold(actor, parts, self._fold)

    def _fold(self, into: _State, other: _State) -> None:
        """Add another principal's chains, families and sweeps to an actor's.

        Query indices are the other's counted back from the actor's latest query, so what
        the other sent last counts as recent; family serials are renumbered past the
        actor's, so two keys' records stay distinct records."""
        shift = into.queries - other.queries
        for k, chain in enumerate(other.chains):
            if len(into.chains) >= _CHAINS or other.heads is None:
                break
            chain.used += shift
            into.chains.append(chain)
            head = other.heads[k][None, :]
            into.heads = head.copy() if into.heads is None else np.vstack([into.heads, head])
        serial = into.serial
        if other.bases is not None:
            for k in range(len(other.bases)):
                if into.bases is not None and len(into.bases) >= self.families:
                    old = into.used.index(min(into.used))
                    if into.used[old] >= other.used[k] + shift:
                        continue  # the actor's own families are more recent: keep them
                    into.bases[old] = other.bases[k]
                    into.used[old], into.variants[old] = other.used[k] + shift, other.variants[k]
                    into.serials[old] = other.serials[k] + serial
                    continue
                base = other.bases[k][None, :]
                into.bases = base.copy() if into.bases is None else np.vstack([into.bases, base])
                into.used.append(other.used[k] + shift)
                into.variants.append(other.variants[k])
                into.serials.append(other.serials[k] + serial)
        for feature, trail in other.swept.items():
            held = into.swept.get(feature)
            if held is None:
                held = into.swept[feature] = deque(maxlen=trail.maxlen)
            held.extend((e[0], e[1] + shift, e[2], len(e) > 3 and bool(e[3])) for e in trail)
        into.members.update(s + serial for s in other.members)
        for key in getattr(other, "rows", ()):
            into.rows = remember(getattr(into, "rows", ()), key)
        other_edits = getattr(other, "edits", None) or {}
        if other_edits:
            if getattr(into, "edits", None) is None:
                into.edits = {}
            into.edits.update({s + serial: [set(e[0]), e[1], e[2]] for s, e in other_edits.items()})
        into.serial += other.serial
        into.levels = [max(a, b) for a, b in zip(into.levels, other.levels, strict=True)]
        into.worst = [max(a, b) for a, b in zip(into.worst, other.worst, strict=True)]

    # -- judging ------------------------------------------------------------------------
    def _judge(self, interaction: Interaction, st: _State, edited: np.ndarray | None) -> list[Signal]:
        target, records, climb, length = self._chain_reading(st)
        if climb >= self.min_climb:
            st.worst[0] = max(st.worst[0], float(records))
        family = max((len(v) for v in st.variants), default=0)
        swept, swept_members = self._swept_count(st)
        family_members = family
        if self._digests is not None and self._records:
            # a sweep of candidate values over a record the model never trained on is a
            # sensitivity analysis; a finite-difference gradient estimate is judged as before
            family_members = max(
                (
                    len(v)
                    for v, serial in zip(st.variants, st.serials, strict=True)
                    if serial in st.members or _probing(getattr(st, "edits", {}).get(serial))
                ),
                default=0,
            )
        else:
            swept_members = swept
        readings = (
            (records if climb >= self.min_climb else 0, self.chain_records),
            (family, self.sweep_variants),
            (swept, self.swept_records),
        )
        chain = st.chains[st.chain] if st.chains else None
        ascent = readings[0][0]
        if self._digests is not None and chain is not None and chain.sweeping(target) and not chain.member:
            ascent = 0  # a sensitivity curve over a record the model was not trained on
        spread: Spread | None = getattr(chain, "spread", None) if chain is not None else None
        drifting = spread is not None and spread.diffusing()
        if drifting:
            ascent = 0  # a random walk's chance highs: a drifting feed (see drift)
        attack = (ascent, family_members, swept_members)
        best_pattern, best_level = -1, 0
        for i, (value, threshold) in enumerate(readings):
            level = 0
            if attack[i] >= _HIGH_FACTOR * threshold:
                level = int(Severity.HIGH)
            elif attack[i] >= threshold:
                level = int(Severity.MEDIUM)
            elif value >= threshold:
                level = int(Severity.LOW)  # a sweep of records the model was not trained on
            if level > st.levels[i]:
                st.levels[i] = level
                if level > best_level:
                    best_pattern, best_level = i, level
        if best_level == 0:
            if not self._renamed(st, target):
                return []
            best_pattern, best_level = 0, st.levels[0]  # the same ascent, now named by its candidates
        value, threshold = readings[best_pattern]
        if best_level > Severity.LOW:
            value = attack[best_pattern]
        evidence: Evidence = {
            "pattern": (_CHAIN, _SWEEP, _SWEPT)[best_pattern],
            "queries": st.queries,
            "chain_length": length,
            "target_class": self._class_name(target),
            "confidence_records": records,
            "confidence_climb": round(climb, 4),
            "family_variants": family,
            "swept_records_recent": swept,
            "threshold": threshold,
            "natural_spacing": round(self._spacing, 6),
        }
        if self._digests is not None and best_pattern > 0:
            evidence["training_rows_swept"] = (family_members, swept_members)[best_pattern - 1]
        if best_pattern == 0 and drifting:
            evidence["drifting"] = True
        elif best_pattern == 0 and chain is not None and chain.sweeping(target):
            evidence["one_feature_steps"] = True
            if self._digests is not None:
                evidence["training_row_on_chain"] = chain.member
        if edited is not None:
            evidence["features_changed"] = [self._feature_name(int(i)) for i in edited[:8]]
        technique = INVERSION
        if best_pattern == 0 and chain is not None and chain.bisecting(target):
            # a binary search to the boundary, not an ascent: named by the records it starts
            # from, as every walk is (label-only membership inference bisects from a candidate list)
            rows = len(getattr(st, "rows", ()))
            technique, _ = walk_technique(rows, digests=self._digests is not None, many_sites=False)
            evidence.update(runner_up=INVERSION, halving_steps=chain.halvings)
            if self._digests is not None:
                evidence["training_records"] = rows
        if best_pattern == 0:
            st.named = technique
        score = min(1.0, 0.5 + 0.1 * math.log2(1.0 + value / threshold))
        return [
            self.signal(interaction, score=score, severity=Severity(best_level), evidence=evidence, technique=technique)
        ]

    def _renamed(self, st: _State, target: int) -> bool:
        """True when a bisection already reported as evasion has since queried its third
        distinct training row: a candidate list, so label-only membership inference."""
        if self._digests is None or st.levels[0] < Severity.MEDIUM or getattr(st, "named", "") != ADVERSARIAL:
            return False
        chain = st.chains[st.chain] if st.chains else None
        if chain is None or not chain.bisecting(target):
            return False
        technique, _ = walk_technique(len(getattr(st, "rows", ())), digests=True, many_sites=False)
        return technique != ADVERSARIAL

    def _class_name(self, index: int) -> str | int | None:
        if index < 0:
            return None
        classes = self.profile.classes
        return classes[index] if classes and index < len(classes) else index

    def _feature_name(self, index: int) -> str | int:
        names = self.profile.feature_names
        return names[index] if names and index < len(names) else index

    # -- contract -----------------------------------------------------------------------
    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        worst = [st.worst for _, st in self._states.items()]
        return {
            "chain_records": Calibration(tuple(w[0] for w in worst), floor=8.0),
            "sweep_variants": Calibration(tuple(w[1] for w in worst), floor=6.0),
            "swept_records": Calibration(tuple(w[2] for w in worst), floor=3.0),
        }


def _probing(edits: list[Any] | None) -> bool:
    """True for a family that is a gradient estimate, not a sweep: its variants moved more
    than ``_SWEPT_FEATURES`` features in turn (coordinate probes), or most of them were a
    finite difference away. ``edits`` is the family's entry in ``_State.edits``."""
    if edits is None:
        return False
    features, fine, variants = edits
    return len(features) > _SWEPT_FEATURES or 2 * fine > variants


def probabilities(interaction: Interaction) -> Vector | None:
    """The output's probability vector when it is usable (1-d, two classes or more, finite)."""
    out = interaction.output
    if out is None or out.probabilities is None:
        return None
    p = out.probabilities
    if p.ndim != 1 or p.shape[0] < 2 or not math.isfinite(float(np.add.reduce(p))):
        return None
    return p
