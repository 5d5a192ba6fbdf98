"""The extraction budget ledger: what each principal and each actor has been given so far.

Model extraction (AML.T0024.002) with natural, in-distribution data looks like customers
scoring records: no pattern to catch, only a growing pile of answers. Every extraction,
whatever its method, has to collect answers, so the ledger keeps the account that the
attack cannot avoid, per principal and per actor (``Interaction.actor``, set by the engine
once principals are clustered; at the merge each key's account is added to the actor's):

- **outputs** received, and how many came as probability vectors rather than labels;
- **precision**: the decimals of the probabilities (rounded outputs disclose less);
- **information disclosed**, in bits: per answer ``log2(classes)`` for the label, plus
  ``decimals * log2(10)`` for each further class probability the answer reveals. It is
  a capacity (an upper bound) that weighs full probability vectors over labels the way
  equation-solving attacks do;
- **output entropy**: the mean Shannon entropy of the probability vectors (answers near the
  decision boundary teach a copy the most);
- **coverage of the input space**: cells of a coarse grid (the queries projected on six fixed
  random directions, each cut at the reference sample's terciles, 729 cells) visited,
  compared with the cells the reference sample occupies; and **coverage of the classes**;
- **the copy the answers allow** (``answer_copy``): the agreement with the model of a
  1-nearest-neighbour copy built from the account's answers, measured leave-one-out and
  weighted by the classes' shares of all the model's answers, and its *skill*: how far that
  agreement goes from the trivial copy's (always the commonest class) towards 1.

The exposure that matters is the moment the answers suffice to rebuild the model: a skill
of ``fidelity`` or more, once the account has learned at least ``fidelity_answers`` distinct
answers (by default the input dimension + 1, fewer than even a linear model needs) raises a
``low`` signal whose evidence says it in words. It does not depend on speed or on the day:
an attacker sending one record an hour crosses it at the same answer count.

Crossing a disclosure threshold raises a ``low`` signal: exposure, not an attack pattern.
The daily threshold is ``daily_bits`` when set (``querywarden calibrate`` sets it from
benign principals' worst days), else learned online: ``factor`` times the ``quantile`` of
completed principal-days, floored at ``min_answers`` full-precision answers. Days that
ended at twice the threshold or more are kept out of that baseline, so the heaviest
callers (an extraction among them) cannot raise the bar they are measured against. Covering ``coverage_share``
of the reference's cells also raises ``low``. The ledger stays ``low``: the risk engine
raises the extraction finding when an attack detector reports the same technique. Each
doubling past the threshold emits another ``low`` signal with the current numbers, so the
finding's evidence plots the budget's progress without a signal per query.

Blind spots: it measures, it does not judge. Natural in-distribution extraction (Knockoff
with natural data) shows *only* as exposure, the same as a large batch customer's: both
hold enough answers for a copy, and the ledger says so for both. An extraction spread over
many keys that are never clustered into an actor shows as many small budgets, each short
of a copy. The 1-NN copy is a yardstick, not the best thief: on one-hot tabular data a
trained copy agrees more, so the crossing comes late there.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from querywarden.core.atlas import EXTRACTION
from querywarden.core.detector import Calibration, Detector, PrincipalStates
from querywarden.core.profile import ModelProfile
from querywarden.core.records import Evidence, Interaction, Severity, Signal, Vector
from querywarden.detectors.answer_copy import AnswerCopy
from querywarden.detectors.reference import QuerySpace, reference_rows
from querywarden.detectors.small_arrays import count_nonzero

DAY = 86_400.0
_DIRECTIONS = 6
_BINS = 3  # cells: 3 ** 6 = 729
_SEED = 20261128
_MAX_DECIMALS = 6
"""Decimals past six add nothing a copy can use from a float32 model: capped."""
_LOG2_10 = math.log2(10.0)
_HIST = 64
_WARMUP = 50
"""Completed benign principal-days before the learned threshold replaces the floor."""
_JUDGE_EVERY = 8
"""A copy's agreement is estimated every this many answers it learns (amortised)."""
_SHARE_LIMIT = 512
"""Answers per account that count towards the population's class shares."""
_RECENT = 16
"""Distinct (input, answer) pairs remembered per principal: a repeat of one discloses nothing new."""


