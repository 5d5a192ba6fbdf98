"""Membership: a principal testing whether particular records were in the training data.

Membership inference (AML.T0024.000) comes in two black-box forms, and they leave
different traces:

**Label-only probing** (Choquette-Choo et al. 2021; boundary-distance attacks). With only
labels to read, the attacker measures how robust the model's answer is *around* each
candidate record: it sends many perturbations of the candidate (noise, small shifts, or a
HopSkipJump-style walk to the boundary). It cannot avoid this: one label per candidate
says nothing about membership. The trace is a *probe cluster*: many distinct queries
within ``cluster_ratio`` times the natural spacing of one centre. One cluster is an image
app sending edited copies of one photo, or a what-if user; the attack needs one cluster
per candidate, at many candidates far apart. The detector counts clusters that reached
``cluster_size`` distinct queries within the last 4,096 queries, counting only centres at
least one natural spacing apart (an optimiser drifting along a path is one cluster, not
many), and alarms at ``probed_records`` of them.

A sweep is not a probe either: a cluster counts once its probes have moved the record in
more than ``_SWEEP_AXES`` features in all. Sweeping one feature of a few records over a grid
(a sensitivity report, an attribute inversion: ``inversion`` judges those) moves each record
along one axis; noise, shifts and boundary walks move it in many directions.

A record re-sent is not a probe of its neighbourhood: a customer whose systems re-submit
records rounded to fewer digits or converted with float noise sends several distinct
queries within a hair of one record, and on a victim with few reference rows (a wide
natural spacing) a few such records fill a cluster. So a query whose every value is the
principal's previous record's to within ``resubmit_tolerance`` of its own magnitude (and
never more than ``_RANGE_SHARE`` of the feature's range), answered with the same class off
the decision boundary, does not count: it tells the sender nothing it did not know. A
boundary walk's gradient probes are as close, but their answers change class or sit on the
boundary, and those count.

**Confidence reading.** The attacker scores each candidate once and reads the confidence.
On a single pass this is indistinguishable from batch scoring: same shape, same volume,
natural records. The only trace is *which* records: in an evaluation of membership, a
large share of candidates are training records, while real customers mostly send new
ones. When the profile carries ``training_digests``, the detector counts each principal's
distinct queries that are exact training rows and alarms once ``member_hits`` of them make
up at least ``member_share`` of its queries and ``benign_factor`` times the share seen
across principals not flagged.

``medium`` is the crossing, ``high`` four times past it. One signal per rise of level.

Probe clusters at distinct places are not proof of many candidates: one HopSkipJump or
Boundary walk (evasion) lingers at several places more than a natural spacing apart on its
way from its random start to its target. So when the profile carries ``training_digests``,
filled probe clusters are named membership inference only once the principal has queried
``member_records`` distinct exact training rows (its candidate list), and decision-boundary
probing (AML.T0043) before that, with the other named as runner-up in the evidence; a
principal named one way is signalled again under the other when its evidence changes (see
``walk_naming``). Without digests they are named membership inference.

State is kept per principal, or per actor once the engine has clustered the principal
into one (``Interaction.actor``); at the merge each key's clusters and training hits move
to the actor's (``merge``), so candidates probed from many keys add up.

Blind spots: label-only probing whose every probe moves the values by less than
``resubmit_tolerance`` of themselves and keeps the candidate's answer off the boundary (it
then learns nothing either); confidence-reading MIA without training digests; a bank re-scoring its own
customers (its queries *are* training records, so it looks like MIA: raise ``member_share``
for it or leave digests out); label-only probing spread so thinly (few probes per
candidate, or candidates spread over many keys) that no cluster fills; membership
attacks on records the digests do not cover (near-copies of training rows).
"""

from __future__ import annotations

import hashlib
import math
from collections import deque

import numpy as np

from querywarden.core.atlas import MEMBERSHIP
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Evidence, Interaction, Output, Severity, Signal
from querywarden.detectors.inversion import SortedScan
from querywarden.detectors.reference import QuerySpace, reference_rows
from querywarden.detectors.reference import spacing as natural_spacing
from querywarden.detectors.small_arrays import row_sq_norms
from querywarden.detectors.walk_naming import MEMBER_RECORDS, is_training_row, remember, row_digest_of, walk_technique

