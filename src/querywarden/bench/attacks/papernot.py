"""Papernot et al. (2017) Jacobian-based dataset augmentation, our implementation.

The attacker starts from a handful of natural records, labels them through the victim and
trains a substitute. Each round it adds, for every record it holds, a step of size lambda
along the sign of the substitute's gradient for the class the victim gave it: the direction
in which the substitute's decision changes fastest, which is where the victim's boundary
must be learned next. The new points are labelled and the substitute retrained; the set
doubles every round. The step changes sign every few rounds, so the set does not drift off
in one direction.

Its traffic: a small natural batch, then batches that double each round, of records each a
small signed step away from one already sent.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from querywarden.bench.attacks.scoring import held_out_labels, stack
from querywarden.bench.recorder import Recorder
from querywarden.bench.scenario import AttackRun, Matrix, Query, Scale, Scorer, Victim
from querywarden.core.atlas import EXTRACTION


def _substitute(x: Matrix, y: np.ndarray) -> Pipeline:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=10.0, max_iter=3000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    return model


def _class_gradient(model: Pipeline, y: np.ndarray) -> Matrix:
    """Gradient of the substitute's score for class ``y[i]`` at any point (the model is linear)."""
    scaler: StandardScaler = model[0]
    logreg: LogisticRegression = model[-1]
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    coef = logreg.coef_ / scale
    if coef.shape[0] == 1:  # binary: one score, positive towards class 1
        coef = np.vstack([-coef[0], coef[0]])
    index = np.searchsorted(logreg.classes_, y)
    full = np.zeros((len(y), coef.shape[1]))
    known = index < len(logreg.classes_)
    known[known] = logreg.classes_[index[known]] == y[known]
    full[known] = coef[index[known]]
    return full


def _scorer(victim: Victim) -> Scorer:
    target = held_out_labels(victim)

    def score(queries: Sequence[Query]) -> dict[str, float]:
        x, p = stack(queries)
        labels = np.argmax(p, axis=1) if len(queries) else np.zeros(0, dtype=np.int64)
        if len(np.unique(labels)) < 2:
            guess = int(labels[0]) if len(labels) else 0
            return {"agreement": float(np.mean(target == guess))}
        substitute = _substitute(x, labels)
        return {"agreement": float(np.mean(substitute.predict(victim.x_test) == target))}

    return score


def papernot(victim: Victim, seed: int, scale: Scale) -> AttackRun:
    """Jacobian-based augmentation from a small natural seed set, doubling the set every round."""
    n_seed, rounds = (20, 4) if scale == "ci" else (50, 6)
    lo, hi = victim.bounds()
    step = 0.1 * np.where(hi > lo, hi - lo, 1.0)
    rng = np.random.default_rng(seed)
    seeds = victim.attacker_pool[rng.choice(len(victim.attacker_pool), n_seed, replace=False)]
    recorder = Recorder(victim, cap=n_seed * 2**rounds)
    held = seeds
    labels = np.argmax(recorder.predict_proba(held), axis=1)
    for round_ in range(rounds):
        substitute = _substitute(held, labels) if len(np.unique(labels)) > 1 else None
        if substitute is None:
            direction = rng.choice([-1.0, 1.0], size=held.shape)
        else:
            direction = np.sign(_class_gradient(substitute, labels))
        sign = 1.0 if (round_ // 3) % 2 == 0 else -1.0
        new = np.clip(held + sign * step * direction, lo, hi)
        new_labels = np.argmax(recorder.predict_proba(new), axis=1)
        held = np.concatenate([held, new])
        labels = np.concatenate([labels, new_labels])
    return AttackRun(
        name="papernot",
        technique=EXTRACTION,
        victim=victim.name,
        family="synthetic",
        queries=recorder.queries,
        scorer=_scorer(victim),
        primary="agreement",
        params={"seed_set": n_seed, "rounds": rounds, "seed": seed},
    )
