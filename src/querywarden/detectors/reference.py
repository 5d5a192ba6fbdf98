"""What "benign" looks like for detectors that compare a principal's queries with normal data.

Three pieces, all numpy-only so the detectors that hold them stay picklable:

- ``QuerySpace`` puts raw feature vectors on a common scale (each feature divided by its
  range from the model profile) and, for wide inputs, projects them to at most ``max_dims``
  dimensions with a fixed random matrix. Distances then mean the same thing for every
  feature and memory per stored query stays bounded.
- ``KnnReference`` answers "how far is this query from benign data?": the distance to the
  k-th nearest benign point after a PCA projection that keeps the residual norm as one
  extra coordinate (a query off the benign subspace stays far). Its per-query threshold is
  a quantile of leave-one-out distances within the reference, so the expected share of
  benign queries past it is known (``expected_rate``).
- ``JointReference`` answers "do this query's features go together the way benign ones
  do?": its Mahalanobis distance under the reference's shrunk covariance, thresholded the
  same way. Inputs whose every feature is natural but drawn apart from the others (the
  correlations broken) sit among the reference in kNN distance yet far off in this one.
- ``Reservoir`` gathers a benign sample from live traffic when the profile has none: the
  early queries of principals not flagged, with a per-principal cap, so one caller cannot
  fill it (see the poisoning note in its docstring).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from querywarden.core.profile import ModelProfile
from querywarden.core.records import Interaction, Vector
from querywarden.detectors.small_arrays import count_nonzero
from querywarden.errors import DetectorError

Matrix = npt.NDArray[np.float64]

_MAX_SURPRISE = 300.0
_PROJECTION_SEED = 20261128
"""Fixed so a snapshot, a replay and a restart all project the same way."""


class QuerySpace:
    """Range-normalised (and, past ``max_dims``, randomly projected) feature vectors.

    Spaces with the same scale and projection are one shared object (``from_profile`` and
    unpickling both go through ``shared_space``), so the detectors of one model that ask
    for the same interaction's point with ``transform_of`` compute it once between them.
    """

    __slots__ = ("_last", "_last32", "_last_z", "_last_z32", "dim", "lo", "out_dim", "projection", "scale")

    def __init__(self, lo: Vector, scale: Vector, projection: Matrix | None = None) -> None:
        self.lo = lo
        self.scale = scale
        self.dim = int(lo.shape[0])
        self.projection = projection
        self.out_dim = int(projection.shape[1]) if projection is not None else self.dim
        self._last: Interaction | None = None
        self._last_z: Vector | None = None
        self._last32: Interaction | None = None
        self._last_z32: npt.NDArray[np.float32] | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return shared_space, (self.lo, self.scale, self.projection)

    @classmethod
    def from_profile(cls, profile: ModelProfile, *, max_dims: int = 64) -> QuerySpace | None:
        """The profile's space, or None when the profile does not say how wide inputs are.

        Scale comes from the declared ranges, else from the reference sample's min/max, else
        1 per feature (an inferred profile: distances are then in raw units).
        """
        dim = profile.expected_dim()
        ref = _reference_array(profile)
        if dim is None and ref is not None:
            dim = int(ref.shape[1])
        if dim is None or dim < 1:
            return None
        bounds = profile.bounds()
        if bounds is not None and bounds[0].shape[0] == dim:
            lo = bounds[0]
            scale = profile.scale()
            assert scale is not None
        elif ref is not None and ref.shape[1] == dim:
            finite = ref[np.isfinite(ref).all(axis=1)]
            lo = finite.min(axis=0) if finite.shape[0] else np.zeros(dim)
            width = finite.max(axis=0) - lo if finite.shape[0] else np.ones(dim)
            scale = np.where(width > 0, width, 1.0)
        else:
            lo = np.zeros(dim)
            scale = np.ones(dim)
        projection = None
        if dim > max_dims:
            rng = np.random.default_rng(_PROJECTION_SEED)
            projection = rng.standard_normal((dim, max_dims)) / math.sqrt(max_dims)
        return shared_space(lo.astype(np.float64), (1.0 / scale).astype(np.float64), projection)

    def transform_of(self, interaction: Interaction) -> Vector | None:
        """``transform(interaction.features)``, computed once per interaction however many
        detectors ask. The point is shared, so it is read-only."""
        if interaction is self._last:
            return self._last_z
        z = self.transform(interaction.features)
        if z is not None:
            z.setflags(write=False)
        self._last, self._last_z = interaction, z
        return z

    def transform32_of(self, interaction: Interaction) -> npt.NDArray[np.float32] | None:
        """``transform_of`` as float32 (what the detectors that store points keep), also
        computed once per interaction and read-only."""
        if interaction is self._last32:
            return self._last_z32
        z = self.transform_of(interaction)
        z32 = None if z is None else z.astype(np.float32)
        if z32 is not None:
            z32.setflags(write=False)
        self._last32, self._last_z32 = interaction, z32
        return z32

    def transform(self, features: Vector | None) -> Vector | None:
        """One query in the common space, or None when it is missing, the wrong width or not finite."""
        if features is None or features.ndim != 1 or features.shape[0] != self.dim:
            return None
        z = features - self.lo
        z *= self.scale
        if self.projection is not None:
            z = z @ self.projection
        if not math.isfinite(float(np.add.reduce(z))):  # one NaN or inf makes the sum non-finite
            return None
        return z

    def transform_many(self, rows: Matrix) -> Matrix:
        z = (rows - self.lo) * self.scale
        if self.projection is not None:
            z = z @ self.projection
        return np.asarray(z, dtype=np.float64)


_SPACES: dict[bytes, QuerySpace] = {}
_MAX_SPACES = 256


def shared_space(lo: Vector, scale: Vector, projection: Matrix | None) -> QuerySpace:
    """The one ``QuerySpace`` with this scale and projection (made on first use)."""
    h = hashlib.blake2b(np.ascontiguousarray(lo).tobytes(), digest_size=16)
    h.update(np.ascontiguousarray(scale).tobytes())
    if projection is not None:
        h.update(np.ascontiguousarray(projection).tobytes())
    key = h.digest()
    space = _SPACES.get(key)
    if space is None:
        if len(_SPACES) >= _MAX_SPACES:
            del _SPACES[next(iter(_SPACES))]
        space = _SPACES[key] = QuerySpace(lo, scale, projection)
    return space


def reference_rows(profile: ModelProfile, space: QuerySpace) -> Matrix | None:
    """The profile's reference sample in ``space``, or None when it has none that fits."""
    ref = _reference_array(profile)
    if ref is None or ref.shape[1] != space.dim:
        return None
    rows = space.transform_many(ref)
    rows = rows[np.isfinite(rows).all(axis=1)]
    return rows if rows.shape[0] >= 2 else None


