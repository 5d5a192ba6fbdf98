"""Writes the PRADA-style detector's annotated samples (run by hand; output is committed).

The model is a logistic regression on sklearn's bundled 8x8 digits (deterministic fit);
``reference.npy`` holds 300 held-out digits as the profile's benign reference.

positive: 30 customers scoring a few natural digits each, and ``thief`` running
Jacobian-based augmentation (Papernot et al.): 20 natural seeds, then rounds that add every
point moved one signed-gradient step (0.1 of the range per pixel) of a small substitute
whose gradient signs differ per point. ``expect.toml`` wants medium within 150 queries.
negative: the same customers, a customer scoring 220 natural digits, a flaky client that
sends every record three times, a photo app sending edited copies of 30 photos, and a
batch job.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
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


def _augmentation(pool: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    points = list(pool[rng.choice(len(pool), size=20, replace=False)])
    while len(points) < n:
        points += [np.clip(np.round(p + 1.6 * np.sign(rng.normal(size=64)), 2), 0, 16) for p in points]
    return np.array(points[:n])


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
    rng = np.random.default_rng(21)
    customers = []
    for c in range(30):
        for t in rng.uniform(0, 3600, int(rng.integers(3, 9))):
            customers.append((T0 + float(t), f"cust-{c:02d}", pool[int(rng.integers(len(pool)))]))
    attack = [(T0 + 600 + i * 0.5, "thief", row) for i, row in enumerate(_augmentation(pool, rng, 220))]
    heavy = [(T0 + 100 + i * 5.0, "analyst", pool[int(rng.integers(len(pool)))]) for i in range(220)]
    flaky = []
    for i, j in enumerate(rng.integers(len(pool), size=50)):
        flaky += [(T0 + 200 + i * 30.0 + r * 2.0, "flaky-client", pool[int(j)]) for r in range(3)]
    photos = []
    for i, j in enumerate(rng.integers(len(pool), size=30)):
        photos += [(T0 + 400 + i * 60.0 + k, "photo-app", e) for k, e in enumerate(_edits(pool[int(j)], rng))]
    batch = [(T0 + 1200 + i * 0.5, "batch-job", pool[i % len(pool)]) for i in range(120)]
    for name, rows in (("positive", customers + attack), ("negative", customers + heavy + flaky + photos + batch)):
        rows.sort(key=lambda r: r[0])
        probs = model.predict_proba(np.array([r[2] for r in rows]))
        text = "\n".join(_line(f"{name[:3]}-{i}", ts, p, xr, probs[i]) for i, (ts, p, xr) in enumerate(rows))
        (HERE / f"{name}.jsonl").write_text(text + "\n")


if __name__ == "__main__":
    main()