_HIGH_FACTOR = 4.0
_PROBE_WINDOW = 4096
"""Queries over which filled probe clusters are counted."""
_SEEN = 256
"""Recent distinct queries remembered per principal, to skip retries."""
_PROBES, _MEMBERS = "probe_clusters", "training_records"
_BOUNDARY_MARGIN = 0.3
"""Top-1 minus top-2 probability under which an answer is on the decision boundary (the
``boundary`` detector's default ``margin``)."""
_SWEEP_AXES = 2
"""A probe cluster whose probes moved at most this many features in all is a sweep of them."""
_AXIS_TOLERANCE = 1e-6
"""A scaled feature that moved less than this has not moved (float32 storage)."""
_RANGE_SHARE = 0.02
"""The most a re-submission moves a value, as a share of its feature's range: on a feature far
from zero (a year, a raw sensor offset) a share of the value itself is a real move."""


class _State:
    __slots__ = (
        "axes",
        "centres",
        "counts",
        "digest_queries",
        "filled",
        "hits",
        "levels",
        "members",
        "named",
        "pooled",
        "queries",
        "record",
        "record_class",
        "scan",
        "seen",
        "used",
        "worst",
    )

    def __init__(self) -> None:
        self.queries = 0
        self.record: np.ndarray | None = None  # the record last sent, as re-submissions are compared
        self.record_class: int | str | None = None  # and the class it was answered with
        self.scan = SortedScan()
        self.seen: dict[bytes, None] = {}  # insertion-ordered set of recent query digests
        self.centres: np.ndarray | None = None  # (clusters, dim) float32
        self.counts: list[int] = []
        self.axes: list[frozenset[int] | None] = []  # per cluster: features its probes moved (None: more than two)
        self.used: list[int] = []
        self.filled: deque[tuple[int, np.ndarray]] = deque()  # (query index, centre) of filled clusters
        self.digest_queries = 0
        self.hits = 0
        self.members: tuple[int, ...] = ()  # distinct exact training rows queried
        self.named = ""  # technique the probe clusters were last signalled under
        self.pooled = [0, 0]  # what this principal added to the population counts
        self.levels = [0, 0]  # probes, members: 0 quiet, 2 medium, 3 high
        self.worst = [0.0, 0.0]


