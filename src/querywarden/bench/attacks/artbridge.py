"""How ART attacks reach a victim: through the recorder, as a black box, quietly.

IBM's Adversarial Robustness Toolbox (ART) wants its own estimator classes. This module
builds them around a :class:`~querywarden.bench.recorder.Recorder` so every query an ART
attack makes is recorded, and works around the traps noted when running ART 1.20.1 on CPU
without torch:

- ART casts inputs through ``art.config.ART_NUMPY_DTYPE`` (float32 by default) and its
  default preprocessing; FEE then never converges. The bridge sets float64 and passes
  ``preprocessing=None``.
- ART's extraction attacks train a thief through ``fit(x, y, batch_size=..., nb_epochs=...)``,
  which scikit-learn models reject; :class:`SklearnThief` drops those arguments.
- ART draws from numpy's global random state; :func:`seeded` fixes and then restores it so a
  run is reproducible without leaking state to the caller.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from querywarden.bench.recorder import Recorder
from querywarden.bench.scenario import Matrix

with warnings.catch_warnings():
    # ART warns at import that torch/tensorflow are missing; that is expected here.
    warnings.simplefilter("ignore")
    import art.attacks
    import art.config
    import art.estimators.classification


def configure() -> None:
    """Make ART keep float64 end to end (set on the config module, where ART reads it)."""
    art.config.ART_NUMPY_DTYPE = np.float64


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence ART's and scikit-learn's warnings and progress logs for the duration."""
    art_logger = logging.getLogger("art")
    level = art_logger.level
    art_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        art_logger.setLevel(level)


class _DerivedRandomState(np.random.RandomState):
    """A ``RandomState()`` built without a seed draws one from numpy's (seeded) global state."""

    def __init__(self, seed: Any = None) -> None:
        super().__init__(int(np.random.randint(0, 2**31 - 1)) if seed is None else seed)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global random state (which ART uses) and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def derived_random_states() -> Iterator[None]:
    """Make ``np.random.RandomState()`` take its seed from numpy's global state for the duration.

    HopSkipJump and BoundaryAttack build a fresh unseeded ``RandomState()`` (seeded by the
    operating system) for their starting points; inside :func:`seeded` this makes them
    reproducible. Use it only around those attacks: the substitute class is not the one
    scikit-learn checks instances against. (The benchmark is single-threaded.)
    """
    original = np.random.RandomState
    np.random.RandomState = _DerivedRandomState  # type: ignore[misc]
    try:
        yield
    finally:
        np.random.RandomState = original  # type: ignore[misc]


def unit_box(recorder: Recorder) -> tuple[Matrix, Matrix]:
    """The victim's feature box as ``(low, width)``, widths floored to 1 for constant features."""
    lo, hi = recorder.victim.bounds()
    return lo, np.where(hi > lo, hi - lo, 1.0)


def black_box(recorder: Recorder, *, logits: bool = False, clip: bool = True, unit: bool = False) -> Any:
    """An ART black-box classifier whose every prediction goes through ``recorder``.

    ``logits=True`` builds the neural-network variant FEE requires and answers with the
    victim's logits. ``clip`` passes the victim's feature box as ART clip values (the
    evasion attacks stay inside it). ``unit=True`` lets the attack work in the unit cube:
    it sees every feature rescaled to [0, 1] by the documented ranges and its rows are
    mapped back before they are sent, as an attacker who normalises its inputs would do (on
    Adult, raw distances are otherwise all capital gain).
    """
    configure()
    from art.estimators.classification import BlackBoxClassifier, BlackBoxClassifierNeuralNetwork

    victim = recorder.victim
    lo, hi = victim.bounds()
    if unit:
        low, width = unit_box(recorder)

        def predict_unit(z: Matrix) -> Matrix:
            return recorder.predict_proba(low + np.asarray(z, dtype=np.float64) * width)

        ones = np.ones(victim.n_features)
        return BlackBoxClassifier(
            predict_unit,
            input_shape=(victim.n_features,),
            nb_classes=victim.n_classes,
            clip_values=(0.0 * ones, ones),
            preprocessing=None,
        )
    # ART rejects a zero-width box; a constant feature gets a unit width above its value
    clip_values = (lo.copy(), np.where(hi > lo, hi, lo + 1.0)) if clip else None
    if logits:
        return BlackBoxClassifierNeuralNetwork(
            recorder.predict_scores,
            input_shape=(victim.n_features,),
            nb_classes=victim.n_classes,
            clip_values=clip_values,
            preprocessing=None,
        )
    return BlackBoxClassifier(
        recorder.predict_proba,
        input_shape=(victim.n_features,),
        nb_classes=victim.n_classes,
        clip_values=clip_values,
        preprocessing=None,
    )


def sklearn_thief(model: Any, victim_features: int, n_classes: int) -> Any:
    """Wrap a scikit-learn model as an ART thief classifier whose ``fit`` ignores ART's training options."""
    configure()
    from art.estimators.classification.scikitlearn import ScikitlearnClassifier

    class SklearnThief(ScikitlearnClassifier):  # type: ignore[misc]
        def fit(self, x: Matrix, y: Matrix, **kwargs: Any) -> None:
            # batch_size, nb_epochs, verbose: ART's training options, meaningless to scikit-learn
            super().fit(x, y)

    thief = SklearnThief(model=model, preprocessing=None)
    thief._input_shape = (victim_features,)
    thief.nb_classes = n_classes
    return thief
