"""Papernot et al. (2017) Jacobian-based dataset augmentation, our implementation.

The attacker starts from a handful of natural records, labels them through the victim and
trains a substitute. Each round it adds, for every record it holds, a step of size lambda
along the sign of the substitute's gradient for the class the victim gave it: the direction
in which the substitute's decision changes fastest, which is where the victim's boundary
must be learned next. The new points are labelled and the substitute retrained; the set
doubles every round. The step changes sign every few rounds, so the set does not drift off
in one direction.

The substitute that steers the augmentation is linear (its Jacobian is its weights, and it
refits in closed form every round); the attacker's final stolen model is the same thief the
other extraction attacks train, fitted on every label gathered.

Its traffic: a small natural batch, then batches that double each round, of records each a
small signed step away from one already sent.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import RidgeClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from querywarden.bench.attacks.extraction import make_thief
from querywarden.bench.attacks.scoring import thief_agreement
from querywarden.bench.recorder import Recorder
from querywarden.bench.scenario import AttackRun, Matrix, Scale, Victim
from querywarden.core.atlas import EXTRACTION


def _substitute(x: Matrix, y: np.ndarray) -> Pipeline:
    """A linear substitute (one-vs-rest ridge), fitted in closed form: fast enough to refit every round."""
    model = make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    return model


def _class_gradient(model: Pipeline, y: np.ndarray) -> Matrix:
    """Gradient of the substitute's score for class ``y[i]`` at any point (the model is linear)."""
    scaler: StandardScaler = model[0]
    linear: RidgeClassifier = model[-1]
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    coef = linear.coef_ / scale
    if coef.shape[0] == 1:  # binary: one score, positive towards class 1
        coef = np.vstack([-coef[0], coef[0]])
    index = np.searchsorted(linear.classes_, y)
    full = np.zeros((len(y), coef.shape[1]))
    known = index < len(linear.classes_)
    known[known] = linear.classes_[index[known]] == y[known]
    full[known] = coef[index[known]]
    return full


def papernot(
    victim: Victim,
    seed: int,
    scale: Scale,
    *,
    step: float = 0.1,
    rounds: int | None = None,
    seed_set: int | None = None,
) -> AttackRun:
    """Jacobian-based augmentation from a small natural seed set, doubling the set every round.

    ``step`` is lambda, the augmentation step as a fraction of each feature's range;
    ``rounds`` and ``seed_set`` default to the scale's (4 and 20 at ci, 6 and 50 at full).
    """
    n_seed, n_rounds = (20, 4) if scale == "ci" else (50, 6)
    n_seed = n_seed if seed_set is None else seed_set
    rounds = n_rounds if rounds is None else rounds
    lo, hi = victim.bounds()
    lam = step
    step_size = lam * np.where(hi > lo, hi - lo, 1.0)
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
        new = np.clip(held + sign * step_size * direction, lo, hi)
        new_labels = np.argmax(recorder.predict_proba(new), axis=1)
        held = np.concatenate([held, new])
        labels = np.concatenate([labels, new_labels])
    return AttackRun(
        name="papernot",
        technique=EXTRACTION,
        victim=victim.name,
        family="synthetic",
        queries=recorder.queries,
        scorer=thief_agreement(victim, lambda: make_thief(victim, seed)),
        primary="agreement",
        params={"seed_set": n_seed, "rounds": rounds, "step": lam, "seed": seed},
    )