class _Ledger:
    __slots__ = (
        "bits",
        "bits_today",
        "cells",
        "classes",
        "copy_agreement",
        "copy_answers",
        "copy_baseline",
        "copy_signalled",
        "coverage_signalled",
        "day",
        "day_signalled",
        "decimals",
        "entropy",
        "next_mark",
        "outputs",
        "probability_outputs",
        "recent",
        "worst_day",
    )

    def __init__(self) -> None:
        self.outputs = 0
        self.probability_outputs = 0
        self.bits = 0.0
        self.day = -1
        self.bits_today = 0.0
        self.worst_day = 0.0
        self.entropy = 0.0
        self.decimals = -1
        self.cells = 0  # bitmap of grid cells visited
        self.classes = 0  # bitmap of classes answered
        self.day_signalled = False
        self.coverage_signalled = False
        self.copy_signalled = False
        self.copy_agreement = 0.0
        self.copy_answers = 0
        self.copy_baseline = 1.0
        self.next_mark = 0.0
        self.recent: dict[bytes, None] | None = None  # the last distinct (input, answer) pairs


class BudgetLedger(Detector):
    name = "budget"
    technique = EXTRACTION
    description = (
        "extraction budget: outputs, precision, bits disclosed and input/class coverage per principal and actor"
    )
    needs = frozenset({"output"})

    def __init__(
        self,
        *,
        profile: ModelProfile,
        daily_bits: float | None = None,
        quantile: float = 0.999,
        factor: float = 2.0,
        min_answers: int = 2000,
        coverage_share: float = 0.5,
        fidelity: float = 0.8,
        fidelity_answers: int | None = None,
        copy_size: int = 256,
        max_copies: int = 1_000,
        max_principals: int = 100_000,
        max_actors: int = 10_000,
    ) -> None:
        super().__init__(profile=profile)
        if (daily_bits is not None and daily_bits <= 0) or not 0 < quantile < 1 or factor < 1 or min_answers < 1:
            raise ValueError("budget: daily_bits > 0, 0 < quantile < 1, factor >= 1 and min_answers >= 1 are required")
        if not 0 < coverage_share <= 1:
            raise ValueError("budget: 0 < coverage_share <= 1 is required")
        if not 0 < fidelity <= 1 or (fidelity_answers is not None and fidelity_answers < 1):
            raise ValueError("budget: 0 < fidelity <= 1 and fidelity_answers >= 1 are required")
        if copy_size < 1 or max_copies < 1:
            raise ValueError("budget: copy_size >= 1 and max_copies >= 1 are required")
        self.daily_bits = daily_bits
        self.quantile = quantile
        self.factor = factor
        self.min_answers = min_answers
        self.coverage_share = coverage_share
        self.fidelity = fidelity
        self.fidelity_answers = fidelity_answers
        self.copy_size = copy_size
        self.max_copies = max_copies
        self.max_principals = max_principals
        self.max_actors = max_actors
        self._space = QuerySpace.from_profile(profile)
        self._directions: Vector | None = None
        self._edges: Vector | None = None
        self._edge_rows: list[list[float]] = []  # _edges as lists, for one point's cell
        self._reference_cells = 0
        if self._space is not None:
            self._build_grid(reference_rows(profile, self._space))
        self._principals: PrincipalStates[_Ledger] = PrincipalStates(_Ledger, max_principals)
        self._actors: PrincipalStates[_Ledger] = PrincipalStates(_Ledger, max_actors)
        self._copies: PrincipalStates[AnswerCopy] = PrincipalStates(AnswerCopy, max_copies)
        self._answers: dict[int, int] = {}  # the population's answers per class
        self._answered = 0
        self._min_copy = fidelity_answers or (self._space.dim + 1 if self._space is not None else 1)
        self._hist = np.zeros(_HIST, dtype=np.int64)
        self._limit = self._learned_threshold()

    # -- the grid -----------------------------------------------------------------------
    def _build_grid(self, rows: Vector | None) -> None:
        assert self._space is not None
        dim = self._space.out_dim
        rng = np.random.default_rng(_SEED)
        directions = rng.standard_normal((dim, _DIRECTIONS))
        directions /= np.linalg.norm(directions, axis=0)
        self._directions = directions
        if rows is not None and len(rows) >= 3 * _BINS:
            proj = rows @ directions
            self._edges = np.quantile(proj, [1 / 3, 2 / 3], axis=0).T.copy()  # (directions, 2)
            cells = 0
            for c in self._cells_of(proj):
                cells |= 1 << int(c)
            self._reference_cells = cells
        else:  # no reference: terciles of a uniform draw over the unit cube
            centre = 0.5 * directions.sum(axis=0)
            spread = 0.43 * math.sqrt(1 / 12) * np.linalg.norm(directions, axis=0)
            self._edges = np.stack([centre - spread, centre + spread], axis=1)
        self._edge_rows = self._edges.tolist()

    def _cells_of(self, proj: Vector) -> np.ndarray:
        assert self._edges is not None
        digits = (proj[..., None] > self._edges).sum(axis=-1)
        return np.asarray(digits @ (_BINS ** np.arange(_DIRECTIONS)), dtype=np.int64)

    def _cell(self, z: Vector | None) -> int | None:
        """The grid cell of one point (the scalar twin of ``_cells_of``: cheaper for one row)."""
        if z is None or self._directions is None or self._edges is None:
            return None
        cell, weight = 0, 1
        for v, (low, high) in zip((z @ self._directions).tolist(), self._edge_rows, strict=True):
            cell += weight * ((v > low) + (v > high))
            weight *= _BINS
        return cell

    # -- what one answer discloses ------------------------------------------------------
    def _n_classes(self, p: Vector | None) -> int:
        if p is not None:
            return int(p.shape[0])
        return self.profile.n_classes or 2

    def _disclosure(self, interaction: Interaction) -> tuple[float, int, float, int | None, bool] | None:
        """(bits, decimals, entropy, predicted class, has probabilities) of the answer, or None."""
        out = interaction.output
        if out is None:
            return None
        probs = out.probabilities
        if probs is not None and probs.ndim == 1 and probs.shape[0] >= 2:
            logs = np.maximum(probs, 1e-300)
            entropy = -float(np.dot(probs, np.log2(logs, out=logs)))
            if math.isfinite(entropy):
                top = int(probs.argmax())
                return self._told(probs, _decimals(probs, float(probs[top])), entropy, top)
        scores = out.scores
        if scores is not None and scores.ndim == 1 and scores.shape[0] >= 2 and math.isfinite(float(scores.sum())):
            return self._told(scores, _MAX_DECIMALS, 0.0, int(scores.argmax()))
        label = out.label
        if label is None:
            return None
        cls = label if isinstance(label, int) else self._class_index(label)
        return math.log2(self._n_classes(None)), 0, 0.0, cls, False

    @staticmethod
    def _told(p: Vector, decimals: int, entropy: float, top: int) -> tuple[float, int, float, int | None, bool]:
        k = p.shape[0]
        revealed = min(count_nonzero(p), k - 1)  # a Python int: evidence must stay JSON-encodable
        return math.log2(k) + revealed * decimals * _LOG2_10, decimals, entropy, top, True

    def _class_index(self, label: str) -> int | None:
        classes = self.profile.classes
        if classes and label in classes:
            return classes.index(label)
        return None

    # -- the ledger ---------------------------------------------------------------------
    def update(self, interaction: Interaction) -> list[Signal]:
        told = self._disclosure(interaction)
        if told is None:
            return []
        own = self._principals.get(interaction.principal)
        if _repeated(own, interaction):
            return []
        space = self._space  # the query in the ledger's space (None without a usable input)
        z = space.transform_of(interaction) if space is not None else None
        cell = self._cell(z)
        day = math.floor(interaction.ts / DAY)
        signals = []
        cls = told[3]
        if cls is not None and own.outputs < _SHARE_LIMIT:
            self._answers[cls] = self._answers.get(cls, 0) + 1
            self._answered += 1
        self._post(own, told, cell, day, pooled=True)
        # class ids index the copy's per-class counts: an API's odd label ids (negative, huge) are not learned
        learnable = z is not None and cls is not None and 0 <= cls < 4096
        point = space.transform32_of(interaction) if learnable and space is not None else None  # float32, shared
        if point is not None:
            self._learn(own, "p", interaction.principal, point, cls)
        sig = self._judge(interaction, own, "principal", interaction.principal)
        if sig is not None:
            signals.append(sig)
        actor = interaction.actor
        if actor is not None:
            group = self._actors.get(actor)
            self._post(group, told, cell, day, pooled=False)
            if point is not None:
                self._learn(group, "a", actor, point, cls)
            sig = self._judge(interaction, group, "actor", actor)
            if sig is not None:
                signals.append(sig)
        return signals

    def merge(self, actor: str, parts: tuple[str, ...]) -> None:
        """Add each part's account and copy to the actor's: a principal's own (which it keeps,
        its account stays its own) or a former actor's (which is gone)."""
        for part in parts:
            led = self._actors.pop(part)
            copy = self._copies.pop(_copy_key("a", part)) if led is not None else None
            if led is None:
                led = self._principals.peek(part)
                copy = self._copies.peek(_copy_key("p", part))
            if led is None:
                continue
            group = self._actors.get(actor)
            _fold(group, led)
            if copy is not None:
                self._copies.get(_copy_key("a", actor)).absorb(copy, capacity=self.copy_size, index_from=self._min_copy)
                self._estimate(group, "a", actor)

    def _post(
        self,
        led: _Ledger,
        told: tuple[float, int, float, int | None, bool],
        cell: int | None,
        day: int,
        *,
        pooled: bool,
    ) -> None:
        bits, decimals, entropy, cls, probs = told
        if day > led.day:
            if pooled and led.day >= 0 and 0 < led.bits_today < 2 * self.threshold():
                self._hist[min(_HIST - 1, int(math.log2(led.bits_today + 1)))] += 1
                self._limit = self._learned_threshold()
            led.day, led.bits_today, led.day_signalled = day, 0.0, False
        led.outputs += 1
        led.probability_outputs += probs
        led.bits += bits
        led.bits_today += bits
        led.worst_day = max(led.worst_day, led.bits_today)
        led.entropy += entropy
        led.decimals = max(led.decimals, decimals)
        if cell is not None:
            led.cells |= 1 << cell
        if cls is not None and 0 <= cls < 4096:
            led.classes |= 1 << cls

    # -- the copy the answers allow ---------------------------------------------------
    def _learn(self, led: _Ledger, scope: str, subject: str, point: np.ndarray, cls: int | None) -> None:
        assert cls is not None
        if led.copy_signalled:
            return  # the answers already suffice for a copy: nothing left to measure
        copy = self._copies.get(_copy_key(scope, subject))
        if not copy.learn(point, cls, capacity=self.copy_size, index_from=self._min_copy):
            return
        led.copy_answers = copy.learned
        if copy.learned >= self._min_copy and copy.learned % _JUDGE_EVERY == 0:
            self._estimate(led, scope, subject)

    def _estimate(self, led: _Ledger, scope: str, subject: str) -> None:
        copy = self._copies.peek(_copy_key(scope, subject))
        if copy is None or not self._answered:
            return
        shares = {c: n / self._answered for c, n in self._answers.items()}
        led.copy_agreement = copy.agreement(shares)
        led.copy_baseline = max(shares.values())
        led.copy_answers = copy.learned

    @staticmethod
    def copy_skill(led: _Ledger) -> float:
        """How far the copy's agreement is from the trivial copy's (always the commonest
        class: ``copy_baseline``) towards a perfect one, in [0, 1]."""
        if led.copy_baseline >= 1.0:
            return 0.0
        return max(0.0, (led.copy_agreement - led.copy_baseline) / (1.0 - led.copy_baseline))

    def threshold(self) -> float:
        """Bits per day past which a principal's (or actor's) disclosure is signalled."""
        return float(self.daily_bits) if self.daily_bits is not None else self._limit

    def _learned_threshold(self) -> float:
        k = self.profile.n_classes or 2
        floor = self.min_answers * (math.log2(k) + (k - 1) * _MAX_DECIMALS * _LOG2_10)
        total = int(self._hist.sum())
        if total < _WARMUP:
            return floor
        idx = int(np.searchsorted(np.cumsum(self._hist), self.quantile * total))
        return max(floor, self.factor * float(2 ** (idx + 1)))

    def coverage(self, led: _Ledger) -> float:
        """Share of the reference sample's grid cells this account has visited."""
        ref = self._reference_cells
        if not ref:
            return 0.0
        return (led.cells & ref).bit_count() / ref.bit_count()

    def _judge(self, interaction: Interaction, led: _Ledger, scope: str, subject: str) -> Signal | None:
        limit = self.threshold()
        reason = None
        if led.bits_today >= limit and not led.day_signalled:
            led.day_signalled = True
            led.next_mark = 2 * limit
            reason = "daily_bits"
        elif led.day_signalled and led.bits_today >= led.next_mark:
            led.next_mark *= 2
            reason = "daily_bits"
        elif not led.coverage_signalled and self._reference_cells and self.coverage(led) >= self.coverage_share:
            led.coverage_signalled = True
            reason = "coverage"
        elif not led.copy_signalled and led.copy_answers >= self._min_copy and self.copy_skill(led) >= self.fidelity:
            led.copy_signalled = True
            reason = "copy"
        if reason is None:
            return None
        ratio = max(
            led.bits_today / limit, self.coverage(led) / self.coverage_share, self.copy_skill(led) / self.fidelity
        )
        evidence = self.budget(led) | {"scope": scope, "subject": subject, "crossed": reason}
        if reason == "copy":
            evidence["exposure"] = (
                f"{led.copy_answers} answers suffice for a copy with ~{led.copy_agreement:.2f} agreement on "
                f"natural inputs, where always answering the commonest class agrees {led.copy_baseline:.2f} "
                "(a 1-nearest-neighbour copy of the answers, measured leave-one-out)"
            )
        return self.signal(
            interaction,
            score=min(0.5, 0.2 + 0.05 * math.log2(1.0 + ratio)),
            severity=Severity.LOW,
            evidence=evidence,
        )

    def budget(self, led: _Ledger) -> Evidence:
        """The ledger's numbers, as evidence a person (or the console's plot) can read."""
        k = self.profile.n_classes
        return {
            "outputs": led.outputs,
            "probability_outputs": led.probability_outputs,
            "max_precision_decimals": led.decimals,
            "bits_disclosed": round(led.bits, 1),
            "bits_today": round(led.bits_today, 1),
            "daily_threshold_bits": round(self.threshold(), 1),
            "mean_bits_per_answer": round(led.bits / led.outputs, 2) if led.outputs else 0.0,
            "mean_entropy_bits": round(led.entropy / led.probability_outputs, 4) if led.probability_outputs else 0.0,
            "cells_visited": led.cells.bit_count(),
            "reference_cells": self._reference_cells.bit_count(),
            "off_reference_cells": (led.cells & ~self._reference_cells).bit_count(),
            "coverage_share": round(self.coverage(led), 4),
            "classes_seen": led.classes.bit_count(),
            "classes_total": k,
            "copy_agreement": round(led.copy_agreement, 3),
            "copy_baseline": round(led.copy_baseline, 3),
            "copy_skill": round(self.copy_skill(led), 3),
            "copy_answers": led.copy_answers,
            "copy_threshold": self.fidelity,
        }

    def ledger(self, principal: str | None = None, *, actor: str | None = None) -> Evidence | None:
        """Current budget of a principal or an actor, or None when it has none."""
        led = self._actors.peek(actor) if actor is not None else self._principals.peek(principal or "")
        return None if led is None else self.budget(led)

    # -- contract -----------------------------------------------------------------------
    def state_size(self) -> int:
        return len(self._principals) + len(self._actors)

    def copy_bytes(self) -> int:
        """Memory the accounts' copies hold (at most ``max_copies`` times ``copy_size`` rows)."""
        return sum(copy.nbytes() for _, copy in self._copies.items())

    def calibration(self) -> dict[str, Calibration]:
        ledgers = [led for _, led in self._principals.items()]
        out = {"daily_bits": Calibration(tuple(led.worst_day for led in ledgers))}
        if self._reference_cells:
            out["coverage_share"] = Calibration(tuple(self.coverage(led) for led in ledgers), floor=0.05)
        return out


