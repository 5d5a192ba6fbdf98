"""Copy index: finds another principal's recent query that this one repeats with one or two
features changed.

Attribute inference split over keys in two passes sends each target record from one key and
the same record with the sensitive feature set to another value from a second key. Neither
key sweeps anything on its own; together they do. The index holds the quantised inputs of
recent queries (``capacity`` at most, oldest dropped first) under keys that ignore two of
``bands`` contiguous feature bands at a time: two inputs equal except in at most two
features agree on every band but at most two, so they share at least one key. A candidate
is confirmed on the stored input itself, so a key collision costs a comparison, never a
false match. A key remembers its latest few inputs as a tuple of integers (which the
garbage collector need not follow): low-entropy records share keys. Pure: no clock, no I/O.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

_BANDS = 6
_MAX_CHANGED = 2
_PER_KEY = 4
"""Stored inputs remembered under one key (the latest)."""
_MASK = (1 << 63) - 1


class Copy(NamedTuple):
    """A stored query of ``principal`` that the new one repeats with ``features`` changed
    from the quantised values ``old`` to ``new``; ``base`` identifies the stored input (the
    record both queries share)."""

    principal: str
    base: int
    features: tuple[int, ...]
    old: tuple[int, ...]
    new: tuple[int, ...]


class _Row(NamedTuple):
    principal: str
    ts: float
    code: np.ndarray
    base: int
    keys: tuple[int, ...]


class CopyIndex:
    def __init__(self, dim: int, capacity: int) -> None:
        if dim < 3 or capacity < 1:
            raise ValueError("copy index: at least 3 features and a positive capacity are required")
        self.dim = dim
        self.capacity = capacity
        bands = min(_BANDS, dim)
        self._starts = np.linspace(0, dim, bands + 1).astype(np.int64)[:-1]
        rng = np.random.default_rng(20_260_001)
        self._weights = rng.integers(1, 2**62, size=dim, dtype=np.uint64)
        self._pairs = [(i, j, i * 8 + j) for i, j in itertools.combinations(range(bands), 2)]
        self._rows: OrderedDict[int, _Row] = OrderedDict()
        self._keys: dict[int, tuple[int, ...]] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._rows)

    def _masked(self, code: np.ndarray) -> tuple[int, tuple[int, ...]]:
        """The input's digest, and its keys: one per pair of bands left out."""
        prods = code.astype(np.uint64)
        prods *= self._weights  # wraps modulo 2**64: the same in every process
        sums = np.add.reduceat(prods, self._starts).tolist()
        total = sum(sums)
        return total & _MASK, tuple(((total - sums[i] - sums[j]) << 6 | ij) & _MASK for i, j, ij in self._pairs)

    def find(self, code: np.ndarray, principal: str, since: float) -> list[Copy]:
        """Stored queries of other principals, at or after ``since``, that ``code`` repeats
        with one or two features changed; one per stored query."""
        return self._find(code, principal, since, self._masked(code)[1])

    def find_and_add(self, code: np.ndarray, principal: str, ts: float, since: float) -> list[Copy]:
        """``find``, then store the input."""
        base, keys = self._masked(code)
        out = self._find(code, principal, since, keys)
        self._add(code, principal, ts, base, keys)
        return out

    def add(self, code: np.ndarray, principal: str, ts: float) -> None:
        base, keys = self._masked(code)
        self._add(code, principal, ts, base, keys)

    def digest(self, code: np.ndarray) -> int:
        """The identity the index gives an input (the ``base`` of copies of it)."""
        return self._masked(code)[0]

    def _find(self, code: np.ndarray, principal: str, since: float, keys: tuple[int, ...]) -> list[Copy]:
        out: list[Copy] = []
        checked: set[int] = set()
        rows = self._rows
        index = self._keys
        for key in keys:
            for seq in index.get(key, ()):
                if seq in checked:
                    continue
                checked.add(seq)
                row = rows.get(seq)
                if row is None or row.principal == principal or row.ts < since:
                    continue
                changed = (row.code != code).nonzero()[0]  # 1-d: flatnonzero without its reshaping
                if 1 <= changed.shape[0] <= _MAX_CHANGED:
                    features = tuple(changed.tolist())
                    old = tuple(row.code[changed].tolist())
                    out.append(Copy(row.principal, row.base, features, old, tuple(code[changed].tolist())))
        return out

    def _add(self, code: np.ndarray, principal: str, ts: float, base: int, keys: tuple[int, ...]) -> None:
        seq = self._next
        self._next += 1
        self._rows[seq] = _Row(principal, ts, code, base, keys)
        index = self._keys
        for key in keys:
            index[key] = (*index.get(key, ())[1 - _PER_KEY :], seq)
        while len(self._rows) > self.capacity:
            old, row = self._rows.popitem(last=False)
            for key in row.keys:
                held = index.get(key)
                if held is not None and old in held:
                    rest = tuple(s for s in held if s != old)
                    if rest:
                        index[key] = rest
                    else:
                        del index[key]
