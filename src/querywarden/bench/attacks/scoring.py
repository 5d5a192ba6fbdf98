"""Measuring an attacker's success from a prefix of its queries.

Each scorer answers "what could the attacker do with the first k answers?" using only what
those answers tell it, then judges the result against the victim's held-out test data
(which the attacker never queried). Scorers are deterministic: every model they fit has a
fixed seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from querywarden.bench.scenario import Matrix, Query, Scorer, Victim

Labels = npt.NDArray[np.int64]


def stack(queries: Sequence[Query]) -> tuple[Matrix, Matrix]:
    """Query features and answered probabilities as two matrices."""
    if not queries:
        return np.zeros((0, 0)), np.zeros((0, 0))
    return np.stack([q.features for q in queries]), np.stack([q.probabilities for q in queries])


def held_out_labels(victim: Victim) -> Labels:
    """The victim's own decisions on its test split: what a stolen model should agree with."""
    return victim.labels(victim.x_test)


def thief_agreement(
    victim: Victim,
    make_thief: Callable[[], Any],
    *,
    min_rows: int = 2,
) -> Scorer:
    """Score extraction: fit a fresh thief on the answered labels, measure agreement with the victim.

    With fewer than two classes answered a thief cannot be fitted; the attacker then can only
    repeat the one class it has seen (or class 0 with nothing), which is what is scored.
    """
    target = held_out_labels(victim)

    def score(queries: Sequence[Query]) -> dict[str, float]:
        x, p = stack(queries)
        if len(queries):  # a thief cannot learn from rows the victim could not answer
            finite = np.isfinite(x).all(axis=1) & np.isfinite(p).all(axis=1)
            x, p = x[finite], p[finite]
        labels = np.argmax(p, axis=1) if len(x) else np.zeros(0, dtype=np.int64)
        seen = np.unique(labels)
        if len(x) < min_rows or len(seen) < 2:
            guess = int(seen[0]) if len(seen) else 0
            return {"agreement": float(np.mean(target == guess))}
        thief = make_thief()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            thief.fit(x, labels)
        return {"agreement": float(np.mean(thief.predict(victim.x_test) == target))}

    return score


def roc_auc(scores: npt.NDArray[np.float64], members: npt.NDArray[np.bool_]) -> float:
    """Area under the ROC curve of ``scores`` separating ``members`` (ties count half)."""
    from scipy.stats import rankdata

    n_pos = int(members.sum())
    n_neg = len(members) - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = rankdata(scores)
    return float((ranks[members].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def segments(bounds: Sequence[int], k: int) -> list[tuple[int, int]]:
    """Split ``range(k)`` into the per-target segments delimited by cumulative ``bounds``.

    ``bounds[i]`` is the query count after target ``i`` was finished; a target whose
    segment starts at or after ``k`` gets an empty segment.
    """
    out: list[tuple[int, int]] = []
    start = 0
    for end in bounds:
        out.append((min(start, k), min(end, k)))
        start = end
    return out
