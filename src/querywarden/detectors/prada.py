"""PRADA-style query-distribution test: synthetic extraction queries are spaced unnaturally.

For every principal and every predicted class, each new query's distance to the nearest of
that principal's earlier queries of the same class is recorded (features range-normalised
through the profile, so every feature counts alike). Natural inputs give nearest-neighbour
distances whose logarithm is close to normally distributed. Synthetic extraction queries do
not: Jacobian-based augmentation (Papernot et al.) puts each new query one fixed step from
its parent, so its distances pile up on a spike beside a few natural ones. Every
``test_every`` distances, once ``min_distances`` are held, the Shapiro-Wilk statistic W of
the log distances is computed; W below ``delta`` is the attack pattern.

The same nearest earlier query gives a faster, per-query reading of the augmentation: the
step from it to the new query. A *sign step* (``sign_steps``) changes a quarter or more of
the features, nearly all of those by the same amount (as a share of each feature's range or
in the API's raw units), both ways: ``x + lambda * sign(gradient)``. ``sign_steps`` of them
raise ``medium``, usually within the first augmentation round, long before the W test has
its ``min_distances``; steps under the repeat radius count too (a small lambda moves a
record less than ``dup_fraction`` spacings). Benign edits are not sign steps: a what-if
user changes a field or two, a brightness edit moves every pixel one way, posterised or
re-encoded copies move pixels by whole, varying steps of the value grid (a step of exactly
one grid step is never counted). The test reads single features, so it is off for inputs
wider than ``max_dims`` (projected).

Repeats (closer than ``dup_fraction`` of the benign nearest-neighbour spacing to an earlier
query of the class) are neither recorded nor stored: retries, exact duplicates, a what-if
user nudging one field, a record re-sent with a few fields rounded or a few pixels off by one
grey level, and the next frame of one camera are the same sample again, not new samples of
the distribution. At a tenth of the spacing the last two were measured, and their distances
piled up just past the radius like augmentation steps (W 0.64-0.75 on digits); at a fifth
they are repeats and the same customers stay at W >= 0.98. Lightly edited copies of a
photo are larger moves and do count; an app that sends several edits of every photo lowers W
(to about 0.85 in our digits runs), which is why ``delta`` defaults to 0.8 rather than
PRADA's 0.9-0.96 and why it should be calibrated.

With a reference sample, the detector replays it once as a single principal and holds the
threshold ``reference_margin`` below the lowest W it reaches: many one-hot or small-integer
fields put distances on a lattice and W runs low for benign callers too (about 0.68 on
Adult against 0.98 on digits).

Cost per query is bounded: distances are exact against the last ``window`` queries of the
class (one numpy matrix-vector product), and the test runs on the last ``max_distances``.

Measured on digits (64 pixels): natural principals never go below W = 0.94 (breast-cancer
tabular data: 0.94), augmentation with a network-like substitute gives W = 0.2-0.5 at the
first test (100 distances).

State is kept per principal, or per actor once the engine has clustered the principal
into one (``Interaction.actor``). At the merge each key's stored queries and distances move
to the actor (``merge``), so the keys of one Sybil attacker pool everything they sent,
including what they sent before they were linked.

Severities: ``medium`` when W < ``delta`` or at ``sign_steps`` sign steps; ``high`` when W
stays below for ``sustained`` consecutive tests. A signal is emitted only when the level rises.

Blind spots: extraction with natural data (KnockoffNets with in-distribution samples) looks
natural by construction. Uniformly random queries (Tramer et al.) have near-normal distances
in high dimension, and line walks in tiny steps (functionally-equivalent extraction) are
mostly repeats under ``dup_fraction``: both are left to the out-of-distribution detector and
the near-duplicate index. Augmentation with a linear substitute and large steps (every point
of a class moved the same way) gives W near 0.9, but its steps are sign steps. Sign steps are
missed when the attacker steps in units the detector cannot know (standard deviations it
estimated from its own records), adds noise to each step, steps exactly one grid step of
integer-valued inputs, or sends a child from another key than its parent before the keys
are linked. An adaptive attacker interleaves natural queries to dilute the spike, or splits
the work over many keys so that each stays under ``min_distances`` (actor correlation and
the global index answer that).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats

from querywarden.core.atlas import EXTRACTION
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Severity, Signal
from querywarden.detectors.reference import QuerySpace, reference_rows, spacing
from querywarden.detectors.sign_steps import ZERO, StepUnits, sign_step, value_quantum
from querywarden.errors import DetectorError

_F32 = npt.NDArray[np.float32]
_INITIAL_ROWS = 4
_DELTA_CEILING = 0.8
"""The shipped ``delta``: calibration never sets a stricter one."""
_SIGN_STEPS_FLOOR = 8
"""The shipped ``sign_steps``: calibration never sets a stricter one."""
_MAX_CLASSES = 64
"""Class windows held per principal; labels past this share one window (bounds memory)."""
_OVERFLOW = "*"
_REPLAY_ROWS = 600
"""Reference rows replayed to find how low W goes on benign data (see ``_benign_w``)."""


class _ClassWindow:
    """The last ``cap`` queries of one predicted class, grown on demand.

    Rows are held as ``-2 z`` beside ``|z|^2`` so one matrix-vector product and one add give
    every squared distance: ``|q - z|^2 = |z|^2 + (-2 z) . q + |q|^2``.
    """

    __slots__ = ("count", "pos", "rows", "sq")

    def __init__(self, dim: int) -> None:
        self.rows: _F32 = np.zeros((_INITIAL_ROWS, dim), dtype=np.float32)
        self.sq: _F32 = np.zeros(_INITIAL_ROWS, dtype=np.float32)
        self.count = 0
        self.pos = 0

    def nearest(self, z: _F32, zz: float) -> tuple[float, int]:
        """The distance to the nearest stored query, and that query's slot."""
        n = self.count
        d2 = self.rows[:n] @ z
        d2 += self.sq[:n]
        slot = int(d2.argmin())
        return math.sqrt(max(float(d2[slot]) + zz, 0.0)), slot

    def step_from(self, z: _F32, slot: int) -> _F32:
        """``z`` minus the stored query in ``slot`` (stored as ``-2 z``)."""
        out: _F32 = self.rows[slot] * np.float32(0.5)
        out += z
        return out

    def add(self, z: _F32, zz: float, cap: int) -> None:
        size = self.rows.shape[0]
        if self.count == size and size < cap:
            grown = min(cap, size * 2)
            self.rows = np.concatenate([self.rows, np.zeros((grown - size, self.rows.shape[1]), dtype=np.float32)])
            self.sq = np.concatenate([self.sq, np.zeros(grown - size, dtype=np.float32)])
            size = grown
        if self.count < size:
            slot = self.count
            self.count += 1
        else:
            slot = self.pos
            self.pos = (self.pos + 1) % size
        self.rows[slot] = -2.0 * z
        self.sq[slot] = zz

    def held(self) -> tuple[_F32, _F32]:
        """The stored queries, oldest first, as ``(z rows, |z|^2)``."""
        n = self.count
        order = np.arange(n) if n < self.rows.shape[0] else (np.arange(n) + self.pos) % n
        return self.rows[order] * np.float32(-0.5), self.sq[order]