def spacing(rows: Matrix | None, dim: int, *, max_rows: int = 1000) -> float:
    """The median nearest-neighbour distance among benign rows: the scale of "near-identical".

    Without rows it falls back to 2% of the unit cube's diagonal, a guess that errs towards
    treating small edits as near-identical.
    """
    if rows is None or rows.shape[0] < 3:
        return 0.02 * math.sqrt(max(dim, 1))
    sample = _subsample(rows, max_rows)
    sq = np.einsum("ij,ij->i", sample, sample)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (sample @ sample.T)
    np.fill_diagonal(d2, np.inf)
    nn = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    nn = nn[nn > 0]
    if nn.size == 0:
        return 0.02 * math.sqrt(max(dim, 1))
    return float(np.median(nn))


class KnnReference:
    """k-th nearest benign neighbour distance, with a threshold set from the reference itself."""

    __slots__ = ("_minus2", "components", "expected_rate", "k", "mean", "points", "sq_norms", "threshold")

    def __init__(
        self,
        *,
        mean: Vector,
        components: Matrix,
        points: Matrix,
        k: int,
        threshold: float,
        expected_rate: float,
    ) -> None:
        self.mean = mean
        self.components = components
        self.points = points
        self.sq_norms = np.einsum("ij,ij->i", points, points)
        self._minus2 = np.ascontiguousarray(-2.0 * points)
        self.k = k
        self.threshold = threshold
        self.expected_rate = expected_rate

    @classmethod
    def build(
        cls,
        rows: Matrix,
        *,
        k: int = 3,
        quantile: float = 0.99,
        n_components: int = 16,
        max_points: int = 1024,
        trim: bool = False,
    ) -> KnnReference:
        """Fit on benign ``rows`` (already in a ``QuerySpace``).

        The threshold is the ``quantile`` of held-out distances (two folds of the reference,
        each against the other), so at most about ``1 - quantile`` of benign queries like the
        reference exceed it. ``trim`` first drops rows far from the rest (for samples gathered
        from traffic, which an attacker may have seeded).
        """
        if rows.shape[0] < 2 * k + 2:
            raise DetectorError(f"a kNN reference needs at least {2 * k + 2} rows, got {rows.shape[0]}")
        sample = _subsample(rows, max_points)
        mean = sample.mean(axis=0)
        centred = sample - mean
        n_comp = min(n_components, centred.shape[1], centred.shape[0])
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        components = np.ascontiguousarray(vt[:n_comp])
        points = _embed(centred, components)
        # two-fold: each half's k-th neighbour distance within the other half. Against the
        # full (twice as dense) index a benign query sits closer, so the rate errs low.
        half = points.shape[0] // 2
        kth = np.concatenate([_kth(points[:half], points[half:], k), _kth(points[half:], points[:half], k)])
        if trim:
            # an untrusted sample (gathered from traffic) may hold planted points: far-off rows,
            # more than 3 robust deviations out in log distance, are dropped before fitting
            logs = np.log(np.maximum(kth, 1e-12))
            med = float(np.median(logs))
            mad = 1.4826 * float(np.median(np.abs(logs - med)))
            keep = logs <= med + 3.0 * max(mad, 1e-6)  # kth is aligned with the sample's rows
            if keep.sum() >= 2 * k + 2 and not keep.all():
                return cls.build(sample[keep], k=k, quantile=quantile, n_components=n_components, max_points=max_points)
        threshold = float(np.quantile(kth, quantile))
        expected_rate = max(1.0 - quantile, float(np.mean(kth > threshold)))
        return cls(
            mean=mean, components=components, points=points, k=k, threshold=threshold, expected_rate=expected_rate
        )

    def embed(self, z: Vector) -> Vector:
        """A query's coordinates in the reference's PCA space (plus its residual norm)."""
        c = z - self.mean
        proj = self.components @ c
        residual2 = float(c @ c) - float(proj @ proj)  # the components are orthonormal
        out = np.empty(proj.shape[0] + 1)
        out[:-1] = proj
        out[-1] = math.sqrt(max(residual2, 0.0))
        return out

    def squared_distances(self, e: Vector) -> Vector:
        """Squared distances from an embedded query to every reference point."""
        d2: Vector = self._minus2 @ e
        d2 += self.sq_norms
        d2 += float(e @ e)
        return d2

    def within(self, e: Vector, radius: float) -> bool:
        """True when at least k reference points lie within ``radius``: the cheap common case."""
        return count_nonzero(self.squared_distances(e) <= radius * radius) >= self.k

    def distance(self, e: Vector) -> float:
        """The k-th nearest reference distance of an embedded query (see ``embed``)."""
        d2 = self.squared_distances(e)
        kth = np.partition(d2, self.k - 1)[self.k - 1] if d2.shape[0] > self.k else d2.max()
        return math.sqrt(max(float(kth), 0.0))


