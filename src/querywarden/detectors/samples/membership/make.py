"""Writes the membership detector's annotated samples (run by hand; output is committed).

The model is a logistic regression on sklearn's bundled 8x8 digits (deterministic fit),
answering labels only; ``reference.npy`` holds 200 held-out digits.

positive: 30 customers scoring a few natural digits each, and ``prober`` running label-only
membership inference: for each of 8 candidate records (half of them training rows), the
record and 20 noisy copies, reading how often the label holds. ``expect.toml`` wants medium
within 100 queries (the third candidate's cluster). negative: the same customers, a photo
app sending edited copies of two photos (each sent twice), and a batch job.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).parent
T0 = 1_764_320_000.0


def _line(rid: str, ts: float, principal: str, x: np.ndarray, label: int) -> str:
    rec = {
        "id": rid,
        "ts": round(ts, 3),
        "principal": principal,
        "model": "digits",
        "input": {"features": [round(float(v), 3) for v in x]},
        "output": {"label": label},
    }
    return json.dumps(rec, separators=(",", ":"))


def main() -> None:
    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
    np.save(HERE / "reference.npy", x[1000:1200])
    pool = x[1200:]
    rng = np.random.default_rng(12)
    customers = []
    for c in range(30):
        for t in rng.uniform(0, 3600, int(rng.integers(3, 9))):
            customers.append((T0 + float(t), f"cust-{c:02d}", pool[int(rng.integers(len(pool)))]))
    candidates = np.vstack([x[:4], pool[:4]])[rng.permutation(8)]
    probes = []
    for c in candidates:
        probes.append(c)
        probes += list(np.clip(c + rng.normal(0, 0.3, (20, 64)), 0, 16))
    attack = [(T0 + 600 + i * 0.2, "prober", row) for i, row in enumerate(probes)]
    edits = []
    for k, photo in enumerate((pool[7], pool[9])):
        img = photo.reshape(8, 8)
        for i in range(25):
            edit = np.roll(img, (i % 3) - 1, axis=1) if i % 2 else img * (0.9 + 0.01 * (i % 10))
            for retry in range(2):
                ts = T0 + 300 + k * 900 + i * 20.0 + retry * 2.0
                edits.append((ts, "photo-app", np.clip(edit, 0, 16).ravel()))
    batch = [(T0 + 1200 + i * 0.5, "batch-job", pool[i % len(pool)]) for i in range(150)]
    for name, rows in (("positive", customers + attack), ("negative", customers + edits + batch)):
        rows.sort(key=lambda r: r[0])
        labels = model.predict(np.array([r[2] for r in rows]))
        text = "\n".join(_line(f"{name[:3]}-{i}", ts, p, xr, int(labels[i])) for i, (ts, p, xr) in enumerate(rows))
        (HERE / f"{name}.jsonl").write_text(text + "\n")


if __name__ == "__main__":
    main()
