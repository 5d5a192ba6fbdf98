"""Salted window fingerprints of numeric inputs, and one fixed-size table to look them up.

Two inputs that differ in a few features after quantisation still share most of their
*window hashes*: hashes of short runs of consecutive quantised features. Keeping only the
``top_s`` smallest distinct window hashes gives a fingerprint whose overlap with another
input's fingerprint estimates how much of the two inputs is identical (a min-hash sample).
The hashes are keyed with a secret salt so an attacker cannot compute them offline and
steer each query just outside the match threshold.

The table holds every stored query's fingerprint in fixed-size numpy arrays, so its cost
per query does not depend on how many queries were stored and its memory is known up
front:

- a direct-mapped table of up to ``top_s * table_factor * capacity`` entries (a power of two), each a 32-bit tag
  (the hash's high bits) and the sequence number of the query that stored it; a new entry
  overwrites whatever sat in its slot, so old fingerprints fade out on their own;
- a ring of ``capacity`` stored queries (sequence number, exact-content hash,
  principal, actor, chain, time). A table entry counts only while the ring still holds the
  query that wrote it, which is how eviction works without ever deleting from the table.

Everything is numpy arrays and plain ints, so the detector's snapshot carries it as is.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from querywarden.errors import DetectorError

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_HIGH_HALF = 1 if sys.byteorder == "little" else 0
_SHIFT_32 = np.uint64(32)
_GATHER_MAX_DIM = 4096
"""Up to this many features the windows are gathered with one precomputed index array."""


def stable_hash(data: bytes, salt: bytes = b"") -> int:
    """A 63-bit hash that is the same in every process (``hash()`` is randomised per run)."""
    digest = hashlib.blake2b(data, digest_size=8, key=salt[:64]).digest()
    return int.from_bytes(digest, "little") >> 1


class Fingerprinter:
    """Quantises a feature vector and returns its salted top-``top_s`` window hashes.

    ``lo`` and ``step`` set the quantisation per feature: ``floor((x - lo) / step)``, clipped
    to ``[-1, levels]`` so out-of-range values share one bin on either side (NaN lands in the
    lowest). Windows wrap around the end of the vector, so a short tabular vector still
    yields one window per feature. A window's hash is the dot product of its codes with
    secret odd 64-bit multipliers drawn from the salt, modulo 2^64: a universal hash, so
    without the salt nobody can tell which windows will be the smallest.
    """

    def __init__(
        self,
        *,
        lo: npt.NDArray[np.float64],
        step: npt.NDArray[np.float64],
        levels: int,
        window: int,
        top_s: int,
        salt: str,
    ) -> None:
        if levels < 1 or window < 1 or top_s < 1:
            raise DetectorError("fingerprint: levels, window and top_s must be at least 1")
        self.dim = int(lo.shape[0])
        self.inv_step = 1.0 / step
        self.shift = lo / step - 1.0  # codes start at 0 for the below-range bin
        self.top_code = float(levels + 1)
        self.window = max(1, min(window, self.dim))
        self.top_s = top_s
        key = salt.encode()
        rng = np.random.default_rng(stable_hash(b"window-hash", key))
        self._mult = rng.integers(1, 2**62, size=self.window, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._probe = rng.integers(1, 2**63, size=self.dim, dtype=np.uint64) | np.uint64(1)
        self._gather: npt.NDArray[np.intp] | None = None
        if self.dim <= _GATHER_MAX_DIM:
            self._gather = (np.arange(self.dim)[:, None] + np.arange(self.window)[None, :]) % self.dim

    def codes(self, x: npt.NDArray[np.float64]) -> U64:
        """Quantisation codes in ``[0, levels + 1]``."""
        q = x * self.inv_step
        q -= self.shift
        np.fmax(q, 0.0, out=q)  # fmax/fmin send NaN to a bin instead of propagating it
        np.fmin(q, self.top_code, out=q)
        return q.astype(np.uint64)  # truncation is the floor: q is not negative here

    def outside(self, x: npt.NDArray[np.float64]) -> float:
        """Share of the features lying more than one bin outside their range (NaN counts as outside)."""
        q = x * self.inv_step
        q -= self.shift  # in range: [1, levels + 1)
        inside = (q >= 0.0) & (q < self.top_code + 1.0)
        return 1.0 - float(np.count_nonzero(inside)) / max(1, int(q.shape[0]))

    def window_hashes(self, x: npt.NDArray[np.float64]) -> U64:
        q = self.codes(x)
        if self._gather is not None:
            windows = q[self._gather]
        else:
            ext = np.concatenate((q, q[: self.window - 1]))
            windows = np.lib.stride_tricks.sliding_window_view(ext, self.window)
        return windows @ self._mult

    def fingerprint(self, x: npt.NDArray[np.float64]) -> U64:
        """The sorted, distinct, smallest ``top_s`` window hashes of ``x``."""
        h = self.window_hashes(x)
        h.sort()
        keep = np.empty(h.shape[0], dtype=np.bool_)
        keep[0] = True
        np.not_equal(h[1:], h[:-1], out=keep[1:])
        return h[keep][: self.top_s]

    def exact(self, x: npt.NDArray[np.float64]) -> int:
        """A keyed hash of the input's raw bits (a dot product with secret odd multipliers,
        modulo 2^64): equal for exact repeats, and an attacker who does not know the key
        cannot make two different inputs collide on purpose. Integer arithmetic, so NaN
        and infinity hash like any other bits."""
        bits = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
        folded = bits >> _SHIFT_32  # fold high bits down before the sum
        folded ^= bits
        return int(folded @ self._probe)


@dataclass(slots=True)
class Matches:
    """The stored queries that share at least ``min_shared`` fingerprint hashes with a probe,
    oldest first."""

    seq: I64
    valid: I64
    """Every valid table entry's sequence number, sorted: what ``shared`` counts from."""
    exact: U64
    principal: U64
    actor: U64
    chain: I64
    ts: F64

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    def shared(self) -> I64:
        """How many of the probe's hashes each match shares (computed only when asked)."""
        return self.valid.searchsorted(self.seq, side="right") - self.valid.searchsorted(self.seq, side="left")