class _State:
    __slots__ = ("below_run", "classes", "dists", "level", "n_dists", "sign_steps", "since_test", "worst_w")

    def __init__(self) -> None:
        self.classes: dict[object, _ClassWindow] = {}
        self.dists: npt.NDArray[np.float64] | None = None
        self.n_dists = 0
        self.since_test = 0
        self.below_run = 0
        self.level = Severity.INFO
        self.worst_w = 1.0
        self.sign_steps = 0

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        """Restore a snapshot, with defaults for what a snapshot from an older version lacks."""
        self.__init__()  # type: ignore[misc]
        for name, value in state[1].items():
            if name in self.__slots__:
                setattr(self, name, value)


class PradaDetector(Detector):
    name = "prada"
    technique = EXTRACTION
    description = "non-normal distribution of each principal's nearest-earlier-query distances per class"
    needs = frozenset({"features"})
    _units: StepUnits | None = None  # a snapshot from before the sign-step count restores without it
    _quantum = 0.0

    def __init__(
        self,
        *,
        profile: ModelProfile,
        delta: float = 0.8,
        min_distances: int = 100,
        test_every: int = 20,
        max_distances: int = 256,
        window: int = 128,
        dup_fraction: float = 0.2,
        sustained: int = 3,
        reference_margin: float = 0.15,
        sign_steps: int = 8,
        max_dims: int = 64,
        max_principals: int = 10_000,
    ) -> None:
        super().__init__(profile=profile)
        if not 0 < delta < 1:
            raise DetectorError("prada: delta must be in (0, 1)")
        if min_distances < 20 or test_every < 1 or max_distances < min_distances or window < 1:
            raise DetectorError(
                "prada: min_distances >= 20, test_every >= 1, max_distances >= min_distances and window >= 1"
            )
        if dup_fraction < 0 or sustained < 1 or max_dims < 1 or sign_steps < 1:
            raise DetectorError(
                "prada: dup_fraction >= 0, sustained >= 1, sign_steps >= 1 and max_dims >= 1 are required"
            )
        self.delta = delta
        self.min_distances = min_distances
        self.test_every = test_every
        self.max_distances = max_distances
        self.window = window
        self.dup_fraction = dup_fraction
        self.sustained = sustained
        self.reference_margin = reference_margin
        self.sign_steps = sign_steps
        self.max_dims = max_dims
        self.max_principals = max_principals
        self._space = QuerySpace.from_profile(profile, max_dims=max_dims)
        rows = reference_rows(profile, self._space) if self._space is not None else None
        dim = self._space.out_dim if self._space is not None else 1
        self._dup_radius = dup_fraction * spacing(rows, dim)
        self._reference_w = self._benign_w(rows) if rows is not None else None
        self._delta = delta if self._reference_w is None else min(delta, self._reference_w - reference_margin)
        # the sign-step test reads single features: off when wide inputs are projected
        space = self._space
        self._units = StepUnits(1.0 / space.scale) if space is not None and space.projection is None else None
        self._quantum = value_quantum(rows) if rows is not None else 0.0
        self._states: PrincipalStates[_State] = PrincipalStates(_State, max_principals)

    def update(self, interaction: Interaction) -> list[Signal]:
        space = self._space
        if space is None:
            return []
        z64 = space.transform_of(interaction)
        if z64 is None:
            return []
        z = space.transform32_of(interaction)
        assert z is not None  # the float64 point exists, so its float32 twin does
        zz = float(z @ z)
        label = _predicted_class(interaction)
        st = self._states.get(interaction.actor or interaction.principal)
        win = st.classes.get(label)
        if win is None and len(st.classes) >= _MAX_CLASSES:
            label = _OVERFLOW  # a model with very many labels: the rest share one window
            win = st.classes.get(label)
        if win is None:
            win = st.classes[label] = _ClassWindow(z.shape[0])
            win.add(z, zz, self.window)
            return []
        d, slot = win.nearest(z, zz)
        out: list[Signal] = []
        if self._units is not None and d > 0.0:
            out = self._step(st, interaction, z, win.step_from(z, slot))
        if d <= self._dup_radius:
            return out  # a repeat of a query already seen: neither a new sample nor stored
        win.add(z, zz, self.window)
        self._record(st, math.log(d))
        st.since_test += 1
        if st.n_dists < self.min_distances or st.since_test < self.test_every:
            return out
        st.since_test = 0
        return out + self._test(st, interaction)

    def _step(self, st: _State, interaction: Interaction, query: _F32, step: _F32) -> list[Signal]:
        """Count a sign step (see ``sign_step``); ``medium`` once ``sign_steps`` are counted."""
        assert self._units is not None
        found = sign_step(query, step, self._quantum, self._units)
        if found is None:
            return []
        st.sign_steps += 1
        if st.sign_steps < self.sign_steps or st.level >= Severity.MEDIUM:
            return []
        st.level = Severity.MEDIUM
        changed = int(np.count_nonzero(np.abs(step) > ZERO))
        return [
            self.signal(
                interaction,
                score=min(1.0, 0.6 + 0.02 * (st.sign_steps - self.sign_steps)),
                severity=Severity.MEDIUM,
                evidence={
                    "pattern": "sign_steps",
                    "sign_steps": st.sign_steps,
                    "threshold": self.sign_steps,
                    "step_share_of_range": round(found[0], 4),
                    "step_units": found[1],
                    "features_changed": changed,
                    "features": int(step.shape[0]),
                },
            )
        ]

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        self._states.fold(actor, parts, self._fold)

    def _fold(self, into: _State, other: _State) -> None:
        """Add another principal's queries and distances to an actor's, as if it had sent them."""
        for label, win in other.classes.items():
            if label not in into.classes and len(into.classes) >= _MAX_CLASSES:
                label = _OVERFLOW
            target = into.classes.get(label)
            rows, sq = win.held()
            if target is None:
                target = into.classes[label] = _ClassWindow(rows.shape[1])
            for z, zz in zip(rows, sq.tolist(), strict=True):
                target.add(z, zz, self.window)
        if other.dists is not None:
            n, cap = other.n_dists, self.max_distances
            held = other.dists[:n] if n <= cap else np.roll(other.dists, -(n % cap))
            for log_d in held.tolist():
                self._record(into, log_d)
        into.since_test += other.since_test
        into.below_run = max(into.below_run, other.below_run)
        into.level = max(into.level, other.level)
        into.worst_w = min(into.worst_w, other.worst_w)
        into.sign_steps += other.sign_steps

    def _record(self, st: _State, log_d: float) -> None:
        buf = st.dists
        cap = self.max_distances
        if buf is None:
            buf = st.dists = np.zeros(min(cap, 32), dtype=np.float64)
        n = st.n_dists
        if n < cap and n == buf.shape[0]:
            buf = st.dists = np.concatenate([buf, np.zeros(min(cap, n * 2) - n)])
        buf[n % cap] = log_d
        st.n_dists = n + 1

    def _test(self, st: _State, interaction: Interaction) -> list[Signal]:
        assert st.dists is not None
        held = st.dists[: min(st.n_dists, self.max_distances)]
        # every distance equal is as far from a natural spread as it gets (and Shapiro-Wilk rejects it)
        w = 0.0 if float(held.max() - held.min()) < 1e-12 else float(stats.shapiro(held).statistic)
        st.worst_w = min(st.worst_w, w)
        if w >= self._delta:
            st.below_run = 0
            return []
        st.below_run += 1
        level = Severity.HIGH if st.below_run >= self.sustained else Severity.MEDIUM
        if level <= st.level:
            return []
        st.level = level
        score = min(1.0, 0.5 + (self._delta - w) / self._delta + 0.1 * (st.below_run - 1))
        return [
            self.signal(
                interaction,
                score=score,
                severity=level,
                evidence={
                    "shapiro_w": round(w, 4),
                    "delta": round(self._delta, 4),
                    "distances": int(held.shape[0]),
                    "classes": len(st.classes),
                    "consecutive_tests_below": st.below_run,
                },
            )
        ]

    def _benign_w(self, rows: npt.NDArray[np.float64]) -> float | None:
        """The lowest W a natural principal reaches, replayed from the reference sample.

        Inputs with many discrete features (one-hot fields, small integer codes) give
        nearest-neighbour distances on a lattice, far from log-normal even for benign
        callers. Replaying the reference as one principal shows how low W goes on this
        model's own benign data; ``delta`` is then held ``reference_margin`` below that.
        """
        order = np.random.default_rng(0).permutation(rows.shape[0])[:_REPLAY_ROWS]
        sample = rows[order].astype(np.float32)
        win = _ClassWindow(sample.shape[1])
        st = _State()
        lowest: float | None = None
        for z in sample:
            zz = float(z @ z)
            if win.count:
                d, _ = win.nearest(z, zz)
                if d <= self._dup_radius:
                    continue
                self._record(st, math.log(d))
                n = min(st.n_dists, self.max_distances)
                if st.n_dists >= self.min_distances and st.n_dists % self.test_every == 0:
                    assert st.dists is not None
                    held = st.dists[:n]
                    w = 0.0 if float(held.max() - held.min()) < 1e-12 else float(stats.shapiro(held).statistic)
                    lowest = w if lowest is None else min(lowest, w)
            win.add(z, zz, self.window)
        return lowest

    def state_size(self) -> int:
        return len(self._states)

    def calibration(self) -> dict[str, Calibration]:
        worst = tuple(st.worst_w for _, st in self._states.items() if st.n_dists >= self.min_distances)
        # calibration may relax delta for a model whose benign W runs low, never tighten it
        # past the shipped default: a few dozen calibrating principals cannot vouch for 0.1%
        steps = tuple(float(st.sign_steps) for _, st in self._states.items())
        return {
            "delta": Calibration(values=worst, alarm_above=False, floor=_DELTA_CEILING),
            # as for delta: calibration may relax the count for a model whose customers make
            # sign steps, never tighten it past the shipped default
            "sign_steps": Calibration(values=steps, alarm_above=True, floor=float(_SIGN_STEPS_FLOOR)),
        }


def _predicted_class(interaction: Interaction) -> int | str | None:
    """The output's label, else the argmax of its probabilities or logits (None without output)."""
    out = interaction.output
    if out is None:
        return None
    if out.label is not None:
        return out.label
    for vec in (out.probabilities, out.scores):
        if vec is not None and vec.size:
            return int(vec.argmax())
    return None
