"""The benchmark's contract: victims, the queries an attack sends, and how well it did.

Everything the benchmark scores is built on three records:

- a :class:`Victim` is a model trained at bench time, reachable only through a black-box
  ``predict_proba``, with the data splits needed to train it, to feed benign traffic and
  to score attacks;
- a :class:`Query` is one row an attacker sent and what came back;
- an :class:`AttackRun` is the ordered list of queries one attack sent to one victim,
  plus a way to measure the attacker's success from any prefix of those queries.

Scoring from a prefix is what lets the benchmark answer "how much had the attacker
already won when we caught them?": ``run.success_at(queries_at_detection)`` against
``run.success_at(run.budget)``.

Attack implementations live in :mod:`querywarden.bench.attacks`; this module reaches
them lazily through :func:`run_attack` and :func:`attack_names`, so the contract can be
imported without loading ART.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from querywarden.core.atlas import technique as atlas_technique
from querywarden.core.profile import ModelProfile
from querywarden.core.records import InputKind, Vector
from querywarden.errors import QueryWardenError

Matrix = npt.NDArray[np.float64]
"""An ``(n, d)`` float64 array: rows are inputs (images flattened row-major)."""

Scale = Literal["ci", "full"]
"""``ci`` keeps every attack small enough for the test suite; ``full`` is the published run."""

Family = Literal["iterative", "synthetic", "natural", "ood", "membership", "attribute"]
"""How an attack's traffic looks, which decides which detectors should see it:

- ``iterative``: many small steps around a few points (HopSkipJump, Boundary, MI-Face,
  label-only membership inference);
