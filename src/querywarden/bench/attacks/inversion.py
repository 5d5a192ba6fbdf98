"""Model inversion with ART's MIFace (Fredrikson et al. 2015) over a black box.

MIFace climbs the victim's confidence in a class from a blank image, by gradient ascent.
ART's implementation needs class gradients, which only a white-box model gives; an API
attacker estimates them instead by finite differences, asking the victim about the
current image with each pixel nudged up and down by ``h``: ``2 x 64`` rows per class per
step on digits. :func:`finite_difference_classifier` builds that estimator around the
recorder, so every nudged row is a recorded query.

Its traffic: large batches of rows that differ from one another in a single pixel by a
fixed amount, alternating with small batches (the current images), every batch a small
step from the last.

Success is judged against each class's mean training image: ``identified`` (the headline) is
the share of classes whose reconstruction correlates better with its own class mean than
with any other class's, ``similarity`` the mean Pearson correlation with its own class mean
and ``margin`` how much better it correlates with its own mean than with the best other
one. (From a blank start the raw correlation can stay low while the reconstruction still
singles out its class; the identification rate is what tells the attacker something.) The
reconstructions after k queries are the current images of the last complete step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from querywarden.bench.attacks import artbridge
from querywarden.bench.recorder import Recorder
from querywarden.bench.scenario import AttackRun, Matrix, Query, Scale, Scorer, Victim
from querywarden.core.atlas import INVERSION


def finite_difference_classifier(recorder: Recorder, h: float) -> Any:
    """An ART black-box classifier with class gradients estimated by central differences through ``recorder``.

    The gradient is that of the class's log-probability: far from the class the probability
    is flat (about 0) and its differences vanish, while the log keeps a usable slope.
    """
    artbridge.configure()
    from art.estimators.classification import BlackBoxClassifier, ClassGradientsMixin

    victim = recorder.victim
    lo, hi = victim.bounds()
    d = victim.n_features

    class FiniteDifferenceClassifier(ClassGradientsMixin, BlackBoxClassifier):  # type: ignore[misc]
        def class_gradient(self, x: Matrix, label: Any = None, **kwargs: Any) -> Matrix:
            x = np.asarray(x, dtype=np.float64).reshape(len(x), d)
            classes = np.broadcast_to(np.asarray(label if label is not None else 0), (len(x),))
            offsets = h * np.eye(d)
            rows = np.concatenate([np.concatenate([row + offsets, row - offsets]) for row in x])
            proba = recorder.predict_proba(rows).reshape(len(x), 2, d, -1)
            picked = np.log(np.clip(proba[np.arange(len(x)), :, :, classes], 1e-300, None))  # (n, 2, d)
            grads = (picked[:, 0, :] - picked[:, 1, :]) / (2 * h)
            return grads.reshape(len(x), 1, d)

    return FiniteDifferenceClassifier(
        recorder.predict_proba,
        input_shape=(d,),
        nb_classes=victim.n_classes,
        clip_values=(lo.copy(), np.where(hi > lo, hi, lo + 1.0)),
        preprocessing=None,
    )


def class_means(victim: Victim) -> Matrix:
    return np.stack([victim.x_train[victim.y_train == c].mean(axis=0) for c in range(victim.n_classes)])


def _correlation(a: Matrix, b: Matrix) -> Matrix:
    """Pairwise Pearson correlation between the rows of ``a`` and of ``b`` (0 for a constant row)."""
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    na = np.linalg.norm(ac, axis=1, keepdims=True)
    nb = np.linalg.norm(bc, axis=1, keepdims=True)
    na[na == 0] = np.inf
    nb[nb == 0] = np.inf
    return np.asarray((ac / na) @ (bc / nb).T)


def _latest_iterates(queries: Sequence[Query], n_classes: int) -> Matrix | None:
    """The current images, from the last request that sent exactly one row per class.

    MIFace sends its current images in one request after every gradient step (gradient
    requests carry ``2d`` rows per image, never ``n_classes``); an attacker reads its
    reconstructions from the last one.
    """
    end = len(queries)
    while end > 0:
        batch = queries[end - 1].batch
        start = end - 1
        while start > 0 and queries[start - 1].batch == batch:
            start -= 1
        if end - start == n_classes:
            return np.stack([q.features for q in queries[start:end]])
        end = start
    return None


def _scorer(victim: Victim, classes: np.ndarray) -> Scorer:
    means = class_means(victim)

    def score(queries: Sequence[Query]) -> dict[str, float]:
        recon = _latest_iterates(queries, len(classes))
        if recon is None:
            return {"identified": 0.0, "similarity": 0.0, "margin": 0.0}
        corr = _correlation(recon, means)
        own = corr[np.arange(len(classes)), classes]
        others = corr.copy()
        others[np.arange(len(classes)), classes] = -np.inf
        identified = (np.argmax(corr, axis=1) == classes) & (own > others.max(axis=1))
        return {
            "identified": float(np.mean(identified)),
            "similarity": float(np.mean(own)),
            "margin": float(np.mean(own - others.max(axis=1))),
        }

    return score


def miface(
    victim: Victim,
    seed: int,
    scale: Scale,
    *,
    iterations: int | None = None,
    learning_rate: float = 0.05,
    difference: float = 0.05,
) -> AttackRun:
    """MIFace from a blank image for every class, with finite-difference gradients through the black box.

    ``learning_rate`` is the step per unit of log-probability gradient and ``difference``
    the finite-difference nudge ``h``, both as fractions of the widest feature range.
    """
    from art.attacks.inference.model_inversion import MIFace

    iters = (20 if scale == "ci" else 60) if iterations is None else iterations
    lo, hi = victim.bounds()
    h = difference * float(np.max(hi - lo))
    classes = np.arange(victim.n_classes)
    recorder = Recorder(victim, cap=10**7)
    with artbridge.quiet(), artbridge.seeded(seed):
        attack = MIFace(
            finite_difference_classifier(recorder, h),
            max_iter=iters,
            window_length=max(iters, 2),
            threshold=1.0,
            learning_rate=learning_rate * float(np.max(hi - lo)),
            batch_size=len(classes),
            verbose=False,
        )
        attack.infer(None, classes)
    return AttackRun(
        name="miface",
        technique=INVERSION,
        victim=victim.name,
        family="iterative",
        queries=recorder.queries,
        scorer=_scorer(victim, classes),
        primary="identified",
        params={"iterations": iters, "h": h, "learning_rate": learning_rate, "seed": seed},
    )
