"""Boundary probing: a principal whose queries keep landing on the model's decision boundary.

HopSkipJump, the Boundary attack and label-only membership inference all converge on the
decision boundary and spend most of their queries there: binary searches between two
classes and gradient estimates around a boundary point. Natural inputs rarely sit there.
The attack cannot avoid it, since the boundary is what it is measuring.

A query is a *boundary event* when the output's margin (top-1 minus top-2 probability) is
below ``margin``. Outputs may be hardened: when probabilities are truncated, the missing
mass is assumed to sit on the runner-up (the smallest margin the output allows); logits are
turned into probabilities first. For label-only outputs, a boundary event is a label flip
between two consecutive near-identical queries (closer than ``flip_fraction`` of the benign
nearest-neighbour spacing): the boundary lies between them. A walk can flip at most about
every other query, so label-only traffic is held to ``min_flip_share`` against a population
flip rate that starts from ``prior_flip_rate``.

A model's probabilities need not be small where its label changes: boosted stumps and a
calibrated support-vector machine answer 0.75 or more on either side of their boundary, and a
walk along it never shows a low margin. So with probabilities, a label flip between two
consecutive near-identical queries is a boundary event too, counted in a ring of its own
(from the principal's first such flip) and held to the label-only bars.

Per principal, the count of events over the last ``window`` queries is tested against the
population's event rate with a binomial tail (``surprise = -log10 P(X >= count)``), so a few
borderline customers in a short history do not fire. When the whole window does not pass,
its last ``recent`` queries are judged alone: HopSkipJump and the Boundary attack begin with
random draws far from the boundary, which would otherwise hide the walk that follows until
it filled the window. On digits about 93% of a walk's outputs have a margin under 0.3,
against about 4% of natural digits. The population rate starts from
``prior_rate`` (worth ``prior_weight`` queries) and is learned from the first
``learn_limit`` queries of each principal not flagged, so neither one heavy caller nor an
attacker sets it.

Windows are kept per principal, or per actor once the engine has clustered the principal
into one (``Interaction.actor``), so the keys of one Sybil attacker share a window; at the
merge each key's window and boundary centres move to the actor's (``merge``).

Technique: AML.T0043 (crafting adversarial data), or label-only membership inference
(AML.T0024.000) when the walks start from the records of a candidate list (see
``walk_naming``): with ``training_digests`` in the profile, a principal that queried at
least ``member_records`` distinct exact training rows; without them, boundary events
clustered around ``membership_centres`` or more distinct centres (each with at least
``min_centre_events`` events, centres ``centre_fraction`` of the spacing wide). A single
evasion walk also lingers at several such centres on its way from its random start to its
target, so with digests the centres alone name nothing. The runner-up is in the evidence,
and a principal first named one way is signalled again under the other when its evidence
changes.

A long-lived principal is judged on many windows as they slide over its history, and its
best one reaches some surprise by chance alone: each judgement subtracts ``log10(seen /
judged)`` (a Bonferroni bound on the scan, nothing while the principal has sent fewer queries
than the window holds), so a customer with thousands of queries is not flagged for its
luckiest run of 32.

Severities: ``medium`` when surprise >= ``surprise``, share >= ``min_share`` and at least
``min_queries`` queries; ``high`` when a full window holds at least ``high_share``.

Blind spots: an attacker that interleaves many natural queries between boundary queries
(slower by the same factor); a model whose benign traffic is itself mostly borderline (the
learned rate rises, and so does the bar); label-only probing whose consecutive queries are
never near-identical (interleaving two searches).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import numpy.typing as npt

from querywarden.core.atlas import ADVERSARIAL
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Output, Severity, Signal, Vector
from querywarden.detectors.event_window import fold_events, push_event, share_calibration
from querywarden.detectors.reference import QuerySpace, binomial_surprise, reference_rows, spacing
from querywarden.detectors.walk_naming import (
    MEMBER_RECORDS,
    is_training_row,
    remember,
    row_digest_of,
    training_digests,
    walk_technique,
)
from querywarden.errors import DetectorError

_HALVE_AT = 1_000_000.0
"""Population counts are halved past this many queries, so the rate follows slow drift."""

_PROBS, _LABELS = 0, 1
_SHORT = 64
"""Outputs with at most this many classes are read in plain Python."""


_RECENT_INPUTS = 16
"""Distinct inputs remembered per principal: a repeat of one of them asks nothing new."""

_FLOORS = (6.0, 0.5)
"""The shipped ``surprise`` and ``min_share``: calibration never sets laxer ones."""


class _Flips:
    """A ring of 0/1 events (see ``event_window``): label flips between near-identical
    consecutive queries of a principal whose outputs carry probabilities."""

    __slots__ = ("count", "flags", "n", "pos", "worst_share", "worst_surprise")

    def __init__(self, flags: npt.NDArray[np.uint8] | None, pos: int, n: int) -> None:
        self.flags = None if flags is None else np.zeros_like(flags)
        self.pos = pos
        self.n = n
        self.count = 0
        self.worst_share = 0.0
        self.worst_surprise = 0.0


class _State:
    __slots__ = (
        "centre_n",
        "centres",
        "count",
        "flags",
        "flips",
        "last_label",
        "last_z",
        "learned",
        "level",
        "level_by_technique",
        "members",
        "n",
        "pos",
        "recent_inputs",
        "seen",
        "worst_share",
        "worst_surprise",
    )

    def __init__(self) -> None:
        self.flags: npt.NDArray[np.uint8] | None = None
        self.pos = 0
        self.n = 0
        self.count = 0
        self.last_z: Vector | None = None
        self.last_label: int | str | None = None
        self.centres: npt.NDArray[np.float32] | None = None
        self.centre_n: npt.NDArray[np.int64] | None = None
        self.learned = 0
        self.level = Severity.INFO
        self.level_by_technique: dict[str, Severity] = {}
        self.worst_surprise = 0.0
        self.worst_share = 0.0
        self.recent_inputs: dict[int, None] = {}
        self.members: tuple[int, ...] = ()  # distinct exact training rows queried
        self.seen = 0  # queries judged over the principal's life (its windows slide over them)
        self.flips: _Flips | None = None  # label flips under probabilities, from the first one on


class BoundaryDetector(Detector):
    name = "boundary"
    technique = ADVERSARIAL
    description = "share of a principal's queries answered with a low margin (on the decision boundary)"
    needs = frozenset({"output"})

    def __init__(
        self,
        *,
        profile: ModelProfile,
        margin: float = 0.3,
        surprise: float = 6.0,
        min_share: float = 0.5,
        high_share: float = 0.75,
        min_queries: int = 24,
        window: int = 128,
        recent: int = 32,
        prior_rate: float = 0.05,
        min_flip_share: float = 0.25,
        prior_flip_rate: float = 0.01,
        prior_weight: float = 200.0,
        learn_limit: int = 512,
        flip_fraction: float = 0.5,
        centre_fraction: float = 1.5,
        min_centre_events: int = 8,
        membership_centres: int = 3,
        member_records: int = MEMBER_RECORDS,
        max_centres: int = 32,
        max_dims: int = 64,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if not 0 < margin < 1 or surprise <= 0 or not 0 < min_share <= high_share <= 1:
            raise DetectorError("boundary: 0 < margin < 1, surprise > 0 and 0 < min_share <= high_share <= 1")
        if min_queries < 1 or window < min_queries or not 0 < prior_rate < 1 or prior_weight <= 0:
            raise DetectorError(
                "boundary: min_queries >= 1, window >= min_queries, 0 < prior_rate < 1 and prior_weight > 0"
            )
        if not min_queries <= recent <= window:
            raise DetectorError("boundary: min_queries <= recent <= window")
        if not 0 < min_flip_share <= 1 or not 0 < prior_flip_rate < 1:
            raise DetectorError("boundary: 0 < min_flip_share <= 1 and 0 < prior_flip_rate < 1")
        if membership_centres < 2 or max_centres < membership_centres or min_centre_events < 1 or member_records < 1:
            raise DetectorError(
                "boundary: membership_centres >= 2, max_centres >= membership_centres, min_centre_events >= 1"
                " and member_records >= 1"
            )
        self.margin = margin
        self.surprise = surprise
        self.min_share = min_share
        self.high_share = high_share
        self.min_queries = min_queries
        self.window = window
        self.recent = recent
        self.prior_rate = prior_rate
        self.min_flip_share = min_flip_share
        self.prior_flip_rate = prior_flip_rate
        self.prior_weight = prior_weight
        self.learn_limit = learn_limit
        self.flip_fraction = flip_fraction
        self.centre_fraction = centre_fraction
        self.min_centre_events = min_centre_events
        self.membership_centres = membership_centres
        self.member_records = member_records
        self.max_centres = max_centres
        self.max_dims = max_dims
        self.max_principals = max_principals
        self._space = QuerySpace.from_profile(profile, max_dims=max_dims)
        rows = reference_rows(profile, self._space) if self._space is not None else None
        gap = spacing(rows, self._space.out_dim if self._space is not None else 1)
        self._flip_radius = flip_fraction * gap
        self._centre_radius = centre_fraction * gap
        # population boundary events and queries, per output kind (probabilities, labels)
        self._pop = np.zeros((2, 2), dtype=np.float64)
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)

    def population_rate(self, kind: int = _PROBS) -> float:
        """The learned share of boundary events among benign queries, shrunk towards the prior."""
        events, total = self._pop[kind]
        prior = self.prior_rate if kind == _PROBS else self.prior_flip_rate
        return float((events + prior * self.prior_weight) / (total + self.prior_weight))

    def update(self, interaction: Interaction) -> list[Signal]:
        out = interaction.output
        if out is None:
            return []
        space = self._space
        low = _margin(out)
        z: Vector | None = None
        st = self._states.get(interaction.actor or interaction.principal)
        digests = training_digests(self.profile)
        x = interaction.features
        if x is not None and digests is not None:
            key = row_digest_of(interaction)
            if _repeated(st, key):
                return []
            if is_training_row(digests, key):
                st.members = remember(st.members, key)
        elif x is not None and _repeated(st, _raw_key(x)):
            return []
        flipped: _Flips | None = None
        if low is not None:
            kind = _PROBS
            event = low < self.margin
            if space is not None:
                z = space.transform_of(interaction)
                if z is not None:
                    flipped = self._probability_flip(st, z, out.predicted_class())
        else:
            z = space.transform_of(interaction) if space is not None else None
            label = out.label
            if label is None or z is None:
                return []
            kind = _LABELS
            prev, prev_label = st.last_z, st.last_label
            st.last_z, st.last_label = z, label
            event = (
                prev is not None
                and prev_label != label
                and math.sqrt(float(np.dot(prev - z, prev - z))) <= self._flip_radius
            )
        flag = 1 if event else 0
        if st.level < Severity.MEDIUM and st.learned < self.learn_limit:
            st.learned += 1
            self._learn(kind, flag)
        push_event(st, flag, self.window)
        st.seen = getattr(st, "seen", 0) + 1  # a snapshot from before the slot existed has none
        if not event and flipped is None:
            return []
        if z is None and space is not None:
            z = space.transform_of(interaction)  # only boundary events need the input
        if z is not None:
            self._add_centre(st, z)
        if st.n < self.min_queries:
            return []
        out_signal = (
            self._judge(interaction, st, st, kind, "probabilities" if kind == _PROBS else "labels") if event else []
        )
        if not out_signal and flipped is not None:
            out_signal = self._judge(interaction, st, flipped, _LABELS, "probabilities, label flips")
        return out_signal

    def _probability_flip(self, st: _State, z: Vector, label: int | str | None) -> _Flips | None:
        """Track label flips for a principal whose outputs carry probabilities; the flip ring
        when this query flipped.

        A model's probabilities need not be small where its label changes (a calibrated SVM
        or boosted stumps answer 0.75 on either side of their boundary), but a label that
        changes between two near-identical consecutive queries proves the boundary lies
        between them, whatever the margins say. The ring starts at the principal's first such
        flip, as zeros for the queries before it: principals that never flip (nearly all)
        hold none."""
        prev, prev_label = st.last_z, st.last_label
        st.last_z, st.last_label = z, label
        flip = (
            prev is not None
            and prev_label != label
            and prev.shape == z.shape
            and math.sqrt(float(np.dot(prev - z, prev - z))) <= self._flip_radius
        )
        ring = getattr(st, "flips", None)  # a snapshot from before the slot existed has none
        if ring is None:
            if not flip:
                return None
            ring = st.flips = _Flips(st.flags, st.pos, st.n)
        if st.level < Severity.MEDIUM and st.learned < self.learn_limit:
            self._learn(_LABELS, 1 if flip else 0)
        push_event(ring, 1 if flip else 0, self.window)
        return ring if flip else None

    def _judge(
        self, interaction: Interaction, st: _State, ring: _State | _Flips, kind: int, output: str
    ) -> list[Signal]:
        """Test ``ring``'s events (margins, or label flips) against the population's rate."""
        digests = training_digests(self.profile)
        rate = self.population_rate(kind)
        # a label flip needs two queries across the boundary: a walk shows at most about half
        min_share = self.min_share if kind == _PROBS else self.min_flip_share
        high_share = self.high_share if kind == _PROBS else min(1.0, 1.5 * self.min_flip_share)
        if ring.n < self.min_queries:
            return []
        count, judged = ring.count, ring.n
        share = count / judged
        surprise = binomial_surprise(count, judged, rate) - _windows_tried(st.seen, judged)
        if (surprise < self.surprise or share < min_share) and ring.n > self.recent:
            # the walk may follow a phase of other queries (random starts): judge the recent part
            count, judged = self._recent_count(ring), self.recent
            share = count / judged
            surprise = binomial_surprise(count, judged, rate) - _windows_tried(st.seen, judged)
        ring.worst_share = max(ring.worst_share, share)
        ring.worst_surprise = max(ring.worst_surprise, surprise)
        if surprise < self.surprise or share < min_share:
            return []
        full_share = ring.count / ring.n  # high needs a whole window of it, not a recent burst
        level = Severity.HIGH if ring.n >= self.window and full_share >= high_share else Severity.MEDIUM
        centres = self._distinct_centres(st)
        technique, runner_up = walk_technique(
            len(st.members),
            digests=digests is not None,
            many_sites=centres >= self.membership_centres,
            member_records=self.member_records,
        )
        level = max(level, st.level)
        if st.level_by_technique.get(technique, Severity.INFO) >= level:
            return []
        st.level = level
        st.level_by_technique[technique] = level
        score = min(1.0, 0.5 + 0.5 * share * min(1.0, surprise / (4 * self.surprise)))
        return [
            self.signal(
                interaction,
                score=score,
                severity=level,
                technique=technique,
                evidence={
                    "boundary_queries": count,
                    "window_queries": judged,
                    "boundary_share": round(share, 4),
                    "population_share": round(rate, 4),
                    "surprise": round(surprise, 2),
                    "scan_correction": round(_windows_tried(st.seen, judged), 2),
                    "output": output,
                    "distinct_centres": centres,
                    "training_records": len(st.members) if digests is not None else None,
                    "runner_up": runner_up,
                },
            )
        ]

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        self._states.fold(actor, parts, self._fold)

    def _fold(self, into: _State, other: _State) -> None:
        """Add another principal's window and boundary centres to an actor's."""
        fold_events(into, other, self.window)
        flips = getattr(other, "flips", None)
        if flips is not None:
            if getattr(into, "flips", None) is None:
                into.flips = _Flips(into.flags, into.pos, 0)
            assert into.flips is not None
            fold_events(into.flips, flips, self.window)
        if other.centres is not None and other.centre_n is not None:
            for z, n in zip(other.centres, other.centre_n.tolist(), strict=True):
                if n:
                    self._add_centre(into, z, n)
        if into.last_z is None:
            into.last_z, into.last_label = other.last_z, other.last_label
        for key in other.members:
            into.members = remember(into.members, key)
        into.learned = max(into.learned, other.learned)
        into.seen = getattr(into, "seen", 0) + getattr(other, "seen", 0)
        into.level = max(into.level, other.level)
        for technique, level in other.level_by_technique.items():
            into.level_by_technique[technique] = max(level, into.level_by_technique.get(technique, Severity.INFO))

    def _learn(self, kind: int, flag: int) -> None:
        pop = self._pop
        pop[kind, 0] += flag
        pop[kind, 1] += 1.0
        if pop[kind, 1] >= _HALVE_AT:
            pop[kind] *= 0.5

    def _recent_count(self, st: _State | _Flips) -> int:
        """Boundary events among the principal's last ``recent`` queries."""
        assert st.flags is not None
        start = st.pos - self.recent
        if start >= 0:
            return int(st.flags[start : st.pos].sum())
        return int(st.flags[start:].sum()) + int(st.flags[: st.pos].sum())

    def _add_centre(self, st: _State, z: Vector, events: int = 1) -> None:
        """Assign boundary events to the nearest centre within the radius, or open a new one."""
        if st.centres is None or st.centre_n is None:
            st.centres = np.zeros((self.max_centres, z.shape[0]), dtype=np.float32)
            st.centre_n = np.zeros(self.max_centres, dtype=np.int64)
        held = int(np.count_nonzero(st.centre_n))
        if held:
            diff = st.centres[:held] - z.astype(np.float32)
            d2 = np.einsum("ij,ij->i", diff, diff)
            j = int(d2.argmin())
            if math.sqrt(float(d2[j])) <= self._centre_radius:
                st.centre_n[j] += events
                return
        slot = held if held < self.max_centres else int(st.centre_n.argmin())
        st.centres[slot] = z
        st.centre_n[slot] = events

    def _distinct_centres(self, st: _State) -> int:
        if st.centre_n is None:
            return 0
        return int(np.count_nonzero(st.centre_n >= self.min_centre_events))

    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        return share_calibration((st for _, st in self._states.items()), self.min_queries, _FLOORS)