class MembershipDetector(Detector):
    name = "membership"
    technique = MEMBERSHIP
    description = "perturbation clusters around many candidate records, and queries of exact training rows"
    needs = frozenset({"features"})

    def __init__(
        self,
        *,
        profile: ModelProfile,
        cluster_ratio: float = 0.5,
        cluster_size: int = 8,
        probed_records: float = 3,
        clusters: int = 32,
        member_hits: int = 20,
        member_share: float = 0.3,
        benign_factor: float = 10.0,
        member_records: int = MEMBER_RECORDS,
        resubmit_tolerance: float = 0.01,
        spacing: float | None = None,
        max_principals: int = 100_000,
    ) -> None:
        super().__init__(profile=profile)
        if cluster_ratio <= 0 or cluster_size < 2 or probed_records < 1 or clusters < 1:
            raise ValueError("membership: cluster_ratio > 0, cluster_size >= 2, probed_records >= 1, clusters >= 1")
        if not 0 <= resubmit_tolerance < 1:
            raise ValueError("membership: 0 <= resubmit_tolerance < 1")
        if member_hits < 1 or not 0 < member_share <= 1 or benign_factor < 1 or member_records < 1:
            raise ValueError(
                "membership: member_hits >= 1, 0 < member_share <= 1, benign_factor >= 1 and member_records >= 1"
            )
        self.cluster_ratio = cluster_ratio
        self.cluster_size = cluster_size
        self.probed_records = probed_records
        self.clusters = clusters
        self.member_hits = member_hits
        self.member_share = member_share
        self.benign_factor = benign_factor
        self.member_records = member_records
        self.resubmit_tolerance = resubmit_tolerance
        self.spacing = spacing
        self.max_principals = max_principals
        self._space = QuerySpace.from_profile(profile)
        self._spacing = 1.0
        self._range_cap = np.zeros(0)
        if self._space is not None:
            self._range_cap = _RANGE_SHARE / self._space.scale
            rows = reference_rows(profile, self._space)
            self._spacing = spacing if spacing else natural_spacing(rows, self._space.dim)
        self._population = [0, 0]  # distinct queries and training hits of principals not flagged
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)

    @property
    def _digests(self) -> np.ndarray | None:
        """The profile's training digests (read from the profile, so snapshots do not carry them)."""
        digests = self.profile.training_digests
        return None if digests is None or len(digests) == 0 else np.asarray(digests, dtype=np.uint64)

    def update(self, interaction: Interaction) -> list[Signal]:
        x = interaction.features
        space = self._space
        z = space.transform_of(interaction) if space is not None else None
        if z is None or x is None or space is None:
            return []
        st = self._states.get(interaction.actor or interaction.principal)
        key = hashlib.blake2b(x.tobytes(), digest_size=8).digest()
        if key in st.seen:
            st.record, st.record_class = _own(x), _class(interaction.output)  # re-submissions are compared with it
            return []  # retries and exact duplicates are not probes
        st.seen[key] = None
        if len(st.seen) > _SEEN:
            del st.seen[next(iter(st.seen))]
        st.queries += 1
        changed = False if st.scan.scanning(x) else self._probe(st, interaction, space.transform32_of(interaction))
        digests = self._digests
        if digests is not None:
            changed = self._count_member(st, digests, row_digest_of(interaction)) or changed
        return self._judge(interaction, st) if changed else []

    # -- label-only probing -------------------------------------------------------------
    def _probe(self, st: _State, interaction: Interaction, zf: np.ndarray | None) -> bool:
        """Place the query (``zf`` its float32 point, read-only) in a probe cluster; True when a
        cluster just filled."""
        assert zf is not None  # the float64 point exists, so its float32 twin does
        x = interaction.features
        assert x is not None
        record, record_class = st.record, st.record_class
        st.record, st.record_class = _own(x), _class(interaction.output)
        axes = _axes(st)
        if st.centres is None:
            st.centres = zf[None, :].copy()
            st.counts.append(1)
            st.used.append(st.queries)
            axes.append(frozenset())
            return False
        diff = st.centres - zf
        d2 = row_sq_norms(diff)
        k = int(d2.argmin())
        radius = self.cluster_ratio * self._spacing
        if d2[k] > radius * radius:
            if len(st.counts) < self.clusters:
                st.centres = np.concatenate((st.centres, zf[None, :]))  # vstack's checks cost more than the copy
                st.counts.append(1)
                st.used.append(st.queries)
                axes.append(frozenset())
            else:
                k = st.used.index(min(st.used))
                st.centres[k] = zf
                st.counts[k] = 1
                st.used[k] = st.queries
                axes[k] = frozenset()
            return False
        st.used[k] = st.queries
        if (
            record is not None
            and same_record(x, record, self.resubmit_tolerance, self._range_cap)
            and same_answer(interaction.output, record_class)
        ):
            # the record again, rounded or converted, and answered the same: nothing new about its neighbourhood
            st.record, st.record_class = record, record_class
            return False
        st.counts[k] += 1
        moved = axes[k]
        if moved is not None:
            along = np.flatnonzero(np.abs(diff[k]) > _AXIS_TOLERANCE)
            moved = axes[k] = None if along.shape[0] > _SWEEP_AXES else moved | frozenset(along.tolist())
            if moved is not None and len(moved) > _SWEEP_AXES:
                moved = axes[k] = None
        if st.counts[k] != self.cluster_size or moved is not None:
            # a cluster whose probes all move the same one or two features is a sweep of those
            # features (a sensitivity curve, an attribute inversion: ``inversion`` judges it),
            # not a probe of the record's neighbourhood, which moves it in many directions
            return False
        centre = st.centres[k].copy()
        while st.filled and st.queries - st.filled[0][0] >= _PROBE_WINDOW:
            st.filled.popleft()
        for _, other in st.filled:
            if float(np.linalg.norm(other - centre)) < self._spacing:
                return False  # the same region again: a drifting optimiser, not a new candidate
        st.filled.append((st.queries, centre))
        if len(st.filled) > _HIGH_FACTOR * self.probed_records:
            st.filled.popleft()
        st.worst[0] = max(st.worst[0], float(self._probed(st)))
        return True

    def _probed(self, st: _State) -> int:
        """Filled clusters at distinct centres within the last ``_PROBE_WINDOW`` queries."""
        return sum(1 for q, _ in st.filled if st.queries - q < _PROBE_WINDOW)

    # -- confidence reading on training records -----------------------------------------
    def _count_member(self, st: _State, digests: np.ndarray, key: int) -> bool:
        hit = is_training_row(digests, key)
        st.digest_queries += 1
        st.hits += hit
        if hit:
            st.members = remember(st.members, key)
        if st.levels[1] == 0 and st.levels[0] == 0:
            self._population[0] += 1
            self._population[1] += hit
            st.pooled[0] += 1
            st.pooled[1] += hit
        if st.hits >= self.member_hits:
            st.worst[1] = max(st.worst[1], st.hits / st.digest_queries)
        return hit

    def benign_share(self, st: _State | None = None) -> float:
        """The share of exact training rows in the queries of principals not flagged
        (other than ``st``'s own, so a principal is never compared with itself)."""
        total, hits = self._population
        if st is not None:
            total, hits = total - st.pooled[0], hits - st.pooled[1]
        return hits / total if total > 0 else 0.0

    def _share_threshold(self, st: _State) -> float:
        return min(1.0, max(self.member_share, self.benign_factor * self.benign_share(st)))

    # -- actors -------------------------------------------------------------------------
    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        self._states.fold(actor, parts, self._fold)

    def _fold(self, into: _State, other: _State) -> None:
        """Add another principal's queries, probe clusters and training hits to an actor's.

        Query indices are the other's counted back from the actor's latest query; a filled
        cluster at a centre the actor already filled is the same candidate, counted once."""
        shift = into.queries - other.queries
        for key in other.seen:
            into.seen[key] = None
        while len(into.seen) > _SEEN:
            del into.seen[next(iter(into.seen))]
        if other.centres is not None:
            into_axes, other_axes = _axes(into), _axes(other)
            for k, centre in enumerate(other.centres):
                row = centre[None, :]
                if into.centres is None or len(into.counts) < self.clusters:
                    into.centres = row.copy() if into.centres is None else np.vstack([into.centres, row])
                    into.counts.append(other.counts[k])
                    into.used.append(other.used[k] + shift)
                    into_axes.append(other_axes[k])
                    continue
                old = into.used.index(min(into.used))
                if into.used[old] < other.used[k] + shift:
                    into.centres[old] = centre
                    into.counts[old], into.used[old] = other.counts[k], other.used[k] + shift
                    into_axes[old] = other_axes[k]
        for q, centre in other.filled:
            if all(float(np.linalg.norm(c - centre)) >= self._spacing for _, c in into.filled):
                into.filled.append((q + shift, centre))
        if len(into.filled) > _HIGH_FACTOR * self.probed_records:
            ordered = sorted(into.filled, key=lambda item: item[0])
            into.filled = deque(ordered[-int(_HIGH_FACTOR * self.probed_records) :])
        into.digest_queries += other.digest_queries
        into.hits += other.hits
        for member in other.members:
            into.members = remember(into.members, member)
        into.pooled = [a + b for a, b in zip(into.pooled, other.pooled, strict=True)]
        into.levels = [max(a, b) for a, b in zip(into.levels, other.levels, strict=True)]
        into.worst = [max(a, b) for a, b in zip(into.worst, other.worst, strict=True)]

    # -- judging ------------------------------------------------------------------------
    def _judge(self, interaction: Interaction, st: _State) -> list[Signal]:
        share = st.hits / st.digest_queries if st.digest_queries else 0.0
        share_bar = self._share_threshold(st)
        probed = self._probed(st)
        probes_level = _level(probed, self.probed_records)
        members_level = 0
        if st.hits >= self.member_hits and share >= share_bar:
            high = st.hits >= _HIGH_FACTOR * self.member_hits and share >= min(1.0, 2 * share_bar)
            members_level = int(Severity.HIGH if high else Severity.MEDIUM)
        has_digests = self._digests is not None
        technique, runner_up = walk_technique(
            len(st.members), digests=has_digests, many_sites=True, member_records=self.member_records
        )
        renamed = probes_level > 0 and probes_level == st.levels[0] and technique != st.named
        rises = [(lvl, i) for i, lvl in enumerate((probes_level, members_level)) if lvl > st.levels[i]]
        if renamed:
            rises.append((probes_level, 0))  # the same clusters, now with the evidence of the other technique
        st.levels = [max(st.levels[0], probes_level), max(st.levels[1], members_level)]
        if not rises:
            return []
        level, pattern = max(rises)
        if pattern == 0:
            st.named = technique
        else:
            technique, runner_up = MEMBERSHIP, ""
        evidence: Evidence = {
            "pattern": (_PROBES, _MEMBERS)[pattern],
            "queries": st.queries,
            "probe_clusters": probed,
            "cluster_size": self.cluster_size,
            "probed_records_threshold": self.probed_records,
            "cluster_radius": round(self.cluster_ratio * self._spacing, 6),
        }
        if has_digests:
            evidence.update(
                training_hits=st.hits,
                training_records=len(st.members),
                training_share=round(share, 4),
                share_threshold=round(share_bar, 4),
                benign_share=round(self.benign_share(st), 6),
            )
        if runner_up:
            evidence["runner_up"] = runner_up
        ratio = probed / self.probed_records if pattern == 0 else st.hits / self.member_hits
        score = min(1.0, 0.5 + 0.1 * math.log2(1.0 + ratio))
        return [self.signal(interaction, score=score, severity=Severity(level), evidence=evidence, technique=technique)]

    # -- contract -----------------------------------------------------------------------
    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        worst = [st.worst for _, st in self._states.items()]
        out = {"probed_records": Calibration(tuple(w[0] for w in worst), floor=2.0)}
        if self._digests is not None:
            # never below the shipped default: real data holds duplicate rows, so held-out
            # batches hit a few exact training records (6% of one Adult batch job) by chance
            out["member_share"] = Calibration(tuple(w[1] for w in worst), floor=self.defaults()["member_share"])
        return out


