"""Model extraction with ART: CopycatCNN, KnockoffNets (natural and out-of-distribution data) and FEE.

Copycat and Knockoff ("random" strategy) send each record of the attacker's pool once, in
batches, and train a thief on the answers. With in-distribution records their traffic is
indistinguishable from a batch-scoring job except by which records are sent; with an
out-of-distribution pool (here mirrored and rotated digits, the small-scale analogue of
Knockoff's queries with unrelated natural images) the records themselves give it away.

Functionally equivalent extraction (Jagielski et al. 2020) recovers a one-hidden-layer ReLU
network from its logits by walking random lines for the points where a neuron switches
on; its traffic is far off the data manifold, in tiny steps. It is capped, because its
cost grows with the network and it may not converge.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from querywarden.bench.attacks import artbridge
from querywarden.bench.attacks.scoring import held_out_labels, thief_agreement
from querywarden.bench.recorder import Recorder
from querywarden.bench.scenario import (
    AttackRun,
    BenchError,
    Matrix,
    QueryBudgetExceeded,
    QueryRefused,
    Scale,
    Scorer,
    Victim,
)
from querywarden.core.atlas import EXTRACTION


def make_thief(victim: Victim, seed: int) -> Any:
    """The thief architecture: an MLP for images, a logistic regression for tabular data."""
    if victim.n_classes > 2:
        mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=seed)
        return make_pipeline(StandardScaler(), mlp)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


OOD_POOLS = ("mirror", "invert", "marginals")


def ood_pool(victim: Victim, kind: str = "mirror", seed: int = 0) -> Matrix:
    """An out-of-distribution pool built from the attacker's own records.

    - ``mirror`` (images): every image mirrored both ways and turned a quarter both ways. A
      mirrored or quarter-turned digit is a clean, digit-like image that is not a digit, the
      small-scale analogue of Knockoff querying a digit model with other natural images.
      (Patches of natural photographs were tried first: the victim labels them almost all as
      2, 3 or 6 and a thief learns nothing from them.)
    - ``invert`` (images): every image in negative (ink and paper swapped), four times over
      with a one-pixel shift, so the pool is as large as ``mirror``'s.
    - ``marginals`` (any input): four times as many records, each feature drawn from its own
      column of the attacker's records, so every value is natural and the records are not.
    """
    pool = victim.attacker_pool
    if kind == "marginals":
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(pool), size=(4 * len(pool), victim.n_features))
        return np.asarray(pool[picks, np.arange(victim.n_features)], dtype=np.float64)
    if kind not in OOD_POOLS:
        raise BenchError(f"unknown OOD pool {kind!r}; allowed: {', '.join(OOD_POOLS)}")
    if victim.profile.shape is None or len(victim.profile.shape) != 2:
        raise BenchError(f"the {kind} pool needs an image victim, {victim.name!r} is {victim.input_kind.value}")
    images = pool.reshape(-1, *victim.profile.shape)
    if kind == "mirror":
        variants: tuple[Matrix, ...] = (
            images[:, ::-1, :],
            images[:, :, ::-1],
            np.rot90(images, 1, axes=(1, 2)),
            np.rot90(images, 3, axes=(1, 2)),
        )
    else:
        lo, hi = victim.bounds()
        negative = (lo + hi).reshape(victim.profile.shape) - images
        variants = tuple(np.roll(negative, shift, axis=axis) for axis in (1, 2) for shift in (0, 1))
    return np.concatenate([v.reshape(len(images), -1) for v in variants]).astype(np.float64)


def _stolen_run(
    name: str, victim: Victim, family: str, recorder: Recorder, seed: int, params: dict[str, float | int | str]
) -> AttackRun:
    return AttackRun(
        name=name,
        technique=EXTRACTION,
        victim=victim.name,
        family=family,  # type: ignore[arg-type]
        queries=recorder.queries,
        scorer=thief_agreement(victim, lambda: make_thief(victim, seed)),
        primary="agreement",
        params={**params, "seed": seed},
    )


def copycat(victim: Victim, seed: int, scale: Scale, *, batch_size: int = 10) -> AttackRun:
    """CopycatCNN: label the attacker's natural records through the victim, train a thief on the labels."""
    from art.attacks.extraction import CopycatCNN

    pool = victim.attacker_pool
    nb_stolen = min(len(pool), 150 if scale == "ci" else len(pool))
    recorder = Recorder(victim, cap=nb_stolen)
    with artbridge.quiet(), artbridge.seeded(seed):
        attack = CopycatCNN(
            classifier=artbridge.black_box(recorder),
            batch_size_query=batch_size,
            nb_stolen=nb_stolen,
            use_probability=False,
        )
        attack.extract(pool, thieved_classifier=artbridge.sklearn_thief(make_thief(victim, seed), *_dims(victim)))
    return _stolen_run("copycat", victim, "natural", recorder, seed, {"nb_stolen": nb_stolen, "batch": batch_size})