def _windows_tried(seen: int, judged: int) -> float:
    """The surprise a principal's best window reaches by chance alone, in log10 units: a
    window of ``judged`` queries sliding over ``seen`` is about ``seen / judged`` independent
    tries (a Bonferroni bound on the scan). A customer scoring thousands of natural records,
    a tenth of them borderline, finds a run of 32 with half of them on the boundary somewhere;
    a walk reaches that in its first window, where this costs nothing."""
    return math.log10(seen / judged) if seen > judged else 0.0


def _margin(out: Output) -> float | None:
    """Top-1 minus the largest runner-up the output allows; None without probabilities or logits.

    Outputs are short vectors, where plain Python beats numpy's per-call overhead.
    """
    p = out.probabilities
    if p is None or p.size == 0:
        s = out.scores
        if s is None or s.size < 2 or not np.isfinite(s).all():
            return None
        e = np.exp(s - s.max())
        p = e / e.sum()
    if p.size > _SHORT:
        top = np.partition(p, -2)[-2:]
        top1, top2, total = float(top[1]), float(top[0]), float(p.sum())
    else:
        values = p.tolist()
        total = sum(values)
        top1 = max(values)
        values.remove(top1)
        top2 = max(values) if values else 0.0
    if not math.isfinite(total):
        return None
    missing = 1.0 - total
    return top1 - max(top2, min(missing, top1))


def _raw_key(x: Vector) -> int:
    """A 64-bit hash of the input's raw bytes (repeats are exact copies)."""
    return int.from_bytes(hashlib.blake2b(x.tobytes(), digest_size=8).digest(), "little")  # C order whatever the layout


def _repeated(st: _State, key: int) -> bool:
    """True when ``key`` repeats one of the principal's last distinct inputs; remembers it otherwise.

    A repeat tells the caller nothing it was not told (a monitoring probe sending one
    borderline record every minute, a retry), so it is neither a boundary event nor a query
    that dilutes one: a walk must keep sending new points. With training digests the key is
    the input's ``row_digest``, which also looks it up among the training rows.
    """
    seen = st.recent_inputs
    if key in seen:
        return True
    seen[key] = None
    if len(seen) > _RECENT_INPUTS:
        del seen[next(iter(seen))]
    return False
