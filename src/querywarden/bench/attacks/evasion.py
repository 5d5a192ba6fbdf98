"""Decision-boundary probing with ART: HopSkipJump and BoundaryAttack on a few images.

Both attacks need only the victim's decisions. Starting from an image of another class they
walk towards the original image along the boundary, with binary searches (single rows) and
gradient-estimation or step batches, each row a tiny step from the last. That is what makes
them visible: runs of near-duplicate rows hugging the boundary, far closer to each other
than natural inputs ever are.

The attacker's success is judged per target image: the closest query it has seen that the
victim classifies differently from the original, relative to the distance from that image to
the nearest natural image of another class. Closer than half that distance counts as an
evasion (a perturbation much smaller than the change to a real other-class image).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from querywarden.bench.attacks import artbridge
from querywarden.bench.attacks.scoring import segments, stack
from querywarden.bench.recorder import Recorder
from querywarden.bench.scenario import AttackRun, Matrix, Query, Scale, Scorer, Victim
from querywarden.core.atlas import ADVERSARIAL

EVASION_RATIO = 0.5
"""A query within this fraction of the nearest other-class natural image counts as an evasion."""


def pick_targets(victim: Victim, n: int, seed: int) -> tuple[Matrix, np.ndarray]:
    """``n`` images from the attacker's pool, with the labels the victim gives them."""
    rng = np.random.default_rng(seed)
    index = rng.choice(len(victim.attacker_pool), size=n, replace=False)
    x = victim.attacker_pool[index]
    return x, victim.labels(x)


def _natural_gap(victim: Victim, x: Matrix, labels: np.ndarray) -> np.ndarray:
    """Distance from each target to the nearest held-out natural image the victim puts in another class."""
    pool = victim.x_test
    pool_labels = victim.labels(pool)
    gaps = np.empty(len(x))
    for i, (row, label) in enumerate(zip(x, labels, strict=True)):
        other = pool[pool_labels != label]
        gaps[i] = float(np.min(np.linalg.norm(other - row, axis=1))) if len(other) else np.inf
    return gaps


def _scorer(victim: Victim, x: Matrix, labels: np.ndarray, bounds: list[int]) -> Scorer:
    gaps = _natural_gap(victim, x, labels)

    def score(queries: Sequence[Query]) -> dict[str, float]:
        feats, proba = stack(queries)
        ratios = np.ones(len(x))
        for i, (start, end) in enumerate(segments(bounds, len(queries))):
            if end <= start:
                continue
            rows = feats[start:end]
            flipped = np.argmax(proba[start:end], axis=1) != labels[i]
            if flipped.any():
                best = float(np.min(np.linalg.norm(rows[flipped] - x[i], axis=1)))
                ratios[i] = min(best / gaps[i], 1.0)
        return {"evasion": float(np.mean(ratios <= EVASION_RATIO)), "distortion": float(np.mean(ratios))}

    return score


def _run(
    name: str,
    victim: Victim,
    seed: int,
    n_images: int,
    cap: int,
    make_attack: Any,
    settings: dict[str, float | int | str],
) -> AttackRun:
    x, labels = pick_targets(victim, n_images, seed)
    recorder = Recorder(victim, cap=cap)
    bounds: list[int] = []
    with artbridge.quiet(), artbridge.seeded(seed), artbridge.derived_random_states():
        attack = make_attack(artbridge.black_box(recorder))
        for i in range(n_images):
            attack.generate(x[i : i + 1])
            bounds.append(recorder.count)
    return AttackRun(
        name=name,
        technique=ADVERSARIAL,
        victim=victim.name,
        family="iterative",
        queries=recorder.queries,
        scorer=_scorer(victim, x, labels, bounds),
        primary="evasion",
        params={"images": n_images, **settings, "seed": seed},
    )


def hopskipjump(
    victim: Victim,
    seed: int,
    scale: Scale,
    *,
    max_iter: int | None = None,
    max_eval: int | None = None,
    init_eval: int = 50,
    batch_size: int = 64,
) -> AttackRun:
    """HopSkipJump (Chen et al. 2020), untargeted, L2, on 3 (ci) or 10 (full) images.

    ``max_iter`` and ``max_eval`` default to the scale's (8 and 400 at ci, 30 and 2,000 at
    full); ``init_eval`` is the gradient-estimation batch of the first step.
    """
    from art.attacks.evasion import HopSkipJump

    n, iters, evals = (3, 8, 400) if scale == "ci" else (10, 30, 2000)
    iters = iters if max_iter is None else max_iter
    evals = evals if max_eval is None else max_eval

    def make(classifier: Any) -> Any:
        return HopSkipJump(
            classifier,
            batch_size=batch_size,
            max_iter=iters,
            max_eval=evals,
            init_eval=init_eval,
            init_size=100,
            verbose=False,
        )

    settings: dict[str, float | int | str] = {
        "max_iter": iters,
        "max_eval": evals,
        "init_eval": init_eval,
        "batch_size": batch_size,
    }
    return _run("hopskipjump", victim, seed, n, 10**6, make, settings)


def boundary(
    victim: Victim,
    seed: int,
    scale: Scale,
    *,
    max_iter: int | None = None,
    num_trial: int = 10,
    sample_size: int = 10,
    delta: float = 0.01,
    epsilon: float = 0.01,
) -> AttackRun:
    """BoundaryAttack (Brendel et al. 2018), untargeted, on 3 (ci) or 10 (full) images.

    ``delta`` and ``epsilon`` are ART's initial orthogonal and towards-target step sizes.
    """
    from art.attacks.evasion import BoundaryAttack

    n, iters = (3, 150) if scale == "ci" else (10, 1000)
    iters = iters if max_iter is None else max_iter

    def make(classifier: Any) -> Any:
        return BoundaryAttack(
            classifier,
            batch_size=64,
            targeted=False,
            delta=delta,
            epsilon=epsilon,
            max_iter=iters,
            num_trial=num_trial,
            sample_size=sample_size,
            verbose=False,
        )

    settings = {"max_iter": iters, "num_trial": num_trial, "sample_size": sample_size, "delta": delta}
    return _run("boundary", victim, seed, n, 10**6, make, {**settings, "epsilon": epsilon})
