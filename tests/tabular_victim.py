"""A tabular profile for detector tests: each feature's range is the data's own span and the
reference sample is its first rows."""

from __future__ import annotations

import numpy as np

from querywarden.core.profile import ModelProfile


def span_profile(x: np.ndarray, reference_rows: int, pid: str = "m") -> tuple[ModelProfile, np.ndarray]:
    """(the profile, the rows after the reference)."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = x.min(axis=0), x.max(axis=0)
    profile = ModelProfile(
        id=pid,
        n_features=x.shape[1],
        ranges=tuple((float(a), float(b)) for a, b in zip(lo, hi, strict=True)),
        reference=x[:reference_rows],
    )
    return profile, x[reference_rows:]
