"""Writes the out-of-distribution detector's annotated samples (run by hand; output is committed).

The model is a logistic regression on sklearn's bundled 8x8 digits (deterministic fit);
``reference.npy`` holds 300 held-out digits as the profile's benign reference.

positive: 30 customers scoring a few natural digits each, and ``knockoff`` querying 200 8x8
grey patches of the two photos bundled with scikit-learn (natural images, but not digits),
as KnockoffNets with another dataset would. About half of such patches lie past the
per-query threshold (smooth sky patches pass as blank digits). ``expect.toml`` wants
medium within 60 queries.
negative: the same customers, a customer scoring 200 natural digits, a photo app sending
edited copies of 30 photos, a batch job, and a curious customer who sends a handful of
odd inputs among natural ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_sample_images

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from _kit import T0, compact, customers, digits_victim, held_out, photo_app, record, rounded, write_samples  # noqa: E402


def _line(rid: str, ts: float, principal: str, x: np.ndarray, p: np.ndarray) -> str:
    return record(rid, ts, principal, "digits", compact(x), {"probabilities": rounded(p, 5)})


def _patches(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    photos = [img.mean(axis=2) for img in load_sample_images().images]
    out = []
    for _ in range(n):
        img = photos[int(rng.integers(len(photos)))]
        r, c = int(rng.integers(0, img.shape[0] - 64)), int(rng.integers(0, img.shape[1] - 64))
        patch = img[r : r + 64, c : c + 64].reshape(8, 8, 8, 8).mean(axis=(1, 3))
        out.append(np.round(patch / 255.0 * 16.0).ravel())
    return out


def main() -> None:
    model, x, _ = digits_victim()
    pool = held_out(HERE, x, 300)
    rng = np.random.default_rng(41)
    crowd = customers(rng, pool)
    attack = [(T0 + 600 + i * 0.5, "knockoff", row) for i, row in enumerate(_patches(200, rng))]
    heavy = [(T0 + 100 + i * 5.0, "analyst", pool[int(rng.integers(len(pool)))]) for i in range(200)]
    photos = photo_app(pool, rng)
    batch = [(T0 + 1200 + i * 0.5, "batch-job", pool[i % len(pool)]) for i in range(120)]
    odd = _patches(4, rng) + [pool[int(j)] for j in rng.integers(len(pool), size=36)]
    curious = [(T0 + 2000 + i * 9.0, "curious", row) for i, row in enumerate(odd)]
    sets = (("positive", crowd + attack), ("negative", crowd + heavy + photos + batch + curious))
    write_samples(HERE, sets, _line, model.predict_proba)


if __name__ == "__main__":
    main()