_FOLDS = 8


class JointReference:
    """Mahalanobis distance under the reference's Ledoit-Wolf shrunk covariance.

    ``whiten`` is the inverse Cholesky factor of that covariance, so a query's squared
    distance is one matrix-vector product and a dot product. The threshold is the
    ``quantile`` of held-out squared distances (``_FOLDS`` folds, each scored by a fit on
    the others); a fit on fewer rows is a little noisier, so benign queries pass the final
    threshold a little less often than ``1 - quantile``.
    """

    __slots__ = ("_offset", "expected_rate", "mean", "threshold", "whiten")

    def __init__(self, *, mean: Vector, whiten: Matrix, threshold: float, expected_rate: float) -> None:
        self.mean = mean
        self.whiten = whiten
        self._offset = whiten @ mean
        self.threshold = threshold
        self.expected_rate = expected_rate

    @classmethod
    def build(
        cls, rows: Matrix, *, quantile: float = 0.99, max_points: int = 1024, trim: bool = False
    ) -> JointReference:
        """Fit on benign ``rows`` (already in a ``QuerySpace``); ``trim`` as for ``KnnReference``."""
        if rows.shape[0] < 8:
            raise DetectorError(f"a joint reference needs at least 8 rows, got {rows.shape[0]}")
        sample = _subsample(rows, max_points)
        fold = np.arange(sample.shape[0]) % _FOLDS
        shrink, held = _held_out(sample, fold)
        if trim:
            logs = np.log(np.maximum(held, 1e-12))
            med = float(np.median(logs))
            mad = 1.4826 * float(np.median(np.abs(logs - med)))
            keep = logs <= med + 3.0 * max(mad, 1e-6)
            if keep.sum() >= 8 and not keep.all():
                return cls.build(sample[keep], quantile=quantile, max_points=max_points)
        threshold = float(np.quantile(held, quantile))
        expected_rate = max(1.0 - quantile, float(np.mean(held > threshold)))
        mean, whiten = _fit_whitening(sample, shrink)
        return cls(mean=mean, whiten=whiten, threshold=threshold, expected_rate=expected_rate)

    def score(self, z: Vector) -> float:
        """A query's squared Mahalanobis distance from the reference."""
        w = self.whiten @ z
        w -= self._offset
        return float(w @ w)