def _axes(st: _State) -> list[frozenset[int] | None]:
    """The per-cluster moved features, kept in step with ``counts`` (a snapshot from before
    they were kept has none: its clusters count as moved in many directions)."""
    axes = getattr(st, "axes", None)
    if axes is None:
        axes = st.axes = []
    while len(axes) < len(st.counts):
        axes.append(None)
    return axes


def same_record(x: np.ndarray, record: np.ndarray, tolerance: float, cap: np.ndarray) -> bool:
    """True when every value of ``x`` is ``record``'s to within ``tolerance`` of its own
    magnitude and at most ``cap`` (raw units, per feature): the record re-sent, rounded to
    fewer digits or converted with float noise."""
    bound = np.minimum(tolerance * np.maximum(np.abs(x), np.abs(record)), cap)
    return bool(np.all(np.abs(x - record) <= bound))


def same_answer(output: Output | None, record_class: int | str | None) -> bool:
    """True when ``output`` is the class the record was answered with, off the decision boundary
    (a margin of ``_BOUNDARY_MARGIN`` or more when probabilities are given): a changed answer,
    or one on the boundary, tells the sender something about the neighbourhood."""
    if _class(output) != record_class:
        return False
    margin = None if output is None else output.margin()
    return margin is None or margin >= _BOUNDARY_MARGIN


def _class(output: Output | None) -> int | str | None:
    return None if output is None else output.predicted_class()


def _own(x: np.ndarray) -> np.ndarray:
    """``x``, or a copy when it is a view (a row of a batch): a kept view would keep the batch."""
    return x if x.base is None else x.copy()


def _level(value: float, threshold: float) -> int:
    if value >= _HIGH_FACTOR * threshold:
        return int(Severity.HIGH)
    if value >= threshold:
        return int(Severity.MEDIUM)
    return 0