def _decimals(p: Vector, top_p: float) -> int:
    """How many decimals the probabilities carry (capped at ``_MAX_DECIMALS``); ``top_p`` is their largest."""
    top = top_p * 10.0**_MAX_DECIMALS
    if abs(top - round(top)) > 1e-3:
        return _MAX_DECIMALS  # the common case, full precision, told by the top value alone
    scaled = p * 10.0**_MAX_DECIMALS
    if np.abs(scaled - np.rint(scaled)).max() > 1e-3:
        return _MAX_DECIMALS
    for d in range(_MAX_DECIMALS):
        s = p * 10.0**d
        if np.abs(s - np.rint(s)).max() < 1e-9:
            return d
    return _MAX_DECIMALS


def _copy_key(scope: str, subject: str) -> str:
    return f"{scope}\x00{subject}"


def _fold(into: _Ledger, other: _Ledger) -> None:
    """Add a principal's (or a former actor's) account to an actor's, at the merge."""
    into.outputs += other.outputs
    into.probability_outputs += other.probability_outputs
    into.bits += other.bits
    if other.day == into.day:
        into.bits_today += other.bits_today
    elif other.day > into.day:
        into.day, into.bits_today, into.day_signalled = other.day, other.bits_today, False
    into.worst_day = max(into.worst_day, into.bits_today)
    into.entropy += other.entropy
    into.decimals = other.decimals
    into.cells |= other.cells
    into.classes |= other.classes


def _repeated(led: _Ledger, interaction: Interaction) -> bool:
    """True when the principal was given this very answer to this very input recently.

    A monitoring probe that sends one record every minute, or a retry, is told nothing it
    did not know; counting it would make the probe's one answer look like a day's budget.
    A different answer to the same input (a model that samples, or changed) still counts.
    """
    x, out = interaction.features, interaction.output
    if x is None or out is None:
        return False
    h = hashlib.blake2b(x.tobytes(), digest_size=8)  # tobytes is C order whatever the layout
    for part in (out.probabilities, out.scores):
        h.update(b"|" if part is None else part.tobytes())
    h.update(str(out.label).encode())
    key = h.digest()
    seen = led.recent
    if seen is None:
        seen = led.recent = {}
    if key in seen:
        return True
    seen[key] = None
    if len(seen) > _RECENT:
        del seen[next(iter(seen))]
    return False
