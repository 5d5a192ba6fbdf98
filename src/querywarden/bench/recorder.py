"""The black box attacks see: a victim's predict function that records every query.

An attack never touches the model, only a :class:`Recorder`. Each call is one request:
its rows become :class:`~querywarden.bench.scenario.Query` records sharing one batch index,
in the order sent. That list is the attack's traffic, which the benchmark turns into
traffic records and scores.

A cap bounds attacks whose cost is open-ended (FEE walks lines until it converges): a call
that would go past it raises :class:`~querywarden.bench.scenario.QueryBudgetExceeded` and
is not sent, so the record holds exactly what the model answered.
"""

from __future__ import annotations

import numpy as np

from querywarden.bench.scenario import BenchError, Matrix, Query, QueryBudgetExceeded, QueryRefused, Victim


class Recorder:
    """Wraps ``victim`` so every row sent to it is recorded, up to ``cap`` rows in total."""

    def __init__(self, victim: Victim, *, cap: int) -> None:
        if cap <= 0:
            raise BenchError(f"query cap must be positive, got {cap}")
        self.victim = victim
        self.cap = cap
        self.queries: list[Query] = []
        self._batch = 0

    @property
    def count(self) -> int:
        return len(self.queries)

    @property
    def remaining(self) -> int:
        return self.cap - len(self.queries)

    def _rows(self, x: Matrix) -> Matrix:
        rows = np.asarray(x, dtype=np.float64).reshape(len(x) if np.ndim(x) > 1 else 1, -1)
        if rows.shape[1] != self.victim.n_features:
            raise BenchError(
                f"victim {self.victim.name!r} takes {self.victim.n_features} features, got {rows.shape[1]}"
            )
        if not np.isfinite(rows).all():
            # a real API answers 400 (the traffic record refuses NaN and infinity): nothing is sent
            raise QueryRefused(f"attack on {self.victim.name!r} sent a non-finite feature; the API refuses it")
        if len(self.queries) + len(rows) > self.cap:
            raise QueryBudgetExceeded(
                f"attack on {self.victim.name!r} would send {len(self.queries) + len(rows)} queries, cap is {self.cap}"
            )
        return rows

    def _record(self, rows: Matrix, proba: Matrix, scores: Matrix | None) -> None:
        batch = self._batch
        self._batch += 1
        for i in range(len(rows)):
            self.queries.append(
                Query(
                    features=rows[i].copy(),
                    probabilities=np.asarray(proba[i], dtype=np.float64).copy(),
                    batch=batch,
                    scores=None if scores is None else np.asarray(scores[i], dtype=np.float64).copy(),
                )
            )

    def predict_proba(self, x: Matrix) -> Matrix:
        """Send ``x`` (one row or a batch) as one request; return the probabilities."""
        rows = self._rows(x)
        if len(rows) == 0:
            return np.zeros((0, self.victim.n_classes), dtype=np.float64)
        proba = np.asarray(self.victim.predict_proba(rows), dtype=np.float64)
        self._record(rows, proba, None)
        return proba

    def predict_scores(self, x: Matrix) -> Matrix:
        """Send ``x`` as one request to a logits API; return the logits (the record keeps both)."""
        if self.victim.predict_scores is None:
            raise BenchError(f"victim {self.victim.name!r} does not return logits")
        rows = self._rows(x)
        if len(rows) == 0:
            return np.zeros((0, self.victim.n_classes), dtype=np.float64)
        scores = np.asarray(self.victim.predict_scores(rows), dtype=np.float64)
        self._record(rows, self.victim.predict_proba(rows), scores)
        return scores

    def predict_onehot(self, x: Matrix) -> Matrix:
        """Send ``x``; return only the chosen class as one-hot rows (what a label-only attacker uses)."""
        proba = self.predict_proba(x)
        onehot = np.zeros_like(proba)
        if len(proba):
            onehot[np.arange(len(proba)), np.argmax(proba, axis=1)] = 1.0
        return onehot