- ``synthetic``: inputs the attacker made up, off the data manifold (Tramèr, Papernot, FEE);
- ``natural``: unmodified in-distribution records (Knockoff/Copycat with natural data);
- ``ood``: real-looking records from another distribution (Knockoff with an OOD pool);
- ``membership``: one pass over candidate records to score them;
- ``attribute``: records that differ only in a sensitive attribute.
"""

SCALES: tuple[Scale, ...] = ("ci", "full")
FAMILIES: tuple[Family, ...] = ("iterative", "synthetic", "natural", "ood", "membership", "attribute")


class BenchError(QueryWardenError):
    """A benchmark victim or attack was asked for something it cannot do."""


class QueryBudgetExceeded(BenchError):
    """An attack tried to send more queries than its cap allows.

    Attacks whose cost is unbounded (FEE walks lines until it converges) are stopped this
    way; the queries sent before the cap stay recorded.
    """


class QueryRefused(BenchError):
    """An attack sent a request the API refuses (a non-finite feature): nothing was answered.

    An attack may recover (FEE draws another line); one that does not fails, and the run
    reports it.
    """


@dataclass(frozen=True, eq=False)
class Victim:
    """A model under attack, trained at bench time from data that ships in a package.

    The splits are disjoint and serve different readers:

    - ``x_train``/``y_train``: what the model learned (the members for membership inference);
    - ``x_test``/``y_test``: held-out data used only to score attacks (stolen-model agreement,
      non-members for membership inference);
    - ``profile.reference``: the benign reference sample detectors may compare against;
    - ``benign_pool``: held-out inputs from which the benchmark draws benign traffic;
    - ``attacker_pool``: natural in-distribution data an attacker holds (Knockoff/Copycat
      seeds, Papernot seed set), disjoint from all the above so no detector can win by
      recognising records it was shown as "benign".

    ``predict_proba`` is the only way attacks reach the model. ``predict_scores`` is set for
    victims whose API returns logits (the FEE victim); both see float64 rows.
    ``sensitive`` lists the feature columns (one-hot) of a sensitive attribute, when the
    victim has one, and ``sensitive_values`` the value names in the same order.
    """

    name: str
    profile: ModelProfile
    predict_proba: Callable[[Matrix], Matrix]
    x_train: Matrix
    y_train: npt.NDArray[np.int64]
    x_test: Matrix
    y_test: npt.NDArray[np.int64]
    benign_pool: Matrix
    attacker_pool: Matrix
    predict_scores: Callable[[Matrix], Matrix] | None = None
    sensitive: tuple[int, ...] = ()
    sensitive_values: tuple[str, ...] = ()
    description: str = ""

    @property
    def input_kind(self) -> InputKind:
        return self.profile.input_kind

    @property
    def shape(self) -> tuple[int, ...]:
        """The input's natural shape, e.g. ``(8, 8)`` for digits or ``(30,)`` for tabular."""
        if self.profile.shape:
            return self.profile.shape
        return (self.n_features,)

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.profile.n_classes or (int(self.y_train.max()) + 1))

    @property
    def reference(self) -> Matrix:
        ref = self.profile.reference
        if ref is None:
            raise BenchError(f"victim {self.name!r} has no reference sample")
        return np.asarray(ref, dtype=np.float64)

    def bounds(self) -> tuple[Vector, Vector]:
        """Per-feature lower and upper bounds from the profile (the valid input box)."""
        b = self.profile.bounds()
        if b is None:
            raise BenchError(f"victim {self.name!r} has no feature ranges")
        return b

    def labels(self, x: Matrix) -> npt.NDArray[np.int64]:
        """The victim's predicted classes, straight from the model (never recorded as traffic)."""
        return np.asarray(np.argmax(self.predict_proba(x), axis=1), dtype=np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class Query:
    """One row sent to the victim and what came back.

    Rows sent in one ``predict_proba`` call share ``batch`` (0, 1, 2, ... in call order), so
    the benchmark can replay a batch as one request. ``scores`` holds logits when the
    attacker used a logits API; ``probabilities`` is always set.
    """

    features: Vector
    probabilities: Vector
    batch: int
    scores: Vector | None = None


Scorer = Callable[[Sequence[Query]], dict[str, float]]
"""Measures an attacker's success from the queries it has sent so far."""


@dataclass(frozen=True, eq=False)
class AttackRun:
    """One attack against one victim: the queries it sent, in order, and how well it did.

    ``technique`` is an ATLAS id (validated). ``scorer`` receives a prefix of ``queries``
    and returns named success metrics, e.g. ``{"agreement": 0.93}`` for extraction,
    ``{"similarity": 0.71}`` for inversion, ``{"auc": 0.84}`` for membership inference,
    ``{"accuracy": 0.8}`` for attribute inference; ``primary`` names the headline metric.
    The scorer only uses what an attacker holding those queries could compute, plus the
    victim's held-out data to judge it, and it is deterministic.
    """

    name: str
    technique: str
    victim: str
    family: Family
    queries: list[Query]
    scorer: Scorer = field(repr=False)
    primary: str
    params: dict[str, float | int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        atlas_technique(self.technique)
        if self.family not in FAMILIES:
            raise BenchError(f"attack {self.name!r}: unknown family {self.family!r}; allowed: {', '.join(FAMILIES)}")

    @property
    def budget(self) -> int:
        """How many queries the attack sent in total."""
        return len(self.queries)

    @property
    def batches(self) -> int:
        return self.queries[-1].batch + 1 if self.queries else 0

    def success_at(self, k: int) -> dict[str, float]:
        """The attacker's success using only the first ``k`` queries (``k`` is clipped to the budget)."""
        if k < 0:
            raise BenchError(f"attack {self.name!r}: success_at needs k >= 0, got {k}")
        return self.scorer(self.queries[: min(k, self.budget)])

    def features(self) -> Matrix:
        """All query rows as one ``(budget, d)`` matrix."""
        if not self.queries:
            return np.zeros((0, 0), dtype=np.float64)
        return np.stack([q.features for q in self.queries])


AttackRunner = Callable[[Victim, int, Scale], AttackRun]


@dataclass(frozen=True, slots=True)
class AttackSpec:
    """A registered attack: its name, what it does, and the victim it is meant for.

    ``victim`` is the name of the victim (see :func:`querywarden.bench.victims.load_victim`)
    the benchmark runs it against; some attacks only make sense on one (FEE needs a ReLU
    network returning logits, the Fredrikson sweep a sensitive attribute).
    """

    name: str
    technique: str
    family: Family
    victim: str
    runner: AttackRunner
    source: Literal["art", "own"]
    description: str = ""


def _registry() -> dict[str, AttackSpec]:
    module = importlib.import_module("querywarden.bench.attacks")
    registry: dict[str, AttackSpec] = module.REGISTRY
    return registry


def _holdout() -> dict[str, AttackSpec]:
    module = importlib.import_module("querywarden.bench.attacks.holdout")
    registry: dict[str, AttackSpec] = module.HOLDOUT
    return registry


def attack_names() -> list[str]:
    """Registered attack names, in the order the benchmark runs them."""
    return list(_registry())


def holdout_attack_names() -> list[str]:
    """The held-out runs (other victims, other settings; see :mod:`querywarden.bench.attacks.holdout`)."""
    return list(_holdout())


def attack_spec(name: str) -> AttackSpec:
    registry = {**_registry(), **_holdout()}
    try:
        return registry[name]
    except KeyError:
        raise BenchError(f"unknown attack {name!r}; known: {', '.join(registry)}") from None


def run_attack(name: str, victim: Victim, seed: int = 0, scale: Scale = "ci") -> AttackRun:
    """Run the attack ``name`` against ``victim`` and return what it sent and achieved.

    ``seed`` fixes every random choice of the attack; ``scale`` sets its budget. The same
    arguments give the same queries.
    """
    if scale not in SCALES:
        raise BenchError(f"unknown scale {scale!r}; allowed: {', '.join(SCALES)}")
    return attack_spec(name).runner(victim, seed, scale)
