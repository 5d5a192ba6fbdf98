"""Model profiles: what the engine knows about a protected model.

A profile is data. Loading it from a file (with located errors) is the config module's
job; this module only holds the typed record and the pure helpers detectors use.
"""

from __future__ import annotations

import hashlib
import math

import msgspec
import numpy as np

from querywarden.core.records import InputKind, Vector
from querywarden.text.protected import ProtectedText


class ModelProfile(msgspec.Struct, frozen=True, kw_only=True):
    """A protected model: its input and output, and optionally a benign reference sample.

    ``ranges`` holds one ``(low, high)`` pair per feature. ``reference`` is an
    ``(n, d)`` array of benign inputs; detectors that compare against "normal" use it.
    """

    id: str
    input_kind: InputKind = InputKind.TABULAR
    n_features: int | None = None
    shape: tuple[int, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    ranges: tuple[tuple[float, float], ...] | None = None
    classes: tuple[str, ...] | None = None
    output_kind: str = "probabilities"
    reference: np.ndarray | None = None
    inferred: bool = False
    """True when the profile was drafted from traffic rather than declared."""
    training_digests: np.ndarray | None = None
    """Optional sorted ``uint64`` digests of the training rows (``row_digests``). With them
    the membership detector sees how often a principal queries exact training records.
    They answer "was this row trained on?", so guard them like the training data."""
    protected: ProtectedText | None = None
    """Optional digests of an LLM's protected passages (its system prompt, say): the
    system-prompt detector flags answers that echo them and the gateway removes the echoes."""

    @property
    def n_classes(self) -> int | None:
        return len(self.classes) if self.classes else None

    def bounds(self) -> tuple[Vector, Vector] | None:
        """Feature lower and upper bounds as arrays, when known."""
        if not self.ranges:
            return None
        lo = np.array([r[0] for r in self.ranges], dtype=np.float64)
        hi = np.array([r[1] for r in self.ranges], dtype=np.float64)
        return lo, hi

    def scale(self) -> Vector | None:
        """Per-feature spread used to normalize distances: range width, floored to avoid /0."""
        b = self.bounds()
        if b is None:
            return None
        width = b[1] - b[0]
        return np.where(width > 0, width, 1.0)

    def expected_dim(self) -> int | None:
        if self.n_features is not None:
            return self.n_features
        if self.shape:
            return int(math.prod(self.shape))
        if self.ranges:
            return len(self.ranges)
        return None


DIGEST_DECIMALS = 6
"""Features are rounded to this many decimals before hashing, so a row that went through
JSON and back, or was printed with six decimals, still matches its training digest. (A
float32 pipeline keeps about seven significant digits: digest its float32 rows.)"""


def row_digest(row: Vector) -> int:
    """A 64-bit digest of one input row, rounded to ``DIGEST_DECIMALS`` decimals."""
    q = np.rint(np.asarray(row, dtype=np.float64) * 10.0**DIGEST_DECIMALS) + 0.0  # + 0.0 folds -0.0 into 0.0
    return int.from_bytes(hashlib.blake2b(q.tobytes(), digest_size=8).digest(), "little")


def row_digests(rows: np.ndarray) -> np.ndarray:
    """Sorted, unique ``uint64`` digests of ``rows`` (an ``(n, d)`` array), for ``training_digests``."""
    arr = np.asarray(rows, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"row_digests needs an (n, d) array, got shape {arr.shape}")
    return np.unique(np.array([row_digest(r) for r in arr], dtype=np.uint64))
