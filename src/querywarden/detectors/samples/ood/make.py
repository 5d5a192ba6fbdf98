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

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, load_sample_images
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).parent
T0 = 1_764_320_000.0


def _num(v: float) -> float | int:
    r = round(float(v), 3)
    return int(r) if r.is_integer() else r


def _line(rid: str, ts: float, principal: str, x: np.ndarray, p: np.ndarray) -> str:
    rec = {
        "id": rid,
        "ts": round(ts, 3),
        "principal": principal,
        "model": "digits",
        "input": {"features": [_num(v) for v in x]},
        "output": {"probabilities": [round(float(v), 5) for v in p]},
    }
    return json.dumps(rec, separators=(",", ":"))


def _patches(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    photos = [img.mean(axis=2) for img in load_sample_images().images]
    out = []
    for _ in range(n):
        img = photos[int(rng.integers(len(photos)))]
        r, c = int(rng.integers(0, img.shape[0] - 64)), int(rng.integers(0, img.shape[1] - 64))
        patch = img[r : r + 64, c : c + 64].reshape(8, 8, 8, 8).mean(axis=(1, 3))
        out.append(np.round(patch / 255.0 * 16.0).ravel())
    return out


def _edits(photo: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    img = photo.reshape(8, 8)
    out = [photo]
    for _ in range(int(rng.integers(3, 7))):
        e = np.roll(img, int(rng.choice([-1, 1])), axis=int(rng.integers(2))) if rng.random() < 0.5 else img
        out.append(np.clip(np.round(e * rng.uniform(0.8, 1.2)), 0, 16).ravel())
    return out


def main() -> None:
    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
    np.save(HERE / "reference.npy", x[1000:1300])
    pool = x[1300:]
    rng = np.random.default_rng(41)
    customers = []
    for c in range(30):
        for t in rng.uniform(0, 3600, int(rng.integers(3, 9))):
            customers.append((T0 + float(t), f"cust-{c:02d}", pool[int(rng.integers(len(pool)))]))
    attack = [(T0 + 600 + i * 0.5, "knockoff", row) for i, row in enumerate(_patches(200, rng))]
    heavy = [(T0 + 100 + i * 5.0, "analyst", pool[int(rng.integers(len(pool)))]) for i in range(200)]
    photos = []
    for i, j in enumerate(rng.integers(len(pool), size=30)):
        photos += [(T0 + 400 + i * 60.0 + k, "photo-app", e) for k, e in enumerate(_edits(pool[int(j)], rng))]
    batch = [(T0 + 1200 + i * 0.5, "batch-job", pool[i % len(pool)]) for i in range(120)]
    odd = _patches(4, rng) + [pool[int(j)] for j in rng.integers(len(pool), size=36)]
    curious = [(T0 + 2000 + i * 9.0, "curious", row) for i, row in enumerate(odd)]
    for name, rows in (("positive", customers + attack), ("negative", customers + heavy + photos + batch + curious)):
        rows.sort(key=lambda r: r[0])
        probs = model.predict_proba(np.array([r[2] for r in rows]))
        text = "\n".join(_line(f"{name[:3]}-{i}", ts, p, xr, probs[i]) for i, (ts, p, xr) in enumerate(rows))
        (HERE / f"{name}.jsonl").write_text(text + "\n")


if __name__ == "__main__":
    main()
