"""Copy index: finds another principal's recent query that this one repeats with one or two
features changed.

Attribute inference split over keys in two passes sends each target record from one key and
the same record with the sensitive feature set to another value from a second key. Neither
key sweeps anything on its own; together they do. The index holds the quantised inputs of
recent queries (``capacity`` at most, oldest dropped first) under keys that ignore two of
``bands`` contiguous feature bands at a time: two inputs equal except in at most two
features agree on every band but at most two, so they share at least one key. A candidate
is confirmed on the stored input itself, so a key collision costs a comparison, never a
false match. Pure: no clock, no I/O.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from querywarden.detectors.fingerprint_index import stable_hash

_BANDS = 6
_PER_KEY = 4
"""Stored inputs remembered under one key (the latest): common band contents cannot flood it
because every key spans all bands but two."""
_MAX_CHANGED = 2
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


class CopyIndex:
    def __init__(self, dim: int, capacity: int) -> None:
        if dim < 3 or capacity < 1:
            raise ValueError("copy index: at least 3 features and a positive capacity are required")
        self.dim = dim
        self.capacity = capacity
        bands = min(_BANDS, dim)
        self._edges = np.linspace(0, dim, bands + 1).astype(np.int64)
        rng = np.random.default_rng(20_260_001)
        self._weights = rng.integers(1, 2**62, size=dim, dtype=np.uint64)
        self._pairs = list(itertools.combinations(range(bands), 2))
        self._rows: OrderedDict[int, _Row] = OrderedDict()
        self._keys: dict[int, list[int]] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._rows)

    def _band_sums(self, code: np.ndarray) -> list[int]:
        prods = code.astype(np.uint64) * self._weights
        return [int(s) for s in np.add.reduceat(prods, self._edges[:-1])]

    def _masked(self, code: np.ndarray) -> list[int]:
        sums = self._band_sums(code)
        total = sum(sums)
        # the same in every process (ints do not hash randomly), so a snapshot stays valid
        return [((total - sums[i] - sums[j]) * 64 + i * 8 + j) & _MASK for i, j in self._pairs]

    def find(self, code: np.ndarray, principal: str, since: float) -> list[Copy]:
        """Stored queries of other principals, at or after ``since``, that ``code`` repeats
        with one or two features changed; one per stored query."""
        out: list[Copy] = []
        checked: set[int] = set()
        rows = self._rows
        for key in self._masked(code):
            for seq in self._keys.get(key, ()):
                if seq in checked:
                    continue
                checked.add(seq)
                row = rows.get(seq)
                if row is None or row.principal == principal or row.ts < since:
                    continue
                changed = np.flatnonzero(row.code != code)
                if 1 <= changed.shape[0] <= _MAX_CHANGED:
                    features = tuple(changed.tolist())
                    old = tuple(row.code[changed].tolist())
                    out.append(Copy(row.principal, row.base, features, old, tuple(code[changed].tolist())))
        return out

    def add(self, code: np.ndarray, principal: str, ts: float) -> None:
        seq = self._next
        self._next += 1
        self._rows[seq] = _Row(principal, ts, code, stable_hash(code.tobytes()))
        for key in self._masked(code):
            held = [s for s in self._keys.get(key, ()) if s in self._rows][-(_PER_KEY - 1) :]
            held.append(seq)
            self._keys[key] = held
        while len(self._rows) > self.capacity:
            old, row = self._rows.popitem(last=False)
            for key in self._masked(row.code):
                held = [s for s in self._keys.get(key, ()) if s != old]
                if held:
                    self._keys[key] = held
                else:
                    self._keys.pop(key, None)