def _shrinkage(rows: Matrix) -> float:
    """The Ledoit-Wolf shrinkage intensity of ``rows``' covariance towards a scaled identity."""
    n, p = rows.shape
    x = rows - rows.mean(axis=0)
    cov = (x.T @ x) / n
    mu = float(np.trace(cov)) / p
    target = cov - mu * np.eye(p)
    d2 = float(np.einsum("ij,ij->", target, target)) / p
    fourth = float(np.mean(np.einsum("ij,ij->i", x, x) ** 2))
    b2 = max(0.0, (fourth - float(np.einsum("ij,ij->", cov, cov))) / (n * p))
    return 1.0 if d2 <= 0 else min(b2, d2) / d2


def _held_out(sample: Matrix, fold: npt.NDArray[np.int64]) -> tuple[float, Vector]:
    """The shrinkage under which held-out benign rows are likeliest, and their squared distances.

    Ledoit-Wolf's intensity minimises the covariance's estimation error, and shrinks hard the
    thin directions (features that move together) that the joint test is about. Candidates
    from it down to 1/128 of it are compared by the Gaussian log-likelihood of each fold
    under a fit on the others, benign rows only; the returned distances are aligned with
    ``sample``'s rows."""
    lw = _shrinkage(sample)
    best: tuple[float, float, Vector] | None = None
    for shrink in (lw * 0.5**k for k in range(8)):
        held = np.empty(sample.shape[0])
        logdet = 0.0
        for f in range(_FOLDS):
            out = fold == f
            mean, whiten = _fit_whitening(sample[~out], shrink)
            held[out] = _mahalanobis2(sample[out], mean, whiten)
            logdet -= 2.0 * float(np.log(np.diag(whiten)).sum()) * int(out.sum())
        loglik = -0.5 * (float(held.sum()) + logdet)
        if best is None or loglik > best[0]:
            best = (loglik, shrink, held)
    assert best is not None
    return best[1], best[2]


