"""An online copy of a model built from one account's answers, and how well it already agrees.

Every extraction ends with a copy trained on the answers the attacker received, so the
exposure that matters is the point at which an account's answers *suffice* for a copy.
This module measures it with the simplest copy there is: a 1-nearest-neighbour
classifier over the account's own queries and the classes the model answered.

Its agreement is measured leave-one-out, for free: every stored answer keeps the class of
its nearest *other* stored answer, updated from the one distance vector each new answer
needs anyway (a new answer can only become someone's nearest neighbour). So there is no
refit, no held-out set and no model call: the model's own answers are the test labels,
and the estimate is that of the current copy, not an average over its learning curve.
Agreement is kept per class; the caller weighs each class by its share of the model's
answers, so the estimate is agreement on the natural mix of inputs, and a customer who
only ever sends one kind of record holds a copy that is right on that kind only.

1-NN needs no learning rate and no model family, so the estimate means the same on every
victim. It is not the best copy a thief can train: on the benchmark's digits victim a 1-NN
copy of 200 natural answers agrees 0.93 with the model on held-out digits and a logistic
regression 0.92, but on Adult's one-hot records 0.90 against 0.96.

Memory per account is at most ``capacity`` rows of float32 (a ring: the newest
answers replace the oldest), allocated as the account grows; a replaced row may still be
some row's recorded nearest neighbour until a closer one arrives.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
_FIRST_ROWS = 16


class AnswerCopy:
    """One account's 1-NN copy, with each stored answer's nearest other stored answer."""

    __slots__ = ("head", "indexed", "labels", "learned", "nn_dist", "nn_label", "norms", "rows", "size")

    def __init__(self) -> None:
        self.rows: F32 | None = None
        self.norms: F32 | None = None
        self.labels: I32 | None = None
        self.nn_dist: F32 | None = None
        self.nn_label: I32 | None = None
        self.size = 0
        self.head = 0
        self.learned = 0
        self.indexed = False

    def learn(self, z: F32, cls: int, *, capacity: int, index_from: int) -> bool:
        """Keep the answer ``cls`` at ``z``; False for an exact repeat of a stored query (a
        retry teaches a copy nothing).

        Until ``index_from`` answers have been kept, answers are only stored: most accounts
        never send enough to be judged, and they should not pay for nearest neighbours. At
        that count the stored answers are indexed at once (repeats dropped, each one's
        nearest other found), and from then on each answer updates the index."""
        n = self.size
        if not self.indexed:
            at = self._slot(z, capacity)
            assert self.rows is not None and self.norms is not None and self.labels is not None
            self.rows[at], self.norms[at], self.labels[at] = z, float(z @ z), cls
            self.learned += 1
            if self.learned >= index_from:
                self._index()
            return True
        if n:
            rows, norms, nn_dist = self.rows, self.norms, self.nn_dist
            assert rows is not None and norms is not None and nn_dist is not None
            assert self.labels is not None and self.nn_label is not None
            zz = float(z @ z)
            d = rows[:n] @ z
            d *= -2.0
            d += norms[:n]
            d += zz  # squared distances to every stored answer
            best = int(d.argmin())
            if d[best] <= 1e-6 * (zz + 1.0) and np.array_equal(rows[best], z):
                return False
            near = (d < nn_dist[:n]).nonzero()[0]  # the stored answers z is now nearest to
            if near.shape[0]:
                nn_dist[near] = d[near]
                self.nn_label[near] = cls
            nearest_dist, nearest_label = float(d[best]), int(self.labels[best])
        else:
            zz = float(z @ z)
            nearest_dist, nearest_label = np.inf, -1
        at = self._slot(z, capacity)
        assert self.rows is not None and self.norms is not None and self.labels is not None
        assert self.nn_dist is not None and self.nn_label is not None
        self.nn_dist[at], self.nn_label[at] = nearest_dist, nearest_label
        self.rows[at] = z
        self.norms[at] = zz
        self.labels[at] = cls
        self.learned += 1
        return True

    def _index(self) -> None:
        """Drop exact repeats among the stored answers and find each one's nearest other."""
        assert self.rows is not None and self.norms is not None and self.labels is not None
        assert self.nn_dist is not None and self.nn_label is not None
        n = self.size
        order = np.array([(self.head + i) % n for i in range(n)], dtype=np.intp)  # oldest first
        _, first = np.unique(self.rows[order], axis=0, return_index=True)
        keep = order[np.sort(first)]
        m = keep.shape[0]
        self.rows[:m], self.norms[:m], self.labels[:m] = self.rows[keep], self.norms[keep], self.labels[keep]
        self.learned -= n - m
        self.size, self.head, self.indexed = m, 0, True
        rows, norms = self.rows[:m], self.norms[:m]
        d = norms[:, None] + norms[None, :] - 2.0 * (rows @ rows.T)
        np.fill_diagonal(d, np.inf)
        nearest = d.argmin(axis=1)
        self.nn_dist[:m] = d[np.arange(m), nearest]
        self.nn_label[:m] = np.where(np.isfinite(self.nn_dist[:m]), self.labels[nearest], -1)

    def _slot(self, z: F32, capacity: int) -> int:
        """Where the next answer goes: the next free row (growing the arrays), else the oldest."""
        if self.rows is None or (self.size == self.rows.shape[0] and self.size < capacity):
            grown = min(capacity, max(_FIRST_ROWS, 2 * self.size))
            old = (self.rows, self.norms, self.labels, self.nn_dist, self.nn_label)
            self.rows = np.zeros((grown, z.shape[0]), np.float32)
            self.norms = np.zeros(grown, np.float32)
            self.labels = np.zeros(grown, np.int32)
            self.nn_dist = np.zeros(grown, np.float32)
            self.nn_label = np.zeros(grown, np.int32)
            new = (self.rows, self.norms, self.labels, self.nn_dist, self.nn_label)
            for a, b in zip(old, new, strict=True):
                if a is not None:
                    b[: self.size] = a[: self.size]
        if self.size < self.rows.shape[0]:
            self.size += 1
            return self.size - 1
        at = self.head  # full: the newest answer replaces the oldest
        self.head = (self.head + 1) % self.size
        return at

    def agreement(self, shares: dict[int, float]) -> float:
        """Estimated agreement of the copy with the model on inputs whose answers follow
        ``shares`` (class -> share of the model's answers).

        Per class, the share of stored answers whose nearest other stored answer has the same
        class (leave-one-out), shrunk by one answer (``hits / (n + 1)``) so a class answered
        twice does not count as a perfect copy of it."""
        n = self.size
        if n < 2 or not self.indexed:
            return 0.0
        assert self.labels is not None and self.nn_label is not None
        labels = self.labels[:n]
        hits = np.bincount(labels[self.nn_label[:n] == labels])
        counts = np.bincount(labels)
        total = 0.0
        for cls in np.flatnonzero(counts).tolist():
            share = shares.get(cls)
            if share:
                total += share * float(hits[cls] if cls < hits.shape[0] else 0) / (int(counts[cls]) + 1)
        return total

    def absorb(self, other: AnswerCopy, *, capacity: int, index_from: int) -> None:
        """Fold another account's copy in (a principal joining an actor)."""
        if other.rows is not None and other.labels is not None:
            learned = self.learned
            for i in [(other.head + i) % other.size for i in range(other.size)]:  # oldest first
                self.learn(other.rows[i], int(other.labels[i]), capacity=capacity, index_from=index_from)
            self.learned = learned
        self.learned += other.learned

    def nbytes(self) -> int:
        arrays = (self.rows, self.norms, self.labels, self.nn_dist, self.nn_label)
        return sum(a.nbytes for a in arrays if a is not None)
