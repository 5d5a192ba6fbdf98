"""Writes the PRADA-style detector's annotated samples (run by hand; output is committed).

The model is a logistic regression on sklearn's bundled 8x8 digits (deterministic fit);
``reference.npy`` holds 300 held-out digits as the profile's benign reference.

positive: 30 customers scoring a few natural digits each, and ``thief`` running
Jacobian-based augmentation (Papernot et al.): 20 natural seeds, then rounds that add every
point moved one signed-gradient step (0.1 of the range per pixel) of a small substitute
whose gradient signs differ per point. ``expect.toml`` wants medium within 40 queries: the
seeds, then eight sign steps (the distance-distribution test alone needs about 110).
negative: the same customers, a customer scoring 220 natural digits, a flaky client that
sends every record three times, a photo app sending edited copies of 30 photos, and a
batch job.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _kit import T0, compact, customers, digits_victim, held_out, photo_app, record, rounded, write_samples  # noqa: E402


def _line(rid: str, ts: float, principal: str, x: np.ndarray, p: np.ndarray) -> str:
    return record(rid, ts, principal, "digits", compact(x), {"probabilities": rounded(p, 5)})


def _augmentation(pool: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    points = list(pool[rng.choice(len(pool), size=20, replace=False)])
    while len(points) < n:
        points += [np.clip(np.round(p + 1.6 * np.sign(rng.normal(size=64)), 2), 0, 16) for p in points]
    return np.array(points[:n])


def main() -> None:
    model, x, _ = digits_victim()
    pool = held_out(HERE, x, 300)
    rng = np.random.default_rng(21)
    crowd = customers(rng, pool)
    attack = [(T0 + 600 + i * 0.5, "thief", row) for i, row in enumerate(_augmentation(pool, rng, 220))]
    heavy = [(T0 + 100 + i * 5.0, "analyst", pool[int(rng.integers(len(pool)))]) for i in range(220)]
    flaky = []
    for i, j in enumerate(rng.integers(len(pool), size=50)):
        flaky += [(T0 + 200 + i * 30.0 + r * 2.0, "flaky-client", pool[int(j)]) for r in range(3)]
    photos = photo_app(pool, rng)
    batch = [(T0 + 1200 + i * 0.5, "batch-job", pool[i % len(pool)]) for i in range(120)]
    sets = (("positive", crowd + attack), ("negative", crowd + heavy + flaky + photos + batch))
    write_samples(HERE, sets, _line, model.predict_proba)


if __name__ == "__main__":
    main()
