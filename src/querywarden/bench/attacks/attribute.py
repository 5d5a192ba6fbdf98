"""Attribute inference on Adult: ART's black-box attack and our Fredrikson sweep.

Both try to recover a person's sex (a model input) from the model. Success is the accuracy
on target records, reported beside ``baseline``, the accuracy of always guessing the value
most common in the attacker's own data: an attack is only worth its name above that.

``attribute-blackbox`` (ART's ``AttributeInferenceBlackBox``, random-forest attack model):
the attacker queries the victim on records whose sex it knows, learns to predict sex from
the other features plus the victim's decision, and applies that to the targets, whose
decisions it has observed (they are the model's published outcomes for those people; the
benchmark takes them from the model without recording them as queries). Its traffic is
one pass over natural records. Much of its accuracy comes from features that correlate with
sex (relationship: husband/wife), not from the model; the baseline makes that visible.

``fredrikson`` (Fredrikson et al. 2014): for each target, whose other features and true
outcome the attacker knows, send the record once per value of the sensitive attribute and
keep the value that makes the known outcome most likely, weighted by the value's prior. Its
traffic: pairs of records identical but for one column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from querywarden.bench.attacks import artbridge
from querywarden.bench.attacks.scoring import stack
from querywarden.bench.recorder import Recorder
from querywarden.bench.scenario import AttackRun, BenchError, Matrix, Query, Scale, Scorer, Victim
from querywarden.core.atlas import INVERSION


def _column(victim: Victim) -> int:
    if len(victim.sensitive) != 1:
        raise BenchError(f"attribute attacks need one binary sensitive column; {victim.name!r} has {victim.sensitive}")
    return victim.sensitive[0]


def _targets(victim: Victim, n: int, seed: int) -> tuple[Matrix, np.ndarray]:
    """Training members (whose data the model saw) the attacker wants the sensitive value of."""
    index = np.random.default_rng(seed).choice(len(victim.x_train), size=min(n, len(victim.x_train)), replace=False)
    return victim.x_train[index], victim.y_train[index]


def _prior(victim: Victim, column: int) -> np.ndarray:
    counts = np.bincount(victim.attacker_pool[:, column].astype(np.int64), minlength=2).astype(np.float64)
    return np.asarray(counts / counts.sum(), dtype=np.float64)


def _blackbox_scorer(victim: Victim, column: int, known: Matrix, targets: Matrix, seed: int) -> Scorer:
    truth = targets[:, column].astype(np.int64)
    majority = int(np.argmax(_prior(victim, column)))
    baseline = float(np.mean(truth == majority))
    target_features = np.column_stack([np.delete(targets, column, axis=1), victim.labels(targets)])

    def score(queries: Sequence[Query]) -> dict[str, float]:
        _, p = stack(queries)
        seen = known[: len(p)]
        values = seen[:, column].astype(np.int64)
        if len(np.unique(values)) < 2:
            return {"accuracy": baseline, "baseline": baseline}
        model = RandomForestClassifier(n_estimators=100, random_state=seed)
        model.fit(np.column_stack([np.delete(seen, column, axis=1), np.argmax(p, axis=1)]), values)
        guess = model.predict(target_features)
        return {"accuracy": float(np.mean(guess == truth)), "baseline": baseline}

    return score


def attribute_blackbox(victim: Victim, seed: int, scale: Scale) -> AttackRun:
    """ART's black-box attribute inference of sex, trained on the attacker's records with known sex."""
    from art.attacks.inference.attribute_inference import AttributeInferenceBlackBox

    column = _column(victim)
    n_known, n_targets = (300, 300) if scale == "ci" else (len(victim.attacker_pool), 1000)
    known = victim.attacker_pool[:n_known]
    targets, _ = _targets(victim, n_targets, seed)
    recorder = Recorder(victim, cap=n_known)
    with artbridge.quiet(), artbridge.seeded(seed):
        attack = AttributeInferenceBlackBox(
            artbridge.black_box(recorder), attack_model_type="rf", attack_feature=column
        )
        attack.fit(known)
        pred = victim.labels(targets).reshape(-1, 1).astype(np.float64)
        inferred = attack.infer(np.delete(targets, column, axis=1), pred=pred, values=[0.0, 1.0])
    art_accuracy = float(np.mean(np.asarray(inferred).ravel() == targets[:, column]))
    return AttackRun(
        name="attribute-blackbox",
        technique=INVERSION,
        victim=victim.name,
        family="attribute",
        queries=recorder.queries,
        scorer=_blackbox_scorer(victim, column, known, targets, seed),
        primary="accuracy",
        params={"known": n_known, "targets": len(targets), "art_accuracy": art_accuracy, "seed": seed},
    )


def _fredrikson_scorer(
    victim: Victim, column: int, targets: Matrix, outcomes: np.ndarray, order: list[tuple[int, int]]
) -> Scorer:
    """``order[k]`` is the (target, value) query ``k`` asked about; a target is decided once both are answered."""
    truth = targets[:, column].astype(np.int64)
    prior = _prior(victim, column)
    majority = int(np.argmax(prior))
    baseline = float(np.mean(truth == majority))

    def score(queries: Sequence[Query]) -> dict[str, float]:
        guess = np.full(len(targets), majority)
        likely = np.full((len(targets), 2), np.nan)
        if queries:
            _, p = stack(queries)
            for k, (target, value) in enumerate(order[: len(queries)]):
                likely[target, value] = p[k, outcomes[target]] * prior[value]
        done = ~np.isnan(likely).any(axis=1)
        guess[done] = np.argmax(likely[done], axis=1)
        return {"accuracy": float(np.mean(guess == truth)), "baseline": baseline}

    return score


FREDRIKSON_ORDERS = ("pairs", "passes")


def fredrikson(victim: Victim, seed: int, scale: Scale, *, order: str = "pairs", batch: int = 2) -> AttackRun:
    """Sweep the sensitive column of each target over its values; keep the one that best explains its outcome.

    ``order="pairs"`` sends each target's two versions together; ``"passes"`` sends every
    target with one value, then every target with the other, in requests of ``batch`` rows,
    so the two versions of a record are far apart in the traffic.
    """
    column = _column(victim)
    targets, outcomes = _targets(victim, 200 if scale == "ci" else 2000, seed)
    recorder = Recorder(victim, cap=2 * len(targets))
    if order == "pairs":
        plan = [(t, v) for t in range(len(targets)) for v in (0, 1)]
    elif order == "passes":
        plan = [(t, v) for v in (0, 1) for t in range(len(targets))]
    else:
        raise BenchError(f"fredrikson: unknown order {order!r}; allowed: {', '.join(FREDRIKSON_ORDERS)}")
    size = 2 if order == "pairs" else batch
    for start in range(0, len(plan), size):
        chunk = plan[start : start + size]
        rows = targets[[t for t, _ in chunk]].copy()
        rows[:, column] = [float(v) for _, v in chunk]
        recorder.predict_proba(rows)
    return AttackRun(
        name="fredrikson",
        technique=INVERSION,
        victim=victim.name,
        family="attribute",
        queries=recorder.queries,
        scorer=_fredrikson_scorer(victim, column, targets, outcomes, plan),
        primary="accuracy",
        params={"targets": len(targets), "order": order, "seed": seed},
    )
