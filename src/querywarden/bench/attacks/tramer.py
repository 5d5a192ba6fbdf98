"""Tramèr et al. (2016) equation-solving extraction, our implementation.

A model that returns probabilities from a softmax over linear scores leaks those scores:
``log(p_c / p_0) = (w_c - w_0) . x + (b_c - b_0)`` is one linear equation per class per
query. With ``d + 1`` queries in general position the attacker solves for every weight
exactly; with more it solves in the least-squares sense, which also yields the best
linear approximation of a non-linear victim. The queries are drawn uniformly at random from
the feature box the API documents, so they look like nothing a real customer sends: every
feature at an independent, arbitrary point of its range.

Rows whose answer is saturated (a probability of exactly 0 or 1) carry no equation and are
skipped, as an attacker would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from querywarden.bench.attacks.scoring import held_out_labels, stack
from querywarden.bench.recorder import Recorder
from querywarden.bench.scenario import AttackRun, BenchError, Matrix, Query, Scale, Scorer, Victim
from querywarden.core.atlas import EXTRACTION


def solve(x: Matrix, p: Matrix) -> tuple[Matrix, Matrix] | None:
    """Solve for weights ``W`` (d, c) and biases ``b`` (c,) of relative class scores, or None if no row is usable.

    Class 0 is the reference (its scores are zero); the returned model predicts
    ``argmax([0, x @ W[:, 1:] + b[1:]])``.
    """
    usable = np.all((p > 0.0) & (p < 1.0), axis=1) if p.shape[1] > 2 else (p[:, 1] > 0.0) & (p[:, 1] < 1.0)
    if not usable.any():
        return None
    x, p = x[usable], p[usable]
    log_ratio = np.log(p) - np.log(p[:, :1])
    design = np.column_stack([x, np.ones(len(x))])
    # scale columns so the minimum-norm solution (fewer rows than unknowns) is not dominated by feature units
    norms = np.linalg.norm(design, axis=0)
    norms[norms == 0] = 1.0
    coef, *_ = np.linalg.lstsq(design / norms, log_ratio, rcond=None)
    coef = coef / norms[:, None]
    return coef[:-1], coef[-1]


def predict(model: tuple[Matrix, Matrix], x: Matrix) -> np.ndarray:
    weights, bias = model
    return np.asarray(np.argmax(x @ weights + bias, axis=1))


def _scorer(victim: Victim) -> Scorer:
    target = held_out_labels(victim)

    def score(queries: Sequence[Query]) -> dict[str, float]:
        if not queries:
            return {"agreement": float(np.mean(target == 0))}
        x, p = stack(queries)
        model = solve(x, p)
        if model is None:
            guess = int(np.bincount(np.argmax(p, axis=1)).argmax())
            return {"agreement": float(np.mean(target == guess))}
        return {"agreement": float(np.mean(predict(model, victim.x_test) == target))}

    return score


DISTRIBUTIONS = ("uniform", "marginals")


def _draw(victim: Victim, distribution: str, n: int, rng: np.random.Generator) -> Matrix:
    """``n`` query points: uniform in the documented box, or each feature drawn from its own natural values.

    ``marginals`` is the harder attacker: every feature takes a value some record of the
    attacker's own data holds, so no single feature looks out of range; only the
    combination is one no record has.
    """
    lo, hi = victim.bounds()
    if distribution == "uniform":
        return np.asarray(lo + (hi - lo) * rng.random((n, victim.n_features)), dtype=np.float64)
    if distribution == "marginals":
        pool = victim.attacker_pool
        picks = rng.integers(0, len(pool), size=(n, victim.n_features))
        return np.asarray(pool[picks, np.arange(victim.n_features)], dtype=np.float64)
    raise BenchError(f"tramer: unknown distribution {distribution!r}; allowed: {', '.join(DISTRIBUTIONS)}")


def tramer(
    victim: Victim,
    seed: int,
    scale: Scale,
    *,
    per_unknown: int | None = None,
    batch: int = 10,
    distribution: str = "uniform",
) -> AttackRun:
    """Query random points in batches of ``batch``, then solve for the model.

    ``per_unknown`` queries per unknown of a linear class score (``d + 1``): 2 at ci, 20 at
    full by default; 1 is the exact-solve minimum.
    """
    factor = (2 if scale == "ci" else 20) if per_unknown is None else per_unknown
    n = factor * (victim.n_features + 1)
    rng = np.random.default_rng(seed)
    recorder = Recorder(victim, cap=n)
    x = _draw(victim, distribution, n, rng)
    for start in range(0, n, batch):
        recorder.predict_proba(x[start : start + batch])
    return AttackRun(
        name="tramer",
        technique=EXTRACTION,
        victim=victim.name,
        family="synthetic",
        queries=recorder.queries,
        scorer=_scorer(victim),
        primary="agreement",
        params={"queries": n, "batch": batch, "distribution": distribution, "seed": seed},
    )
