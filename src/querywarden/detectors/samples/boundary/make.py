"""Writes the boundary-probing detector's annotated samples (run by hand; output is committed).

The model is a logistic regression on sklearn's bundled 8x8 digits (deterministic fit);
``reference.npy`` holds 300 held-out digits as the profile's benign reference.

positive: 30 customers scoring a few natural digits each, and ``prober`` running a
HopSkipJump-style walk: a binary search between a digit and a digit of another class, then
rounds of 30 random probes around the boundary point, a step and another binary search
(the first 220 queries of it). ``expect.toml`` wants medium within 64 queries, 1% of the
~6,400 HopSkipJump spends per digit.
negative: the same customers, a customer scoring 200 natural digits, a photo app sending
edited copies (one-pixel shifts, brightness) of 30 photos, and a batch job.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _kit import T0, compact, customers, digits_victim, held_out, photo_app, record, rounded, write_samples  # noqa: E402


def _line(rid: str, ts: float, principal: str, x: np.ndarray, p: np.ndarray) -> str:
    return record(rid, ts, principal, "digits", compact(x), {"probabilities": rounded(p, 5)})


def _walk(model: LogisticRegression, x0: np.ndarray, far: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    label = model.predict(x0[None])[0]
    queries: list[np.ndarray] = []

    def adversarial(point: np.ndarray) -> bool:
        queries.append(point)
        return bool(model.predict(point[None])[0] != label)

    def search(b: np.ndarray) -> np.ndarray:
        lo, hi = 0.0, 1.0
        while hi - lo > 1e-3:
            mid = (lo + hi) / 2
            if adversarial(np.round((1 - mid) * x0 + mid * b, 3)):
                hi = mid
            else:
                lo = mid
        return np.round((1 - hi) * x0 + hi * b, 3)

    point = search(far)
    for t in range(6):
        dist = float(np.linalg.norm(point - x0))
        probes = rng.normal(size=(30, 64))
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
        signs = np.array([adversarial(np.round(np.clip(point + 0.01 * dist * u, 0, 16), 3)) for u in probes]) * 2.0 - 1
        grad = ((signs - signs.mean())[:, None] * probes).mean(axis=0)
        grad /= np.linalg.norm(grad) + 1e-12
        point = search(np.clip(point + dist / np.sqrt(t + 1) * grad, 0, 16))
    return queries


def main() -> None:
    model, x, y = digits_victim()
    pool, labels = held_out(HERE, x, 300), y[1300:]
    rng = np.random.default_rng(31)
    crowd = customers(rng, pool)
    other = int(np.flatnonzero(labels != labels[5])[0])
    walk = _walk(model, pool[5], pool[other], rng)[:220]
    attack = [(T0 + 1800 + i * 0.5, "prober", row) for i, row in enumerate(walk)]
    heavy = [(T0 + 100 + i * 5.0, "analyst", pool[int(rng.integers(len(pool)))]) for i in range(200)]
    photos = photo_app(pool, rng)
    batch = [(T0 + 1200 + i * 0.5, "batch-job", pool[i % len(pool)]) for i in range(120)]
    sets = (("positive", crowd + attack), ("negative", crowd + heavy + photos + batch))
    write_samples(HERE, sets, _line, model.predict_proba)


if __name__ == "__main__":
    main()
