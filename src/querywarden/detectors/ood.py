"""Out-of-distribution inputs: a principal whose queries keep landing far from benign data.

Extraction with out-of-distribution data (KnockoffNets or CopycatCNN fed another dataset,
equation solving with uniform noise, data-free synthetic inputs) needs many distinct inputs
the model was never meant to see. Each query's distance to the benign reference (k-th
nearest neighbour after the ``KnnReference`` projection) is compared with a per-query
threshold set from the reference itself (its ``quantile`` of leave-one-out distances), so a
benign query is out of distribution with a known small probability ``p``. Per principal,
the out-of-distribution share over the last ``window`` queries is tested against ``p`` with
a binomial tail: the surprise is ``-log10 P(X >= count)``. A handful of odd queries in a
short history does not fire; a steady stream does.

A second per-query test reads the joint structure: the query's Mahalanobis distance under the
reference's shrunk covariance (``JointReference``), thresholded at the same ``quantile`` of
its held-out distances. Inputs whose every feature takes a natural value, drawn apart from
the others (radius, perimeter and area no longer agree), fall among the reference in kNN
distance yet far off in this one. Those inputs are also what a data scientist's synthetic
test set looks like, so the joint count (inputs odd by either test, against the sum of the
two benign rates) raises ``low`` only: reported, never judged an attack. An input that
differs from the principal's last joint-odd input in at most ``edit_share`` of its features
is a what-if edit of one record (fields copied from other records drift into combinations
no record holds) and is not counted. The test needs more reference rows than features and
at least 32; with fewer it is off. It is off for images too: pixels covary locally, so a
one-pixel shift or a cropped border of a natural photo breaks the pixel covariance (an
image-editing customer on digits crossed it) while saying nothing about extraction.

A third per-query test reads each feature on its own (``MarginalTail``, tabular inputs with a
declared reference): a query is also far when several of its features lie beyond the
reference's extremes by more than ``tail_margin`` of the reference's span. Uniform draws over
the documented range do that on skewed features; natural records and per-column synthetic
records almost never do. It helps most where the kNN threshold is loose: on a reference of
a few dozen rows the 0.99 quantile of leave-one-out distances is the sample's largest gap.
Its benign rate is added to the kNN test's in the ``medium`` count. With it comes a second kNN
radius: the ``quantile`` of the k-th neighbour distances of rows drawn column by column from
the reference (``_column_radius``). Where features cluster together (iris's petal length and
width), such rows land between the clusters, beyond the benign threshold; a far input no
farther than that radius, and not tail-far, counts with the joint-structure inputs (``low``),
since a synthetic test set built column by column sends the same.

Only new out-of-distribution inputs count: one that sits near an out-of-distribution input
the principal sent recently (within ``novelty_fraction`` of the benign nearest-neighbour
spacing) is a variant, e.g.
an edited copy of the same unusual photo, and is skipped. Extraction cannot avoid sending
many distinct inputs; a benign app editing one picture sends few.

Without a reference sample in the profile, the detector first gathers one from live
traffic (``warmup`` queries, at most ``warmup_per_principal`` from any principal) and stays
silent until it has. Whoever queries during that warm-up shapes "benign"; the cap and k > 1
limit what one caller can plant, but a Sybil attacker present from the first minute can
still poison it. Declare a reference sample wherever one exists.

Windows are kept per principal, or per actor once the engine has clustered the principal
into one (``Interaction.actor``), so the keys of one Sybil attacker share a window; at the
merge each key's window moves to the actor's (``merge``).

Technique: extraction, unless the far inputs are the random starts of an evasion attack's
line searches: at least ``_MIN_LINES`` far inputs, and one in ``_LINE_SHARE``, lie on the
segment between two earlier inputs of the principal (``line_search``), which HopSkipJump's
and the Boundary attack's bisections towards their target do and independent draws do not.
Such a principal is named AML.T0043, with extraction as the runner-up.

Severities: ``low`` when the joint count crosses ``surprise`` and ``min_share``; ``medium``
when the kNN test's does, after at least ``min_queries`` queries; ``high`` when a full window
holds at least twice ``min_share`` far inputs. Signals are emitted when the level rises.

Blind spots: natural in-distribution extraction data (by design, the extraction budget
ledger's job); an attacker who mixes each synthetic input with many natural ones, keeping
the share under ``min_share``; a reference sample that misses a benign sub-population
(customers from that population look out of distribution: calibrate on benign traffic).
Per-feature draws (equation solving on each feature's own values, a column-shuffled
Knockoff pool) reach only ``low``: every feature natural and the joint broken is also what a
synthetic test set sends. On a 64-feature input with 34 pure-noise features such draws sit
as close to the reference as natural records do (median k-th neighbour distance 0.62 of the
threshold, natural records 0.65), while every one of them passes the joint threshold
(median 33 times it): the joint count sees them at once, at ``low``. Records drawn from
another distribution altogether (another generator's clusters) cross the kNN threshold
84-98% of the time there, so the kNN test is not blunted by the width itself.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from querywarden.core.atlas import ADVERSARIAL, EXTRACTION
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Evidence, InputKind, Interaction, Severity, Signal
from querywarden.detectors.event_window import fold_events, push_event, share_calibration
from querywarden.detectors.line_search import between
from querywarden.detectors.marginal_tail import MarginalTail
from querywarden.detectors.reference import (
    JointReference,
    KnnReference,
    QuerySpace,
    Reservoir,
    binomial_surprise,
    reference_rows,
    spacing,
)
from querywarden.errors import DetectorError


def _joint_reference(rows: npt.NDArray[np.float64], quantile: float, *, trim: bool = False) -> JointReference | None:
    """The joint-structure test, when the reference has enough rows to estimate a covariance
    and a held-out quantile: more rows than features and at least 32 (a wine reference of 18
    rows in 13 features flags a sixth of benign records), else none."""
    enough = rows.shape[0] >= max(32, rows.shape[1] + 1)
    return JointReference.build(rows, quantile=quantile, trim=trim) if enough else None


_COLUMN_DRAWS = 8
"""Per-column draws per reference row (at most ``_MAX_COLUMN_DRAWS``) that set the column radius."""
_MAX_COLUMN_DRAWS = 4096
_COLUMN_SEED = 20261202
"""Fixed so a snapshot, a replay and a restart all draw the same rows."""


def _column_radius(
    raw: npt.NDArray[np.float64], space: QuerySpace | None, ref: KnnReference | None, quantile: float
) -> float:
    """The ``quantile`` of k-th neighbour distances of rows whose every column is drawn apart
    from the reference's own values: how far per-column synthetic data reaches. Where features
    cluster together (iris's petal length and width), such rows sit beyond the benign kNN
    threshold; up to this radius a far input counts with the joint-structure inputs (``low``)."""
    if space is None or ref is None or raw.ndim != 2 or raw.shape[1] != space.dim:
        return 0.0
    raw = raw[np.isfinite(raw).all(axis=1)]
    if raw.shape[0] < 2:
        return 0.0
    n = min(_MAX_COLUMN_DRAWS, _COLUMN_DRAWS * raw.shape[0])
    rng = np.random.default_rng(_COLUMN_SEED)
    picks = rng.integers(0, raw.shape[0], size=(n, raw.shape[1]))
    rows = space.transform_many(raw[picks, np.arange(raw.shape[1])])
    c = rows - ref.mean
    proj = c @ ref.components.T
    residual = np.sqrt(np.maximum(np.einsum("ij,ij->i", c, c) - np.einsum("ij,ij->i", proj, proj), 0.0))
    e = np.column_stack([proj, residual])  # ``KnnReference.embed`` of every row at once
    d2 = np.einsum("ij,ij->i", e, e)[:, None] + ref.sq_norms[None, :] - 2.0 * (e @ ref.points.T)
    k = min(ref.k, ref.points.shape[0]) - 1
    kth = np.sqrt(np.maximum(np.partition(d2, k, axis=1)[:, k], 0.0))
    return float(np.quantile(kth, quantile))


def _split(st: _State) -> _Events:
    """The principal's joint-structure ring, made on its first joint-only odd input.

    Until then every query pushed the same flag to both rings, so the new ring starts as a
    copy of the out-of-distribution one: principals that never send such an input (nearly
    all) hold one ring, not two. Without its own ring a principal's joint count equals its
    out-of-distribution count, which the stricter ``medium`` test has already judged."""
    if st.joint is None:
        ev = st.joint = _Events()
        ev.flags = None if st.flags is None else st.flags.copy()
        ev.pos, ev.n, ev.count = st.pos, st.n, st.count
    return st.joint


_FLOORS = (6.0, 0.25)
"""The shipped ``surprise`` and ``min_share``: calibration never sets laxer ones."""


class _Events:
    """A ring of 0/1 events (see ``event_window``): here, the joint-structure test's."""

    __slots__ = ("count", "flags", "n", "pos", "worst_share", "worst_surprise")

    def __init__(self) -> None:
        self.flags: npt.NDArray[np.uint8] | None = None
        self.pos = 0
        self.n = 0
        self.count = 0
        self.worst_share = 0.0
        self.worst_surprise = 0.0


class _State:
    __slots__ = (
        "anchor",
        "count",
        "far",
        "flags",
        "joint",
        "last_joint",
        "level",
        "lines",
        "n",
        "near_far",
        "novel",
        "novel_n",
        "pos",
        "worst_share",
        "worst_surprise",
    )

    def __init__(self) -> None:
        self.flags: npt.NDArray[np.uint8] | None = None
        self.pos = 0
        self.n = 0
        self.count = 0
        self.novel: npt.NDArray[np.float64] | None = None
        self.novel_n = 0
        self.level = Severity.INFO
        self.worst_surprise = 0.0
        self.worst_share = 0.0
        self.joint: _Events | None = None  # split from the ring above at the first joint-only odd input
        self.last_joint: npt.NDArray[np.float64] | None = None  # raw features of the last joint-only odd input
        self.anchor: npt.NDArray[np.float64] | None = None  # the last input near the reference (read-only, shared)
        self.far = 0  # far inputs over the principal's life
        self.lines = 0  # how many of them lay between two earlier inputs (a line search)
        self.near_far: list[npt.NDArray[np.float64]] = []  # its last few far inputs (read-only, shared)

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        """Restore a snapshot, with defaults for what a snapshot from an older version lacks."""
        self.__init__()  # type: ignore[misc]
        for name, value in state[1].items():
            if name in self.__slots__:
                setattr(self, name, value)


_LINE_SHARE = 10
"""A principal with at least ``_MIN_LINES`` far inputs on line searches, one in this many or
more of its far inputs, is named an evasion attack: HopSkipJump bisects between each random
start and its target (a sixth of its far queries on wine, the rest gradient probes around
the boundary point), the Boundary attack steps back along a line after each batch of random
draws (a third); extraction's independent draws lie on no line but by accident."""
_MIN_LINES = 3


_NEAR_FAR = 4
"""Far inputs remembered per principal as ends of a line search, besides the new ones."""


class OodDetector(Detector):
    name = "ood"
    technique = EXTRACTION
    description = "share of a principal's distinct inputs far from the benign reference sample"
    needs = frozenset({"features"})
    _joint: JointReference | None = None  # a snapshot from before the joint test restores without one
    _tail: MarginalTail | None = None  # nor one from before the marginal tail test
    _column_radius = 0.0  # nor one from before the per-column radius

    def __init__(
        self,
        *,
        profile: ModelProfile,
        surprise: float = 6.0,
        min_share: float = 0.25,
        min_queries: int = 20,
        window: int = 128,
        quantile: float = 0.99,
        k: int = 3,
        novelty_fraction: float = 0.5,
        novelty_memory: int = 16,
        edit_share: float = 0.25,
        tail_margin: float = 0.05,
        warmup: int = 1000,
        warmup_per_principal: int = 50,
        max_dims: int = 64,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if surprise <= 0 or not 0 < min_share <= 1 or not 0 < quantile < 1:
            raise DetectorError("ood: surprise > 0, 0 < min_share <= 1 and 0 < quantile < 1 are required")
        if min_queries < 1 or window < min_queries or k < 1 or novelty_memory < 1:
            raise DetectorError("ood: min_queries >= 1, window >= min_queries, k >= 1 and novelty_memory >= 1")
        if not 0 <= edit_share < 1:
            raise DetectorError("ood: 0 <= edit_share < 1 is required")
        if tail_margin < 0:
            raise DetectorError("ood: tail_margin >= 0 is required")
        if warmup < 2 * k + 2 or warmup_per_principal < 1:
            raise DetectorError("ood: warmup must be at least 2k + 2 and warmup_per_principal must be >= 1")
        self.surprise = surprise
        self.min_share = min_share
        self.min_queries = min_queries
        self.window = window
        self.quantile = quantile
        self.k = k
        self.novelty_fraction = novelty_fraction
        self.novelty_memory = novelty_memory
        self.edit_share = edit_share
        self.tail_margin = tail_margin
        self.warmup = warmup
        self.warmup_per_principal = warmup_per_principal
        self.max_dims = max_dims
        self.max_principals = max_principals
        self._space = QuerySpace.from_profile(profile, max_dims=max_dims)
        self._reference: KnnReference | None = None
        self._reservoir: Reservoir | None = None
        rows = reference_rows(profile, self._space) if self._space is not None else None
        self._novelty_radius = novelty_fraction * spacing(rows, self._space.out_dim if self._space else 1)
        if rows is not None and rows.shape[0] >= 2 * k + 2:
            self._reference = KnnReference.build(rows, k=k, quantile=quantile)
            self._joint = _joint_reference(rows, quantile) if profile.input_kind != InputKind.IMAGE else None
            self._tail = self._tail_reference(profile)
            if self._tail is not None:
                self._column_radius = _column_radius(
                    np.asarray(profile.reference, dtype=np.float64), self._space, self._reference, quantile
                )
        elif self._space is not None:
            self._reservoir = Reservoir(capacity=warmup, per_principal=warmup_per_principal)
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)

    @property
    def reference(self) -> KnnReference | None:
        """The benign reference in use (None while warming up from traffic)."""
        return self._reference

    def update(self, interaction: Interaction) -> list[Signal]:
        space = self._space
        if space is None:
            return []
        z = space.transform_of(interaction)
        if z is None:
            return []
        ref = self._reference
        if ref is None:
            self._warm(interaction.principal, z)
            return []
        st = self._states.get(interaction.actor or interaction.principal)
        e = ref.embed(z)
        joint = self._joint
        tail = self._tail
        near = ref.within(e, ref.threshold)
        columns = not near and ref.within(e, self._column_radius)  # no farther than per-column draws go
        if (near or columns) and (tail is None or not tail.far(interaction.features)):
            st.anchor = z  # where an evasion attack's line searches end
            if not columns and (joint is None or joint.score(z) <= joint.threshold):
                push_event(st, 0, self.window)
                if st.joint is not None:
                    push_event(st.joint, 0, self.window)
                return []
            ev = _split(st)  # before the shared ring takes this query's 0
            push_event(st, 0, self.window)
            if self._edit(st, interaction.features) or not self._novel(st, z):
                return []
            push_event(ev, 1, self.window)
            return self._judge_joint(interaction, st, ref, joint, z)
        dist = ref.distance(e)
        st.far = getattr(st, "far", 0) + 1  # a snapshot from before the slot existed has none
        st.lines = getattr(st, "lines", 0) + self._on_line(st, z)
        if not self._novel(st, z):
            return []
        push_event(st, 1, self.window)
        if st.joint is not None:
            push_event(st.joint, 1, self.window)
        if st.n < self.min_queries:
            return []
        share = st.count / st.n
        rate = self._far_rate(ref)
        surprise = binomial_surprise(st.count, st.n, rate)
        st.worst_share = max(st.worst_share, share)
        st.worst_surprise = max(st.worst_surprise, surprise)
        if surprise < self.surprise or share < self.min_share:
            return self._judge_joint(interaction, st, ref, joint, z) if joint is not None else []  # see _split
        full = st.n >= self.window
        level = Severity.HIGH if full and share >= min(1.0, 2 * self.min_share) else Severity.MEDIUM
        if level <= st.level:
            return []
        st.level = level
        score = min(1.0, 0.5 + 0.5 * share * min(1.0, surprise / (4 * self.surprise)))
        evidence: Evidence = {
            "ood_queries": st.count,
            "window_queries": st.n,
            "ood_share": round(share, 4),
            "expected_share": round(rate, 4),
            "surprise": round(surprise, 2),
            "distance": round(dist, 4),
            "threshold": round(ref.threshold, 4),
            "line_search_share": round(st.lines / max(1, st.far), 4),
        }
        if tail is not None and interaction.features is not None:
            evidence["tail_features"] = tail.count(interaction.features)
            evidence["tail_min_count"] = tail.min_count
        technique = EXTRACTION
        if st.lines >= _MIN_LINES and st.lines * _LINE_SHARE >= st.far:
            # far random starts bisected towards a real input: an evasion attack finding its boundary
            technique = ADVERSARIAL
            evidence["runner_up"] = EXTRACTION
        return [self.signal(interaction, score=score, severity=level, evidence=evidence, technique=technique)]

    def _on_line(self, st: _State, z: npt.NDArray[np.float64]) -> bool:
        """True when the far input ``z`` lies between two earlier inputs of the principal: its
        last input near the reference, its last few far ones and its remembered new far ones
        (see ``line_search``); then remembers ``z`` among the last far ones."""
        recent = getattr(st, "near_far", None)
        if recent is None:
            recent = st.near_far = []
        rows = list(recent)
        anchor = getattr(st, "anchor", None)
        if anchor is not None:
            rows.append(anchor)
        if st.novel is not None:
            rows.extend(st.novel[: min(st.novel_n, self.novelty_memory)])
        on = len(rows) >= 2 and between(z, np.vstack(rows))
        recent.append(z)
        if len(recent) > _NEAR_FAR:
            del recent[0]
        return on

    def _judge_joint(
        self,
        interaction: Interaction,
        st: _State,
        ref: KnnReference,
        joint: JointReference | None,
        z: npt.NDArray[np.float64],
    ) -> list[Signal]:
        """``low`` when the window's inputs off the reference by either test cross the bars.

        Features each natural but combined as no benign record combines them: equation
        solving on per-feature draws, and a synthetic test set built the same way. The
        traffic is the same, so this is reported, not judged an attack."""
        ev = st.joint
        if ev is None or ev.n < self.min_queries or st.level >= Severity.LOW:
            return []
        rate = min(1.0, self._far_rate(ref) + (joint.expected_rate if joint is not None else 0.0))
        share = ev.count / ev.n
        surprise = binomial_surprise(ev.count, ev.n, rate)
        ev.worst_share = max(ev.worst_share, share)
        ev.worst_surprise = max(ev.worst_surprise, surprise)
        if surprise < self.surprise or share < self.min_share:
            return []
        st.level = Severity.LOW
        evidence: Evidence = {
            "pattern": "joint_structure",
            "ood_queries": ev.count,
            "window_queries": ev.n,
            "ood_share": round(share, 4),
            "expected_share": round(rate, 4),
            "surprise": round(surprise, 2),
        }
        if joint is not None:
            evidence["joint_distance"] = round(math.sqrt(joint.score(z)), 4)
            evidence["joint_threshold"] = round(math.sqrt(joint.threshold), 4)
        return [self.signal(interaction, score=min(0.5, 0.25 + 0.25 * share), severity=Severity.LOW, evidence=evidence)]

    def _far_rate(self, ref: KnnReference) -> float:
        """The share of benign queries far by either per-query test (kNN or marginal tail)."""
        tail = self._tail
        return min(1.0, ref.expected_rate + (tail.expected_rate if tail is not None else 0.0))

    def _tail_reference(self, profile: ModelProfile) -> MarginalTail | None:
        """The marginal tail test on the declared reference's raw features (tabular only:
        pixels at an image's border are blank in every reference image, and any stroke there
        would count)."""
        if profile.input_kind == InputKind.IMAGE or profile.reference is None:
            return None
        raw = np.asarray(profile.reference, dtype=np.float64)
        if raw.ndim != 2 or self._space is None or raw.shape[1] != self._space.dim:
            return None
        raw = raw[np.isfinite(raw).all(axis=1)]
        return MarginalTail.build(raw, margin=self.tail_margin, alpha=1.0 - self.quantile)

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        self._states.fold(actor, parts, self._fold)

    def _fold(self, into: _State, other: _State) -> None:
        """Add another principal's window and recent out-of-distribution inputs to an actor's."""
        if other.joint is not None or into.joint is not None:  # before the shared ring takes other's flags
            fold_events(_split(into), other.joint if other.joint is not None else other, self.window)
        fold_events(into, other, self.window)
        if other.novel is not None:
            filled = min(other.novel_n, self.novelty_memory)
            for z in other.novel[:filled]:
                if into.novel is None:
                    into.novel = np.zeros_like(other.novel)
                into.novel[into.novel_n % self.novelty_memory] = z
                into.novel_n += 1
        into.level = max(into.level, other.level)
        into.far = getattr(into, "far", 0) + getattr(other, "far", 0)
        into.lines = getattr(into, "lines", 0) + getattr(other, "lines", 0)
        if getattr(into, "anchor", None) is None:
            into.anchor = getattr(other, "anchor", None)

    def _edit(self, st: _State, features: npt.NDArray[np.float64] | None) -> bool:
        """Remember ``features``; True when they differ from the last joint-only odd input in at
        most ``edit_share`` of the features: a what-if edit of one record, not a new input.

        A customer editing one or two fields at a time, copied from other records, drifts
        into combinations no record holds; each step still changes only those fields, while
        per-feature draws change nearly every one."""
        if features is None:
            return False
        last = st.last_joint
        st.last_joint = features.copy()
        if last is None or last.shape != features.shape:
            return False
        changed = int(np.count_nonzero(last != features))
        return changed <= self.edit_share * int(features.shape[0])

    def _novel(self, st: _State, z: npt.NDArray[np.float64]) -> bool:
        """Remember ``z``; True unless it is a variant of a recent out-of-distribution input.

        Compared in the full feature space: the reference embedding folds everything off the
        benign subspace into one coordinate, where two different noise inputs look alike."""
        mem = st.novel
        if mem is None:
            mem = st.novel = np.zeros((self.novelty_memory, z.shape[0]), dtype=np.float64)
        filled = min(st.novel_n, self.novelty_memory)
        if filled:
            diff = mem[:filled] - z
            nearest = math.sqrt(float(np.einsum("ij,ij->i", diff, diff).min()))
            if nearest <= self._novelty_radius:
                return False
        mem[st.novel_n % self.novelty_memory] = z
        st.novel_n += 1
        return True

    def _warm(self, principal: str, z: npt.NDArray[np.float64]) -> None:
        res = self._reservoir
        if res is None:
            return
        res.offer(principal, z)
        if len(res) >= self.warmup:
            rows = res.rows()
            self._reference = KnnReference.build(rows, k=self.k, quantile=self.quantile, trim=True)
            if self.profile.input_kind != InputKind.IMAGE:
                self._joint = _joint_reference(rows, self.quantile, trim=True)
            self._novelty_radius = self.novelty_fraction * spacing(rows, rows.shape[1])
            res.release()
            self._reservoir = None

    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        return share_calibration((st for _, st in self._states.items()), self.min_queries, _FLOORS)