def _dims(victim: Victim) -> tuple[int, int]:
    return victim.n_features, victim.n_classes


def _knockoff(
    name: str, family: str, victim: Victim, pool: Matrix, seed: int, nb_stolen: int, batch_size: int = 25
) -> AttackRun:
    from art.attacks.extraction import KnockoffNets

    recorder = Recorder(victim, cap=nb_stolen)
    with artbridge.quiet(), artbridge.seeded(seed):
        attack = KnockoffNets(
            classifier=artbridge.black_box(recorder),
            batch_size_query=batch_size,
            nb_stolen=nb_stolen,
            sampling_strategy="random",
            use_probability=True,
            verbose=False,
        )
        attack.extract(pool, thieved_classifier=artbridge.sklearn_thief(make_thief(victim, seed), *_dims(victim)))
    return _stolen_run(name, victim, family, recorder, seed, {"nb_stolen": nb_stolen, "batch": batch_size})


def knockoff_natural(victim: Victim, seed: int, scale: Scale, *, batch_size: int = 25) -> AttackRun:
    """KnockoffNets, random strategy, over the attacker's in-distribution records."""
    pool = victim.attacker_pool
    n = min(len(pool), 150 if scale == "ci" else 10**9)
    return _knockoff("knockoff-natural", "natural", victim, pool, seed, n, batch_size)


def knockoff_ood(victim: Victim, seed: int, scale: Scale, *, pool: str = "mirror", batch_size: int = 25) -> AttackRun:
    """KnockoffNets, random strategy, over an out-of-distribution pool (see :func:`ood_pool`)."""
    rows = ood_pool(victim, pool, seed)
    run = _knockoff(
        "knockoff-ood", "ood", victim, rows, seed, min(len(rows), 400 if scale == "ci" else 10**9), batch_size
    )
    run.params["pool"] = pool
    return run


_FEE_ATTEMPTS = 5


def _fee_scorer(victim: Victim, seed: int, extracted: Any, complete_at: int) -> Scorer:
    """FEE only yields a model once it completes; before that the attacker holds a surrogate fit on its answers."""
    target = held_out_labels(victim)
    partial = thief_agreement(victim, lambda: make_thief(victim, seed))

    def score(queries: Any) -> dict[str, float]:
        if extracted is not None and len(queries) >= complete_at:
            predicted = np.argmax(extracted.predict(victim.x_test), axis=1)
            return {"agreement": float(np.mean(predicted == target)), "complete": 1.0}
        return {**partial(queries), "complete": 0.0}

    return score


def fee(victim: Victim, seed: int, scale: Scale, *, delta_0: float = 0.05, fraction_true: float = 0.3) -> AttackRun:
    """Functionally equivalent extraction of a ReLU network from its logits, capped.

    ``delta_0`` is the starting step of FEE's line search and ``fraction_true`` the share of
    switching points it must confirm (ART's parameters).
    """
    from art.attacks.extraction import FunctionallyEquivalentExtraction

    cap = 200_000 if scale == "ci" else 2_000_000
    recorder = Recorder(victim, cap=cap)
    neurons = 4
    extracted: Any = None
    attempts = 0
    # FEE searches one random line for every neuron's switching point; when a neuron does not
    # switch along that line, or the search overflows to a point the API refuses, it fails,
    # and the attacker draws another line.
    while extracted is None and attempts < _FEE_ATTEMPTS:
        with artbridge.quiet(), artbridge.seeded(seed * _FEE_ATTEMPTS + attempts):
            attempts += 1
            attack = FunctionallyEquivalentExtraction(
                classifier=artbridge.black_box(recorder, logits=True, clip=False), num_neurons=neurons
            )
            try:
                extracted = attack.extract(victim.attacker_pool[:40], delta_0=delta_0, fraction_true=fraction_true)
            except QueryBudgetExceeded:
                break
            except (AssertionError, QueryRefused):
                continue  # no switching point on this line, or the line search left the reals
    return AttackRun(
        name="fee",
        technique=EXTRACTION,
        victim=victim.name,
        family="synthetic",
        queries=recorder.queries,
        scorer=_fee_scorer(victim, seed, extracted, recorder.count),
        primary="agreement",
        params={
            "cap": cap,
            "num_neurons": neurons,
            "attempts": attempts,
            "completed": int(extracted is not None),
            "delta_0": delta_0,
            "fraction_true": fraction_true,
            "seed": seed,
        },
    )