_NO_MATCH = Matches(
    np.zeros(0, np.int64),
    np.zeros(0, np.int64),
    np.zeros(0, np.uint64),
    np.zeros(0, np.uint64),
    np.zeros(0, np.uint64),
    np.zeros(0, np.int64),
    np.zeros(0, np.float64),
)


class Probe:
    """A fingerprint's table slots and tags, computed once for both lookup and insert."""

    __slots__ = ("n", "slots", "tags")

    def __init__(self, fp: U64, mask: np.uint64) -> None:
        self.n = int(fp.shape[0])
        self.slots = (fp & mask).view(np.intp)  # below 2**63 after the mask: the same numbers, no copy
        self.tags = fp.view(np.uint32)[_HIGH_HALF::2]  # the high 32 bits, without a copy


class FingerprintIndex:
    """One global table of stored fingerprints with a fixed capacity (see the module doc)."""

    def __init__(self, *, capacity: int, top_s: int, table_factor: float) -> None:
        if capacity < 1 or top_s < 1 or table_factor <= 0:
            raise DetectorError("fingerprint index: capacity, top_s and table_factor must be positive")
        self.capacity = capacity
        # a power of two, so a slot is the hash's low bits: at most capacity*top_s*table_factor
        self.size = 1 << max(6, int(capacity * top_s * table_factor).bit_length() - 1)
        self._mask = np.uint64(self.size - 1)
        self.next_seq = 1
        self._allocated = False
        self._tag = np.zeros(0, np.uint32)
        self._seq = np.zeros(0, np.int64)
        self._ring_seq = np.zeros(0, np.int64)
        self._ring_exact = np.zeros(0, np.uint64)
        self._ring_principal = np.zeros(0, np.uint64)
        self._ring_actor = np.zeros(0, np.uint64)
        self._ring_chain = np.zeros(0, np.int64)
        self._ring_ts = np.zeros(0, np.float64)

    def _allocate(self) -> None:
        # allocated on the first insert, so an idle detector (and its snapshot) stays small
        self._tag = np.zeros(self.size, np.uint32)
        self._seq = np.zeros(self.size, np.int64)
        self._ring_seq = np.full(self.capacity, -1, np.int64)
        self._ring_exact = np.zeros(self.capacity, np.uint64)
        self._ring_principal = np.zeros(self.capacity, np.uint64)
        self._ring_actor = np.zeros(self.capacity, np.uint64)
        self._ring_chain = np.zeros(self.capacity, np.int64)
        self._ring_ts = np.zeros(self.capacity, np.float64)
        self._allocated = True

    def __len__(self) -> int:
        return min(self.next_seq - 1, self.capacity)

    def nbytes(self) -> int:
        arrays = (
            self._tag,
            self._seq,
            self._ring_seq,
            self._ring_exact,
            self._ring_principal,
            self._ring_actor,
            self._ring_chain,
            self._ring_ts,
        )
        return sum(a.nbytes for a in arrays)

    def probe(self, fp: U64) -> Probe:
        return Probe(fp, self._mask)

    def lookup(self, probe: Probe, min_shared: int) -> Matches:
        """Stored queries sharing ``min_shared`` or more of the probe's hashes."""
        if not self._allocated or probe.n < min_shared:
            return _NO_MATCH
        tagged = (self._tag[probe.slots] == probe.tags).nonzero()[0]
        if tagged.shape[0] < min_shared:
            return _NO_MATCH
        seq = self._seq[probe.slots[tagged]]
        # an entry counts while the ring still holds the query that wrote it
        seq = seq[self._ring_seq[seq % self.capacity] == seq]
        n = seq.shape[0] - min_shared + 1
        if n <= 0:
            return _NO_MATCH
        seq.sort()
        runs = seq[:n][seq[:n] == seq[min_shared - 1 :]]  # starts of runs at least min_shared long
        if runs.shape[0] == 0:
            return _NO_MATCH
        if runs[0] != runs[-1]:
            first = np.empty(runs.shape[0], dtype=np.bool_)
            first[0] = True
            np.not_equal(runs[1:], runs[:-1], out=first[1:])
            runs = runs[first]
        else:
            runs = runs[:1]
        ring = runs % self.capacity
        return Matches(
            runs,
            seq,
            self._ring_exact[ring],
            self._ring_principal[ring],
            self._ring_actor[ring],
            self._ring_chain[ring],
            self._ring_ts[ring],
        )

    def insert(self, probe: Probe, *, exact: int, principal: int, actor: int, chain: int, ts: float) -> int:
        """Store one query's fingerprint, evicting the oldest stored query when full.

        Returns the stored query's sequence number (a new chain takes it as its id)."""
        if not self._allocated:
            self._allocate()
        seq = self.next_seq
        ring = seq % self.capacity
        self._ring_seq[ring] = seq
        self._ring_exact[ring] = exact
        self._ring_principal[ring] = principal
        self._ring_actor[ring] = actor
        self._ring_chain[ring] = chain if chain else seq
        self._ring_ts[ring] = ts
        self._tag[probe.slots] = probe.tags
        self._seq[probe.slots] = seq
        self.next_seq = seq + 1
        return seq