def _fit_whitening(rows: Matrix, shrink: float) -> tuple[Vector, Matrix]:
    """The mean and inverse Cholesky factor of ``rows``' covariance shrunk by ``shrink``."""
    n, p = rows.shape
    mean = rows.mean(axis=0)
    x = rows - mean
    cov = (x.T @ x) / n
    mu = float(np.trace(cov)) / p
    mu = mu if mu > 0 else 1.0
    shrunk = (1.0 - shrink) * cov + shrink * mu * np.eye(p)
    shrunk += 1e-9 * mu * np.eye(p)  # constant features: keep the factor well defined
    lower = np.linalg.cholesky(shrunk)
    whiten = np.ascontiguousarray(np.linalg.inv(lower))
    return mean, whiten


def _mahalanobis2(rows: Matrix, mean: Vector, whiten: Matrix) -> Vector:
    w = (rows - mean) @ whiten.T
    out: Vector = np.einsum("ij,ij->i", w, w)
    return out


class Reservoir:
    """A uniform sample of early benign traffic, at most ``per_principal`` rows from any one caller.

    Poisoning: whoever queries during warm-up shapes what "normal" means. The per-principal
    cap bounds one caller's share to ``per_principal / capacity``, detectors feed it only
    from principals they have not flagged, and a kNN distance with k > 1 ignores a few
    planted points (an attacker must plant k points near each query it wants to pass). A
    Sybil attacker with many keys during warm-up is not stopped by this; a declared
    reference sample in the model profile is the remedy.
    """

    __slots__ = ("_contrib", "_rng", "_rows", "capacity", "per_principal", "seen")

    def __init__(self, *, capacity: int, per_principal: int, seed: int = 0) -> None:
        self.capacity = capacity
        self.per_principal = per_principal
        self.seen = 0
        self._rows: list[Vector] = []
        self._contrib: dict[str, int] = {}
        self._rng = np.random.default_rng(seed)

    def offer(self, principal: str, z: Vector) -> None:
        n = self._contrib.get(principal, 0)
        if n >= self.per_principal:
            return
        self._contrib[principal] = n + 1
        self.seen += 1
        if len(self._rows) < self.capacity:
            self._rows.append(z.copy())
            return
        slot = int(self._rng.integers(0, self.seen))
        if slot < self.capacity:
            self._rows[slot] = z.copy()

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> Matrix:
        return np.vstack(self._rows) if self._rows else np.zeros((0, 0))

    def release(self) -> None:
        """Free the sample once a reference has been built from it."""
        self._rows = []
        self._contrib = {}


def binomial_surprise(count: int, n: int, rate: float) -> float:
    """-log10 of the binomial probability of at least ``count`` hits in ``n`` trials at ``rate``.

    This is how surprising a principal's count of odd queries is, given how often benign
    queries are odd: three in ten is unremarkable, thirty in sixty is not. Capped at 300.
    """
    if count <= 0:
        return 0.0
    tail = float(special.bdtrc(count - 1, n, rate))
    if tail <= 0.0:
        return _MAX_SURPRISE
    return min(_MAX_SURPRISE, -math.log10(tail))


def _kth(queries: Matrix, index: Matrix, k: int) -> Vector:
    """Each query's distance to its k-th nearest row of ``index``."""
    sq_i = np.einsum("ij,ij->i", index, index)
    sq_q = np.einsum("ij,ij->i", queries, queries)
    d2 = sq_q[:, None] + sq_i[None, :] - 2.0 * (queries @ index.T)
    kk = min(k, index.shape[0]) - 1
    out: Vector = np.sqrt(np.maximum(np.partition(d2, kk, axis=1)[:, kk], 0.0))
    return out


def _embed(centred: Matrix, components: Matrix) -> Matrix:
    proj = centred @ components.T
    residual = centred - proj @ components
    res = np.sqrt(np.einsum("ij,ij->i", residual, residual))
    return np.ascontiguousarray(np.hstack([proj, res[:, None]]))


def _subsample(rows: Matrix, n: int) -> Matrix:
    if rows.shape[0] <= n:
        return rows
    idx = np.random.default_rng(_PROJECTION_SEED).choice(rows.shape[0], size=n, replace=False)
    return rows[np.sort(idx)]


def _reference_array(profile: ModelProfile) -> Matrix | None:
    ref = profile.reference
    if ref is None:
        return None
    arr = np.asarray(ref, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    return arr if arr.shape[0] > 0 else None
