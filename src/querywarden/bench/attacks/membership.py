"""Membership inference with ART: the black-box attack and the label-only decision-boundary attack.

Both run against the deliberately overfit victim, because a model that generalises leaks
little membership (AUC about 0.5-0.6) and the benchmark must show damage to show it is
prevented.

``mia-blackbox`` (Shokri-style, ART's ``MembershipInferenceBlackBox`` with a random-forest
attack model): the attacker knows some members and some non-members, queries the victim on
them, learns how member outputs differ, then queries each candidate once. Its traffic is
one pass over natural records: batch scoring.

``mia-labelonly`` (Choquette-Choo et al. 2021, ART's ``LabelOnlyDecisionBoundary``): members
sit farther from the decision boundary; the attacker measures that distance with
HopSkipJump around every known record (to calibrate a threshold) and every candidate.
Its traffic is a HopSkipJump walk per record.

Success is the membership AUC over the candidates (half members, half not). A candidate not
yet queried in a prefix gets an uninformative score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from querywarden.bench.attacks import artbridge
from querywarden.bench.attacks.scoring import roc_auc, segments, stack
from querywarden.bench.recorder import Recorder
from querywarden.bench.scenario import AttackRun, BenchError, Matrix, Query, Scale, Scorer, Victim
from querywarden.core.atlas import MEMBERSHIP


@dataclass(frozen=True, slots=True)
class _Cohort:
    """What the attacker holds: known members and non-members, and shuffled candidates."""

    known_in: Matrix
    known_in_y: np.ndarray
    known_out: Matrix
    known_out_y: np.ndarray
    candidates: Matrix
    candidates_y: np.ndarray
    is_member: np.ndarray


def _cohort(victim: Victim, known: int, candidates: int, seed: int) -> _Cohort:
    if 2 * max(known, candidates) > len(victim.x_train) + known:
        raise BenchError(f"victim {victim.name!r} has too few members for {known} known and {candidates} candidates")
    rng = np.random.default_rng(seed)
    ins = rng.permutation(len(victim.x_train))
    outs = rng.permutation(len(victim.x_test))
    known_in, cand_in = ins[:known], ins[known : known + candidates]
    known_out, cand_out = outs[:known], outs[known : known + candidates]
    cand_x = np.concatenate([victim.x_train[cand_in], victim.x_test[cand_out]])
    cand_y = np.concatenate([victim.y_train[cand_in], victim.y_test[cand_out]])
    member = np.concatenate([np.ones(len(cand_in), bool), np.zeros(len(cand_out), bool)])
    order = rng.permutation(len(cand_x))
    return _Cohort(
        victim.x_train[known_in],
        victim.y_train[known_in],
        victim.x_test[known_out],
        victim.y_test[known_out],
        cand_x[order],
        cand_y[order],
        member[order],
    )


def _sealed(victim: Victim) -> Any:
    """An ART estimator for re-scoring recorded answers; it refuses to send a query."""

    def refuse(x: Matrix) -> Matrix:
        raise BenchError("scoring must use recorded answers, not new queries")

    lo, hi = victim.bounds()
    from art.estimators.classification import BlackBoxClassifier

    return BlackBoxClassifier(
        refuse,
        input_shape=(victim.n_features,),
        nb_classes=victim.n_classes,
        clip_values=(lo.copy(), np.where(hi > lo, hi, lo + 1.0)),
        preprocessing=None,
    )


def _blackbox_scorer(victim: Victim, cohort: _Cohort, seed: int) -> Scorer:
    n_in, n_out = len(cohort.known_in), len(cohort.known_out)

    def score(queries: Sequence[Query]) -> dict[str, float]:
        _, p = stack(queries)
        got_in = p[: min(len(p), n_in)]
        got_out = p[n_in : min(len(p), n_in + n_out)]
        cand = p[n_in + n_out :]
        if len(got_in) == 0 or len(got_out) == 0 or len(cand) == 0:
            return {"auc": 0.5}
        from art.attacks.inference.membership_inference import MembershipInferenceBlackBox

        with artbridge.quiet(), artbridge.seeded(seed):
            attack = MembershipInferenceBlackBox(_sealed(victim), attack_model_type="rf")
            attack.fit(
                y=cohort.known_in_y[: len(got_in)],
                test_y=cohort.known_out_y[: len(got_out)],
                pred=got_in,
                test_pred=got_out,
            )
            inferred = attack.infer(None, cohort.candidates_y[: len(cand)], pred=cand, probabilities=True)
        scores = np.full(len(cohort.candidates), 0.5)
        scores[: len(cand)] = np.asarray(inferred, dtype=np.float64).reshape(len(cand), -1)[:, -1]
        return {"auc": roc_auc(scores, cohort.is_member)}

    return score


def mia_blackbox(
    victim: Victim,
    seed: int,
    scale: Scale,
    *,
    known: int | None = None,
    candidates: int | None = None,
    attack_model: str = "rf",
) -> AttackRun:
    """Black-box membership inference: learn member outputs from known records, then score the candidates."""
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox

    n_known, n_candidates = (100, 100) if scale == "ci" else (150, 150)
    known = n_known if known is None else known
    candidates = n_candidates if candidates is None else candidates
    cohort = _cohort(victim, known, candidates, seed)
    recorder = Recorder(victim, cap=2 * known + 2 * candidates)
    with artbridge.quiet(), artbridge.seeded(seed):
        attack = MembershipInferenceBlackBox(artbridge.black_box(recorder), attack_model_type=attack_model)
        attack.fit(cohort.known_in, cohort.known_in_y, cohort.known_out, cohort.known_out_y)
        attack.infer(cohort.candidates, cohort.candidates_y, probabilities=True)
    return AttackRun(
        name="mia-blackbox",
        technique=MEMBERSHIP,
        victim=victim.name,
        family="membership",
        queries=recorder.queries,
        scorer=_blackbox_scorer(victim, cohort, seed),
        primary="auc",
        params={"known": known, "candidates": 2 * candidates, "attack_model": attack_model, "seed": seed},
    )


def _labelonly_scorer(victim: Victim, cohort: _Cohort, start: int, bounds: list[int]) -> Scorer:
    """Distance to the boundary per candidate, in units of each feature's documented range.

    Raw distances on Adult are dominated by capital gain (0-99,999); dividing by the ranges
    the API documents (as an attacker can) weighs every feature alike.
    """
    lo, hi = victim.bounds()
    width = np.where(hi > lo, hi - lo, 1.0)

    def score(queries: Sequence[Query]) -> dict[str, float]:
        feats, proba = stack(queries)
        distance = np.full(len(cohort.candidates), np.nan)
        for i, (first, last) in enumerate(segments(bounds, len(queries))):
            first, last = max(first, start), max(last, start)
            if last <= first:
                continue
            flipped = np.argmax(proba[first:last], axis=1) != cohort.candidates_y[i]
            if not flipped.any():
                continue
            steps = (feats[first:last][flipped] - cohort.candidates[i]) / width
            distance[i] = float(np.min(np.linalg.norm(steps, axis=1)))
        known = ~np.isnan(distance)
        fill = float(np.median(distance[known])) if known.any() else 0.0
        return {"auc": roc_auc(np.where(known, distance, fill), cohort.is_member)}

    return score


def mia_labelonly(
    victim: Victim,
    seed: int,
    scale: Scale,
    *,
    known: int | None = None,
    candidates: int | None = None,
    max_iter: int | None = None,
    max_eval: int | None = None,
    init_eval: int = 20,
) -> AttackRun:
    """Label-only membership inference: distance to the boundary, measured with HopSkipJump.

    ``max_iter``, ``max_eval`` and ``init_eval`` are HopSkipJump's, per record; the defaults
    are the scale's (5 and 100 at ci, 20 and 500 at full).
    """
    from art.attacks.inference.membership_inference import LabelOnlyDecisionBoundary

    n_known, n_candidates, iters, evals = (10, 50, 5, 100) if scale == "ci" else (30, 100, 20, 500)
    known = n_known if known is None else known
    candidates = n_candidates if candidates is None else candidates
    iters = iters if max_iter is None else max_iter
    evals = evals if max_eval is None else max_eval
    cohort = _cohort(victim, known, candidates, seed)
    recorder = Recorder(victim, cap=10**7)
    hsj = {"max_iter": iters, "max_eval": evals, "init_eval": init_eval, "init_size": 50, "verbose": False}
    bounds: list[int] = []
    low, width = artbridge.unit_box(recorder)
    known_in, known_out, cands = ((m - low) / width for m in (cohort.known_in, cohort.known_out, cohort.candidates))
    with artbridge.quiet(), artbridge.seeded(seed), artbridge.derived_random_states():
        attack = LabelOnlyDecisionBoundary(artbridge.black_box(recorder, unit=True))
        attack.calibrate_distance_threshold(known_in, cohort.known_in_y, known_out, cohort.known_out_y, **hsj)
        start = recorder.count
        segment_start = start
        for i in range(len(cands)):
            attack.infer(cands[i : i + 1], cohort.candidates_y[i : i + 1], **hsj)
            bounds.append(recorder.count - segment_start)
        bounds = [start + b for b in bounds]
    return AttackRun(
        name="mia-labelonly",
        technique=MEMBERSHIP,
        victim=victim.name,
        family="iterative",
        queries=recorder.queries,
        scorer=_labelonly_scorer(victim, cohort, start, bounds),
        primary="auc",
        params={
            "known": known,
            "candidates": 2 * candidates,
            "hsj_iterations": iters,
            "hsj_max_eval": evals,
            "hsj_init_eval": init_eval,
            "seed": seed,
        },
    )
