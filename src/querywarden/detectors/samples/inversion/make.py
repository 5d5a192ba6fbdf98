"""Writes the inversion detector's annotated samples (run by hand; output is committed).

The model is a logistic regression on sklearn's bundled 8x8 digits (deterministic fit);
``reference.npy`` holds 200 held-out digits as the profile's benign reference.

positive: 30 customers scoring a few natural digits each, and ``inverter`` running MI-Face
through the black box: a finite-difference gradient (the centre, then +-h along each of
the 64 pixels) and a step, twice. ``expect.toml`` wants medium within one gradient (129).
negative: the same customers, a photo app sending 40 mildly edited copies of one digit
(one-pixel shifts, brightness, a cropped border), each sent twice, and a batch job.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).parent
T0 = 1_764_320_000.0


def _line(rid: str, ts: float, principal: str, x: np.ndarray, p: np.ndarray) -> str:
    rec = {
        "id": rid,
        "ts": round(ts, 3),
        "principal": principal,
        "model": "digits",
        "input": {"features": [round(float(v), 4) for v in x]},
        "output": {"probabilities": [round(float(v), 6) for v in p]},
    }
    return json.dumps(rec, separators=(",", ":"))


def _miface(model: LogisticRegression, target: int, steps: int) -> np.ndarray:
    c = np.zeros(64)
    rows = []
    for _ in range(steps):
        probes = [c]
        for j in range(64):
            e = np.zeros(64)
            e[j] = 0.16
            probes += [np.clip(c + e, 0, 16), np.clip(c - e, 0, 16)]
        p = model.predict_proba(np.array(probes))[:, target]
        rows += probes
        g = (p[1::2] - p[2::2]) / 0.32
        c = np.clip(c + 1.6 * g / max(float(np.linalg.norm(g)), 1e-12), 0, 16)
    return np.array(rows)


def main() -> None:
    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
    np.save(HERE / "reference.npy", x[1000:1200])
    pool = x[1200:]
    rng = np.random.default_rng(11)
    customers = []
    for c in range(30):
        for t in rng.uniform(0, 3600, int(rng.integers(3, 9))):
            customers.append((T0 + float(t), f"cust-{c:02d}", pool[int(rng.integers(len(pool)))]))
    attack = [(T0 + 600 + i * 0.2, "inverter", row) for i, row in enumerate(_miface(model, 3, 2))]
    photo = pool[7].reshape(8, 8)
    edits = []
    for i in range(40):
        img = np.roll(photo, (i % 3) - 1, axis=1) if i % 2 else photo * (0.9 + 0.005 * i)
        if i % 5 == 0:
            img = img.copy()
            img[0, :] = 0.0
        for retry in range(2):
            edits.append((T0 + 300 + i * 20.0 + retry * 2.0, "photo-app", np.clip(img, 0, 16).ravel()))
    batch = [(T0 + 1200 + i * 0.5, "batch-job", pool[i % len(pool)]) for i in range(150)]
    for name, rows in (("positive", customers + attack), ("negative", customers + edits + batch)):
        rows.sort(key=lambda r: r[0])
        probs = model.predict_proba(np.array([r[2] for r in rows]))
        text = "\n".join(_line(f"{name[:3]}-{i}", ts, p, xr, probs[i]) for i, (ts, p, xr) in enumerate(rows))
        (HERE / f"{name}.jsonl").write_text(text + "\n")


if __name__ == "__main__":
    main()
